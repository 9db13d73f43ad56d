"""The Task interface every training recipe implements, and the helpers tasks share.

See: book/04_practice/genlab_tour.ipynb.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from genlab.data.images import value_range_hint
from genlab.models.gan import as_labels

__all__ = ["Task", "noise"]


def noise(kind: str, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
           high: int = 0) -> Tensor:
    """randn / rand / randint drawn on the generator's device, then moved to ``device``."""
    where = generator.device if generator is not None else device
    if kind == "randint":
        return torch.randint(high, shape, generator=generator, device=where).to(device)
    if kind == "randperm":
        return torch.randperm(shape[0], generator=generator, device=where).to(device)
    return getattr(torch, kind)(shape, generator=generator, device=where).to(device)


class Task:
    """What the Trainer needs from a task (subclass it for a new kind of model).

    ``data_kind``: ``"images"`` (batches ``(images, labels or None)``) or ``"tokens"``
    (batches ``(x, y)`` of shape (B, T)); ``batches_per_step``: minibatches per step, handed
    over concatenated. See: book/04_practice/genlab_tour.ipynb.
    """

    data_kind = "images"
    batches_per_step = 1
    amp_dtype: torch.dtype | None = None
    divergence_hint = "lower the learning rate"  # appended to a TrainingDivergedError's message
    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for forward passes when the Trainer turned it on, else nothing."""
        return torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()

    @property
    def device(self) -> torch.device:
        return next(next(iter(self.models.values())).parameters()).device

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        """Validate the training data once, before training (override to add checks)."""

    def check_health(self, history) -> str | None:
        """After each logged row of ``history``: a warning message when the run, though finite,
        is failing in a way this task can recognise; None when all looks fine (the default)."""
        return None

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        raise NotImplementedError

    def update(self, name: str, loss: Tensor, grad_clip: float | None = None) -> None:
        """One optimiser step on ``loss`` for ``self.optimizers[name]``: clear the gradients,
        backpropagate, clip the gradient norm of that optimiser's parameters to ``grad_clip``
        (None: no clipping), step. The shared end of most tasks' ``training_step``."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
        optimizer.step()

    def trainable_models(self) -> dict[str, nn.Module]:
        """The models an optimiser updates (an optimiser named like its model): what data parallelism
        wraps. A model without an optimiser (an EMA copy) is left alone.
        See: book/04_practice/distributed.ipynb."""
        return {name: self.models[name] for name in self.optimizers if name in self.models}

    @contextlib.contextmanager
    def models_replaced(self, replacements: dict):
        """Within the block, every attribute of the task holding ``models[name]`` holds
        ``replacements[name]`` instead (``models`` itself keeps the plain models, which checkpoints
        save). The Trainer runs distributed steps this way, with ``DistributedDataParallel``
        wrappers. See: book/04_practice/distributed.ipynb."""
        saved = {}
        for name, replacement in replacements.items():
            found = [attr for attr, value in vars(self).items() if value is self.models[name]]
            if not found:
                raise ValueError(f"{type(self).__name__} keeps its model {name!r} in no attribute; store it as "
                                 f"self.<attribute> (as GANTask does with self.generator) so that a distributed "
                                 "step can hand it the DistributedDataParallel wrapper")
            for attr in found:
                saved[attr] = self.models[name]
                setattr(self, attr, replacement)
        try:
            yield self
        finally:
            for attr, value in saved.items():
                setattr(self, attr, value)

    def labels_for(self, labels: Tensor | list[int] | int | None, n: int, model: nn.Module) -> Tensor | None:
        """The class labels ``sample(n, labels)`` feeds a conditional ``model``: one int for all
        ``n``, or ``n`` of them (list or tensor); by default 0, 1, 2, ... in turn."""
        if not getattr(self, "conditional", False):
            if labels is not None:
                raise ValueError(f"{type(self).__name__} is unconditional (no num_classes): sample without labels")
            return None
        if labels is None:
            return torch.arange(n, device=self.device) % model.num_classes
        return as_labels(labels, n, self.device)


def _check_labels(labels: Tensor | None, num_classes: int, who: str) -> None:
    if labels is None:
        raise ValueError(f"{who} is conditional (num_classes={num_classes}) but the data has no labels; "
                         "pass data=(images, labels)")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")


def _range_error(images: Tensor, expected: tuple[float, float], who: str) -> ValueError:
    low, high = images.min().item(), images.max().item()
    return ValueError(f"{who} needs images in [{expected[0]:g}, {expected[1]:g}], got [{low:.3g}, {high:.3g}]: "
                      + value_range_hint(low, high, expected))
