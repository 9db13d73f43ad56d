"""DiffusionTask and FlowMatchingTask: a denoising network trained as DDPM or as flow matching (Part 7).

See: book/07_diffusion/diffusion_mnist.ipynb, book/07_diffusion/flow_matching.ipynb.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from genlab.runtime import eval_mode
from genlab.tasks.base import Task, _check_labels, _range_error, noise

__all__ = ["DiffusionTask", "FlowMatchingTask"]


class _DenoiserTask(Task):
    """What DDPM and flow matching share: one network ``model(x, t, labels=None)``, Adam with a
    linear warm-up, gradient clipping, an EMA copy of the weights and label dropout.

    Data: images in [0, 1] (an ``ImageData`` as ``load_mnist`` returns it), mapped to [-1, 1]
    inside the task; ``sample`` returns images in [0, 1] (clamped).
    """

    divergence_hint = "lower the learning rate (1e-3 to 2e-4 for the book's U-Nets) or keep grad_clip on"

    def __init__(self, model: nn.Module, lr: float = 1e-3, ema_decay: float | None = 0.999,
                 label_dropout: float = 0.1, grad_clip: float | None = 1.0, warmup_steps: int = 100) -> None:
        if lr <= 0 or warmup_steps < 0 or (grad_clip is not None and grad_clip <= 0):
            raise ValueError(f"need lr > 0, warmup_steps >= 0, grad_clip > 0 or None; got {lr}, {warmup_steps}, "
                             f"{grad_clip}")
        if ema_decay is not None and not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) or None (no EMA), got {ema_decay}")
        if not 0 <= label_dropout < 1:
            raise ValueError(f"label_dropout must be in [0, 1), got {label_dropout}")
        self.model, self.lr, self.ema_decay, self.label_dropout = model, lr, ema_decay, label_dropout
        self.grad_clip, self.warmup_steps = grad_clip, warmup_steps
        self.num_classes = getattr(model, "num_classes", None)
        self.conditional = self.num_classes is not None
        self.models = {"model": model}
        if ema_decay is not None:  # a frozen copy; the Trainer moves and checkpoints it with the model
            self.ema = copy.deepcopy(model).requires_grad_(False)
            self.models["ema"] = self.ema
        self.optimizers = {"model": torch.optim.Adam(model.parameters(), lr=lr)}

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        name = type(self).__name__
        if images.dim() != 4:
            raise ValueError(f"{name} needs images of shape (N, C, H, W), got {tuple(images.shape)}")
        if images.min() < 0 or images.max() > 1:
            raise _range_error(images, (0.0, 1.0), f"{name} (it maps [0, 1] pixels to [-1, 1] itself)")
        if self.conditional:
            _check_labels(labels, self.num_classes, name)

    def _train_labels(self, labels: Tensor | None, generator: torch.Generator | None) -> Tensor | None:
        """The labels the network sees in training: each replaced by the null label with
        probability ``label_dropout`` (so one network also learns the unconditional model)."""
        if not self.conditional:
            return None
        if self.label_dropout > 0:
            drop = noise("rand", (len(labels),), generator, labels.device) < self.label_dropout
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        return labels

    def _loss(self, x: Tensor, labels: Tensor | None, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        images, labels = batch
        x = images * 2 - 1  # (B, C, H, W) in [-1, 1]
        optimizer = self.optimizers["model"]
        lr = self.lr * min(1.0, step / self.warmup_steps) if self.warmup_steps else self.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        with self.autocast():
            loss = self._loss(x, self._train_labels(labels, generator), generator).float()
        self.update("model", loss, self.grad_clip)
        if self.ema_decay is not None:
            # warm-up of the average (as in many DDPM codes): early on, the EMA follows the model closely
            decay = min(self.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for p_ema, p in zip(self.ema.parameters(), self.model.parameters()):
                    p_ema.lerp_(p, 1 - decay)
        return {"loss": loss.detach()}

    def network(self, use_ema: bool = True) -> nn.Module:
        """The EMA copy (``use_ema=True`` and EMA on) or the trained network itself."""
        return self.ema if use_ema and self.ema_decay is not None else self.model

    def guided(self, net: nn.Module, labels: Tensor | None, guidance: float, time_scale: float = 1.0):
        """``fn(x, t) -> prediction`` for a sampler: the network at ``t * time_scale`` with ``labels``;
        with ``guidance`` w != 0, classifier-free guidance (1 + w) f(x, t, y) - w f(x, t, null)."""
        from genlab.diffusion import classifier_free_guidance

        if guidance and not self.conditional:
            raise ValueError("guidance needs a class-conditional model (a UNet built with num_classes)")

        def fn(x: Tensor, t: Tensor) -> Tensor:
            t = t * time_scale
            with self.autocast():
                if not guidance:
                    return net(x, t, labels).float()
                both = net(torch.cat([x, x]), torch.cat([t, t]),
                           torch.cat([labels, torch.full_like(labels, self.num_classes)])).float()
                cond, uncond = both.chunk(2)
                return classifier_free_guidance(cond, uncond, guidance)
        return fn

    def _shape(self, n: int) -> tuple[int, ...]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return (n, self.model.in_channels, self.model.image_size, self.model.image_size)


class DiffusionTask(_DenoiserTask):
    """DDPM (Ho et al., 2020): a network ``model(x_t, t, labels)`` learns to predict the noise eps
    in x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (the simple loss,
    ``genlab.diffusion.diffusion_loss``), t uniform in 1..T of ``schedule`` (default: linear, T = 1000).

    ``lr`` with a linear warm-up over ``warmup_steps``; gradients clipped to ``grad_clip``;
    ``ema_decay``: an exponential moving average of the weights (``None``: none) kept as
    ``models["ema"]``, used by :meth:`sample` unless ``use_ema=False``; ``label_dropout``: for a
    conditional model (``model.num_classes``), the fraction of training labels replaced by the
    null label, which classifier-free guidance needs. Data: images in [0, 1]. Metric: ``loss``.
    See: book/07_diffusion/diffusion_mnist.ipynb.
    """

    def __init__(self, model: nn.Module, schedule=None, lr: float = 1e-3, ema_decay: float | None = 0.999,
                 label_dropout: float = 0.1, grad_clip: float | None = 1.0, warmup_steps: int = 100) -> None:
        from genlab.diffusion import NoiseSchedule

        super().__init__(model, lr, ema_decay, label_dropout, grad_clip, warmup_steps)
        self.schedule = NoiseSchedule(1000, "linear") if schedule is None else schedule

    def _loss(self, x: Tensor, labels: Tensor | None, generator: torch.Generator | None) -> Tensor:
        from genlab.diffusion import diffusion_loss

        return diffusion_loss(lambda x_t, t: self.model(x_t, t, labels), self.schedule, x, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, labels=None, steps: int = 50, sampler: str = "ddim", guidance: float = 0.0,
               eta: float = 0.0, generator: torch.Generator | None = None, use_ema: bool = True) -> Tensor:
        """``n`` images in [0, 1]: ``sampler="ddim"`` (``steps`` network evaluations, ``eta``) or
        ``"ddpm"`` (all T steps; ``steps`` is ignored). ``labels``: see :meth:`Task.labels_for`;
        ``guidance``: the classifier-free guidance weight w (0: the conditional model); each guided
        step costs two network evaluations (batched). Seeded by ``generator``."""
        from genlab.diffusion import ddim_sample, ddpm_sample

        if sampler not in ("ddim", "ddpm"):
            raise ValueError(f"unknown sampler {sampler!r}; expected 'ddim' or 'ddpm'")
        net = self.network(use_ema)
        labels = self.labels_for(labels, n, net)
        fn = self.guided(net, labels, guidance)
        with eval_mode(net):
            if sampler == "ddim":
                x = ddim_sample(fn, self.schedule, self._shape(n), num_steps=steps, eta=eta,
                                generator=generator, device=self.device)
            else:
                x = ddpm_sample(fn, self.schedule, self._shape(n), generator=generator, device=self.device)
        return ((x.clamp(-1, 1) + 1) / 2).float()


class FlowMatchingTask(_DenoiserTask):
    """Flow matching on straight paths (Lipman et al., 2023; Liu et al., 2023): the network learns
    the velocity x_1 - x_0 at x_s = (1 - s) x_0 + s x_1 (noise x_0, data x_1, s ~ U(0, 1);
    ``genlab.flow_matching.flow_matching_loss``). The network sees the time as ``1000 * s``, so
    the U-Net's time embedding serves DDPM and flow matching alike.

    Options as :class:`DiffusionTask` (``lr``, ``warmup_steps``, ``grad_clip``, ``ema_decay``,
    ``label_dropout``). Data: images in [0, 1]. Metric: ``loss``.
    See: book/07_diffusion/flow_matching.ipynb.
    """

    TIME_SCALE = 1000.0

    def _loss(self, x: Tensor, labels: Tensor | None, generator: torch.Generator | None) -> Tensor:
        from genlab.flow_matching import flow_matching_loss

        return flow_matching_loss(lambda x_s, s: self.model(x_s, s * self.TIME_SCALE, labels), x, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, labels=None, steps: int = 50, sampler: str = "euler", guidance: float = 0.0,
               generator: torch.Generator | None = None, use_ema: bool = True) -> Tensor:
        """``n`` images in [0, 1] by integrating the learned ODE from s = 0 to 1: ``sampler="euler"``
        (``steps`` network evaluations) or ``"heun"`` (``steps`` steps, 2 * steps - 1 evaluations:
        the last step is a plain Euler step).
        ``labels`` and ``guidance`` as in :meth:`DiffusionTask.sample`. Seeded by ``generator``."""
        from genlab.flow_matching import euler_sample, heun_sample

        if sampler not in ("euler", "heun"):
            raise ValueError(f"unknown sampler {sampler!r}; expected 'euler' or 'heun'")
        net = self.network(use_ema)
        labels = self.labels_for(labels, n, net)
        fn = self.guided(net, labels, guidance, time_scale=self.TIME_SCALE)
        integrate = euler_sample if sampler == "euler" else heun_sample
        with eval_mode(net):
            x = integrate(fn, self._shape(n), num_steps=steps, generator=generator, device=self.device)
        return ((x.clamp(-1, 1) + 1) / 2).float()
