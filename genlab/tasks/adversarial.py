"""GANTask: a generator and a discriminator or critic (Parts 2 and 4).

See: book/04_practice/mlp_gan.ipynb, book/04_practice/dcgan.ipynb, book/04_practice/cgan_wgan.ipynb.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from genlab.losses import GAN_LOSSES, discriminator_loss, generator_loss, gradient_penalty
from genlab.runtime import eval_mode
from genlab.tasks.base import Task, _check_labels, _range_error, noise

__all__ = ["GANTask"]


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
