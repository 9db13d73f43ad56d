"""Tasks: what is trained and how one step goes (the :class:`genlab.training.Trainer` runs the loop).

A task owns its models and optimisers (dicts by name), ``training_step(batch, step, generator)``
returning a dict of detached scalar tensors (its metrics), and ``sample``. It also knows what can
go wrong with it: ``check_data`` (before training), ``divergence_hint`` (the advice of a
``TrainingDivergedError``) and ``check_health`` (a warning about a run that is finite but failing):

* :class:`GANTask` - a generator and a discriminator/critic, any loss of ``genlab.losses.GAN_LOSSES``;
* :class:`VAETask` - a VAE trained on the negative ELBO (beta, KL warm-up, free bits);
* :class:`LanguageModelTask` - next-token prediction;
* :class:`DiffusionTask` / :class:`FlowMatchingTask` - a denoising network (DDPM's eps or flow
  matching's velocity), with an EMA of the weights and label dropout for classifier-free guidance.

Subclass :class:`Task` for a new kind of model. See: book/04_practice/genlab_tour.ipynb.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.data.images import value_range_hint
from genlab.losses import GAN_LOSSES, discriminator_loss, elbo, generator_loss, gradient_penalty
from genlab.models.gan import as_labels
from genlab.runtime import eval_mode

__all__ = ["DiffusionTask", "FlowMatchingTask", "GANTask", "LanguageModelTask", "Task", "VAETask", "noise"]


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


SATURATED_ROWS = 5  # logged rows in a row with a saturated discriminator before GANTask warns


class GANTask(Task):
    """A GAN: ``n_critic`` discriminator updates, then one generator update, per step.

    ``loss`` is a key of ``genlab.losses.GAN_LOSSES``: ``"minimax"`` / ``"non_saturating"``
    (binary cross-entropy D), ``"hinge"``, ``"wasserstein"`` (WGAN-GP with ``gp_weight`` > 0,
    e.g. 10 with ``lr=1e-4, betas=(0.0, 0.9), n_critic=5``; the original WGAN with
    ``clip_weights=0.01``, ``optimizer="rmsprop", lr=5e-5``). Metrics: ``loss_d`` (without the
    penalty), ``loss_g``, ``d_real``/``d_fake`` (mean D(x) = sigmoid(logit) for BCE losses, the
    mean score otherwise), and ``gp``. Conditional when ``generator.num_classes`` is set: fake
    labels are drawn uniformly (with a penalty, the critic's fakes reuse the real labels so that
    interpolates stay within a class). Image data (4-D) must lie in [-1, 1], the range of the
    tanh generators; other data (2-D toy points) is not checked. With a BCE loss, a discriminator
    saturated on the fakes (mean D(G(z)) < 0.001, as when D(x) -> 1 and D(G(z)) -> 0, or > 0.999)
    for ``SATURATED_ROWS`` logged rows in a row gets a warning (:meth:`check_health`).
    ``reuse_fakes=True`` (``n_critic=1`` only) is pytorch/examples' DCGAN loop: the generator's
    step scores the discriminator step's fakes again (with gradients) instead of drawing fresh
    noise, one generator forward pass per step instead of two.
    See: book/04_practice/mlp_gan.ipynb (WGAN: cgan_wgan.ipynb).
    """

    divergence_hint = ("lower the learning rate (2e-4 to 1e-3 for the book's GANs), check the images are finite "
                       "and in [-1, 1], or add a gradient penalty (gp_weight)")

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: str = "non_saturating",
                 lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), n_critic: int = 1,
                 gp_weight: float = 0.0, clip_weights: float | None = None, conditional: bool | None = None,
                 optimizer: str = "adam", reuse_fakes: bool = False) -> None:
        if loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}; expected one of {list(GAN_LOSSES)}")
        if n_critic < 1 or gp_weight < 0 or (clip_weights is not None and clip_weights <= 0):
            raise ValueError(f"need n_critic >= 1, gp_weight >= 0, clip_weights > 0 or None; got "
                             f"{n_critic}, {gp_weight}, {clip_weights}")
        if reuse_fakes and n_critic != 1:
            raise ValueError(f"reuse_fakes=True needs n_critic=1 (one batch of fakes per step), "
                             f"got n_critic={n_critic}")
        if gp_weight > 0 and clip_weights is not None:
            raise ValueError("choose one Lipschitz constraint: gp_weight (WGAN-GP) or clip_weights (WGAN)")
        if loss == "wasserstein" and gp_weight == 0 and clip_weights is None:
            warnings.warn("loss='wasserstein' without gp_weight or clip_weights: the critic is unconstrained "
                          "and its scores can grow without bound", stacklevel=2)
        num_classes = getattr(generator, "num_classes", None)
        self.conditional = num_classes is not None if conditional is None else bool(conditional)
        if self.conditional and num_classes is None:
            raise ValueError("conditional=True needs a generator built with num_classes")
        if optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"unknown optimizer {optimizer!r}; expected 'adam' or 'rmsprop'")
        self.generator, self.discriminator = generator, discriminator
        self.loss, self.n_critic, self.gp_weight, self.clip_weights = loss, n_critic, gp_weight, clip_weights
        self.reuse_fakes = reuse_fakes
        self.d_kind, self.g_kind = GAN_LOSSES[loss]
        self.batches_per_step = n_critic
        self.models = {"generator": generator, "discriminator": discriminator}

        def make(params):
            return (torch.optim.Adam(params, lr=lr, betas=betas) if optimizer == "adam"
                    else torch.optim.RMSprop(params, lr=lr))
        self.optimizers = {"generator": make(generator.parameters()),
                           "discriminator": make(discriminator.parameters())}

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        if self.conditional:
            _check_labels(labels, self.generator.num_classes, "GANTask")
        if images.dim() != 4:
            return
        if images.min() < -1 - 1e-4 or images.max() > 1 + 1e-4:
            raise _range_error(images, (-1.0, 1.0), "GANTask (a tanh generator emits [-1, 1])")
        if images.min() >= 0 and images.max() > 0.5:
            warnings.warn("GAN images look like [0, 1] but a tanh generator emits [-1, 1]; load them with "
                          "value_range=(-1, 1)", stacklevel=3)

    def check_health(self, history) -> str | None:
        """Warn when a BCE discriminator stays saturated on the fakes: D(G(z)) ~ 0 or ~ 1 (see the class)."""
        if self.d_kind != "minimax" or len(history) < SATURATED_ROWS:
            return None
        if not all(fake < 0.001 or fake > 0.999 for fake in history.metrics["d_fake"][-SATURATED_ROWS:]):
            return None
        lr = self.optimizers["discriminator"].param_groups[0]["lr"]
        return (f"GANTask: the discriminator's output on generated images has been stuck at 0 or 1 for "
                f"{SATURATED_ROWS} logged rows in a row (mean D(x) = {history.last('d_real'):.4f}, D(G(z)) = "
                f"{history.last('d_fake'):.4f}, loss_g = {history.last('loss_g'):.3g}): a saturated sigmoid, "
                f"so the generator gets no useful signal. The likely cause is a learning rate far too high "
                f"(lr={lr:g}); lower it (the book's GANs use 2e-4 to 1e-3). Otherwise check the images are in "
                "[-1, 1] and that the discriminator is not much stronger than the generator.")

    def _fake(self, n: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        device = self.device
        z = noise("randn", (n, self.generator.latent_dim), generator, device)  # (n, latent_dim)
        labels = noise("randint", (n,), generator, device, self.generator.num_classes) if self.conditional else None
        return z, labels

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        images, labels = batch
        G, D = self.generator, self.discriminator
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        label_chunks = labels.chunk(self.n_critic) if self.conditional else [None] * self.n_critic
        metrics = {}
        for real, real_labels in zip(images.chunk(self.n_critic), label_chunks):  # n_critic x (B, ...)
            z, fake_labels = self._fake(real.shape[0], generator)
            if self.conditional and self.gp_weight > 0:
                fake_labels = real_labels
            with self.autocast():
                if self.reuse_fakes:
                    fake_for_g = G(z, fake_labels)  # (B, ...) kept with its graph for the generator's step
                    fake = fake_for_g.detach()  # no generator gradients in the critic's step
                else:
                    with torch.no_grad():
                        fake = G(z, fake_labels)  # no generator gradients in the critic's step
                real_logits, fake_logits = D(real, real_labels).float(), D(fake, fake_labels).float()  # (B,)
                loss_d = discriminator_loss(real_logits, fake_logits, kind=self.d_kind)
            total = loss_d
            if self.gp_weight > 0:  # in fp32, outside autocast: a norm of gradients
                gp = gradient_penalty(D, real, fake.float(), labels=fake_labels if self.conditional else None,
                                      generator=generator)
                total = loss_d + self.gp_weight * gp
                metrics["gp"] = gp.detach()
            opt_d.zero_grad(set_to_none=True)
            total.backward()
            opt_d.step()
            if self.clip_weights is not None:
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-self.clip_weights, self.clip_weights)
        bce = self.d_kind == "minimax"
        metrics["loss_d"] = loss_d.detach()
        metrics["d_real"] = (torch.sigmoid(real_logits) if bce else real_logits).detach().mean()
        metrics["d_fake"] = (torch.sigmoid(fake_logits) if bce else fake_logits).detach().mean()

        D.requires_grad_(False)  # the generator's step needs gradients w.r.t. G only
        try:
            if not self.reuse_fakes:
                z, fake_labels = self._fake(images.shape[0] // self.n_critic, generator)
            with self.autocast():
                fake = fake_for_g if self.reuse_fakes else G(z, fake_labels)  # (B, ...)
                loss_g = generator_loss(D(fake, fake_labels).float(), kind=self.g_kind)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        finally:
            D.requires_grad_(True)
        metrics["loss_g"] = loss_g.detach()
        return metrics

    @torch.no_grad()
    def sample(self, n: int, labels=None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images in [-1, 1] from the generator in eval mode (``labels``: see :meth:`Task.labels_for`)."""
        labels = self.labels_for(labels, n, self.generator)
        with eval_mode(self.generator):
            z = noise("randn", (n, self.generator.latent_dim), generator, self.device)
            with self.autocast():
                return self.generator(z, labels).float()


class VAETask(Task):
    """A VAE trained by minimising ``-mean ELBO`` (``genlab.losses.elbo``).

    ``beta`` weights the KL (beta-VAE); with ``kl_warmup_steps`` > 0 it ramps linearly
    ``beta_t = beta * min(1, t / kl_warmup_steps)``; ``free_bits`` floors each latent
    dimension's KL; ``binarize=True`` draws ``x ~ Bernoulli(pixels)`` afresh for every batch
    (the IWAE protocol). Metrics: ``loss``, ``reconstruction``, ``kl`` (nats), ``beta``.
    See: book/03_vae/mnist_vae.ipynb (beta and free bits: book/03_vae/beta_vae.ipynb).
    """

    def __init__(self, model: nn.Module, lr: float = 1e-3, beta: float = 1.0, free_bits: float = 0.0,
                 kl_warmup_steps: int = 0, binarize: bool = False) -> None:
        if beta < 0 or free_bits < 0 or kl_warmup_steps < 0:
            raise ValueError(f"beta, free_bits and kl_warmup_steps must be >= 0, got {beta}, {free_bits}, "
                             f"{kl_warmup_steps}")
        self.model, self.beta, self.free_bits = model, beta, free_bits
        self.kl_warmup_steps, self.binarize = kl_warmup_steps, binarize
        self.conditional = getattr(model, "num_classes", None) is not None
        self.models = {"vae": model}
        self.optimizers = {"vae": torch.optim.Adam(model.parameters(), lr=lr)}

    divergence_hint = "lower the learning rate, or check the images are finite and in [0, 1]"

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        if images.min() < 0 or images.max() > 1:
            raise _range_error(images, (0.0, 1.0), "VAETask (its decoders model pixels in [0, 1])")
        if self.conditional:
            _check_labels(labels, self.model.num_classes, "VAETask")

    def beta_at(self, step: int) -> float:
        """The KL weight used at ``step`` (1-based)."""
        if self.kl_warmup_steps == 0:
            return self.beta
        return self.beta * min(1.0, step / self.kl_warmup_steps)

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        images, labels = batch
        x = torch.bernoulli(images, generator=generator) if self.binarize else images  # (B, 1, 28, 28)
        beta = self.beta_at(step)
        with self.autocast():
            terms = elbo(self.model, x, labels if self.conditional else None, beta=beta,
                         free_bits=self.free_bits, generator=generator)
            loss = -terms.elbo.float().mean()
        optimizer = self.optimizers["vae"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach(), "reconstruction": terms.reconstruction.detach().float().mean(),
                "kl": terms.kl.detach().float().mean(), "beta": beta}

    @torch.no_grad()
    def sample(self, n: int, labels=None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images in [0, 1] (``model.sample`` in eval mode; ``labels``: see :meth:`Task.labels_for`)."""
        labels = self.labels_for(labels, n, self.model)
        with eval_mode(self.model):
            return self.model.sample(n, labels=labels, generator=generator).float()


class LanguageModelTask(Task):
    """Next-token prediction: minimise the cross-entropy of ``y = ids[i+1 : i+T+1]`` given ``x = ids[i : i+T]``.

    AdamW with ``weight_decay``; gradients clipped to norm ``grad_clip`` (None: no clipping).
    Metric: ``loss`` in nats per token (divide by ln 2 for bits per character). Sample text with
    ``genlab.models.text.generate(task.model, prompt_ids, max_new_tokens)``.
    See: book/05_applications/text_generation.ipynb.
    """

    data_kind = "tokens"
    divergence_hint = "lower the learning rate, or clip gradients (grad_clip=1.0)"

    def __init__(self, model: nn.Module, lr: float = 3e-3, weight_decay: float = 0.0, block_size: int = 128,
                 grad_clip: float | None = 1.0) -> None:
        limit = getattr(model, "block_size", None)
        if block_size < 1 or (limit is not None and block_size > limit):
            raise ValueError(f"block_size must be in [1, {limit or 'inf'}] (the model's context), got {block_size}")
        self.model, self.block_size, self.grad_clip = model, block_size, grad_clip
        self.models = {"model": model}
        self.optimizers = {"model": torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)}

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        x, y = batch  # (B, T) each
        with self.autocast():
            logits = self.model(x)  # (B, T, V)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        optimizer.step()
        return {"loss": loss.detach()}


# --------------------------------------------------------------------------- diffusion (Part 7)


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
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        optimizer.step()
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
