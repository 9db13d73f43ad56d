"""GAN generators and discriminators: MLP and DCGAN for MNIST, small MLPs for 2-D toy data.

Contract (what the losses and the trainer rely on)
    Generators: ``forward(z, labels=None)`` maps ``z`` of shape (B, latent_dim) to ``tanh``
    images (B, 1, 28, 28) in [-1, 1] (toy generators: points (B, 2), no ``tanh``).
    Discriminators and critics: ``forward(x, labels=None)`` returns *raw* logits/scores of
    shape (B,) - never a sigmoid; the losses apply ``logsigmoid`` themselves.

Conditioning (``num_classes=K``)
    Generator: the one-hot label is concatenated to ``z`` (Mirza & Osindero, 2014). A one-hot
    vector fed to a ``Linear`` layer is exactly a learned per-class embedding added to the
    first layer, so nothing is lost by not writing an ``nn.Embedding``.
    Discriminator: the *projection* discriminator (Miyato & Koyama, 2018)::

        D(x, y) = w^T phi(x) + b + <e_y, phi(x)>

    with ``phi(x)`` the penultimate features and ``e_y`` a learned class embedding. It keeps
    the output a linear read-out of per-example features, which suits the hinge and
    Wasserstein losses and keeps the WGAN-GP penalty valid.
    Conditional models *require* labels; unconditional ones refuse them with a clear error.

See: book/04_practice/mlp_gan.ipynb, book/04_practice/dcgan.ipynb,
book/04_practice/cgan_wgan.ipynb, book/02_gan_math/mode_collapse.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "IMAGE_SHAPE", "DCGANCritic", "DCGANDiscriminator", "DCGANGenerator", "DiscriminatorBase", "GeneratorBase",
    "MLPDiscriminator", "MLPGenerator", "MinibatchDiscrimination", "ToyDiscriminator", "ToyGenerator",
    "append_one_hot", "as_labels", "check_images", "check_labels", "count_parameters", "init_dcgan_weights",
    "standard_normal",
]

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


# ----------------------------------------------------------------------------- helpers


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``; shared (tied) tensors count once.

    See: book/04_practice/dcgan.ipynb."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def standard_normal(shape: Sequence[int], *, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> Tensor:
    """``eps ~ N(0, I)`` of ``shape`` on ``device``, drawn from ``generator`` when given.

    The generator may live on another device than the result (a CPU generator for a model
    on the GPU): the draw happens on the generator's device and is then moved, so a seed
    gives the same numbers wherever the model runs.
    See: book/03_vae/reparameterisation.ipynb.
    """
    if generator is None:
        return torch.randn(*shape, device=device, dtype=dtype)
    eps = torch.randn(*shape, generator=generator, device=generator.device, dtype=dtype)
    return eps.to(device) if device is not None else eps


def as_labels(labels, n: int, device: torch.device | str | None = None) -> Tensor | None:
    """Class labels for ``n`` samples as a (n,) tensor on ``device``: ``None`` stays ``None``;
    one int (or 0-d tensor) means "all n of this class"; a list, array or (n,) tensor is taken
    as is (its values are checked by the model). See: book/04_practice/cgan_wgan.ipynb."""
    if labels is None:
        return None
    if isinstance(labels, bool):
        raise TypeError("labels must be an int, a sequence of ints or an integer tensor, got a bool")
    labels = torch.as_tensor(labels, device=device)
    if labels.ndim == 0:
        labels = labels.expand(n)
    if tuple(labels.shape) != (n,):
        raise ValueError(f"expected one label or {n} labels (one per sample), got shape {tuple(labels.shape)}")
    return labels


def prior_draw(model: nn.Module, n: int, labels: Tensor | int | None,
               generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
    """``z ~ N(0, I)`` of shape (n, model.latent_dim) on the model's device, and labels there too
    (see :func:`as_labels`). Shared by the GAN and VAE ``sample`` methods."""
    device = next(model.parameters()).device
    z = standard_normal((n, model.latent_dim), device=device, generator=generator)
    return z, as_labels(labels, n, device)


def check_labels(labels: Tensor | None, num_classes: int | None, batch_size: int, owner: str) -> Tensor | None:
    """Validate class labels for a model built with ``num_classes`` and return them as int64.

    Conditional models (``num_classes`` set) need ``labels`` of shape (B,) with values in
    ``[0, num_classes)``; unconditional ones (``num_classes=None``) must get ``labels=None``.
    See: book/04_practice/cgan_wgan.ipynb.
    """
    if num_classes is None:
        if labels is not None:
            raise ValueError(f"{owner} is unconditional (num_classes=None) but labels were passed; "
                             "build it with num_classes=K to condition on labels")
        return None
    if labels is None:
        raise ValueError(f"{owner} is conditional (num_classes={num_classes}): pass labels, a (B,) int64 tensor")
    if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.dtype.is_complex \
            or labels.dtype == torch.bool:
        raise TypeError(f"{owner}: labels must be an integer tensor, got {type(labels).__name__} "
                        f"{getattr(labels, 'dtype', '')}")
    if tuple(labels.shape) != (batch_size,):
        raise ValueError(f"{owner}: expected labels of shape ({batch_size},), got {tuple(labels.shape)}")
    if labels.numel() and bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(f"{owner}: labels must lie in [0, {num_classes}), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    return labels.long()


def append_one_hot(inputs: Tensor, labels: Tensor | None, num_classes: int | None, owner: str) -> Tensor:
    """``[inputs, one_hot(labels)]`` along dim 1 for conditional models; ``inputs`` unchanged otherwise.

    (B, D) -> (B, D + K). See: book/04_practice/cgan_wgan.ipynb."""
    labels = check_labels(labels, num_classes, inputs.shape[0], owner)
    if labels is None:
        return inputs
    return torch.cat([inputs, F.one_hot(labels, num_classes).to(inputs.dtype)], dim=1)


def check_images(x: Tensor, owner: str) -> None:
    """Raise a clear error unless ``x`` is a float batch of shape (B, 1, 28, 28).

    See: book/04_practice/genlab_tour.ipynb."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: expected a tensor of images, got {type(x).__name__}")
    if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{owner}: expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{owner}: expected float images, got dtype {x.dtype}")


def _check_widths(widths: Sequence[int], name: str, length: int | None = None) -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {widths!r}")
    if length is not None and len(widths) != length:
        raise ValueError(f"{name} must have exactly {length} entries, got {widths!r}")
    return widths


def _mlp_layers(width_in: int, widths: Sequence[int], activation: type[nn.Module] | None = None,
                batch_norm: bool = False) -> list[nn.Module]:
    """[Linear (-> BatchNorm1d) -> activation] for each width: the body of the MLP models."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Linear(width_in, width), *([nn.BatchNorm1d(width)] if batch_norm else [])]
        layers.append(activation() if activation is not None else nn.LeakyReLU(0.2))
        width_in = width
    return layers


def _check_num_classes(num_classes: int | None) -> int | None:
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"num_classes must be None or an int >= 2, got {num_classes!r}")
    return num_classes


def init_dcgan_weights(module: nn.Module) -> nn.Module:
    """Radford et al. (2016) initialisation of every sub-module, in place; returns ``module``.

    Conv/ConvTranspose/Linear weights ~ N(0, 0.02), biases 0; BatchNorm weights ~ N(1, 0.02),
    biases 0; embeddings (projection discriminator) ~ N(0, 0.02). Call it once on the whole
    model (``init_dcgan_weights(model)``); it draws from the global RNG (``seed_everything``).
    See: book/04_practice/dcgan.ipynb.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
    return module


# ----------------------------------------------------------------------------- base classes


class GeneratorBase(nn.Module):
    """What every generator shares: ``latent_dim``, ``num_classes``, the conditioned input and ``sample``.

    See: book/04_practice/mlp_gan.ipynb.
    """

    def __init__(self, latent_dim: int, num_classes: int | None) -> None:
        super().__init__()
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {latent_dim!r}")
        self.latent_dim = latent_dim
        self.num_classes = _check_num_classes(num_classes)

    @property
    def input_dim(self) -> int:
        """Width of the first layer's input: ``latent_dim`` plus ``num_classes`` when conditional."""
        return self.latent_dim + (self.num_classes or 0)

    def conditioned_latent(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """Check ``z`` is (B, latent_dim) and append the one-hot label: (B, latent_dim [+ K])."""
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{type(self).__name__}: expected z of shape (B, {self.latent_dim}), "
                             f"got {tuple(getattr(z, 'shape', ()))}")
        return append_one_hot(z, labels, self.num_classes, type(self).__name__)

    def sample(self, n: int, labels: Tensor | int | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """``G(z)`` for ``n`` draws ``z ~ N(0, I)`` on the model's device.

        ``labels`` (conditional models only): one int for all samples, or n of them (list or tensor).
        The train/eval mode is left to the caller: in train mode BatchNorm uses the
        batch's statistics (as during training, needs n > 1), in eval mode its running
        averages. Gradients flow (the trainer samples fakes with it); wrap display code in
        ``torch.no_grad()``. See: book/04_practice/mlp_gan.ipynb.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        z, labels = prior_draw(self, n, labels, generator)
        return self(z, labels)


class DiscriminatorBase(nn.Module):
    """A feature extractor ``phi`` plus the (projection) read-out: ``w^T phi(x) + b [+ <e_y, phi(x)>]``.

    Subclasses implement :meth:`features`, (B, ...) -> (N, feature_dim).
    See: book/04_practice/cgan_wgan.ipynb.
    """

    def __init__(self, feature_dim: int, num_classes: int | None) -> None:
        super().__init__()
        self.num_classes = _check_num_classes(num_classes)
        self.head = nn.Linear(feature_dim, 1)
        self.class_embedding = nn.Embedding(num_classes, feature_dim) if num_classes else None
        if self.class_embedding is not None:
            nn.init.normal_(self.class_embedding.weight, 0.0, 0.02)

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Raw logits/scores, shape (B,) (no sigmoid)."""
        h = self.features(x)  # (B, F); also checks the shape of x
        labels = check_labels(labels, self.num_classes, x.shape[0], type(self).__name__)
        logits = self.head(h).squeeze(1)  # (B,)
        if labels is not None:
            logits = logits + (self.class_embedding(labels) * h).sum(dim=1)  # projection term
        return logits


# ----------------------------------------------------------------------------- MLP GAN


class MLPGenerator(GeneratorBase):
    """Fully connected generator: [Linear -> BatchNorm1d -> LeakyReLU(0.2)] x 3 -> Linear(784) -> tanh.

    The architecture of the classic MLP GAN (widths 256-512-1024), output reshaped to
    (B, 1, 28, 28) in [-1, 1]. See: book/04_practice/mlp_gan.ipynb.
    """

    def __init__(self, latent_dim: int = 100, hidden: Sequence[int] = (256, 512, 1024),
                 num_classes: int | None = None) -> None:
        super().__init__(latent_dim, num_classes)
        hidden = _check_widths(hidden, "hidden")
        body = _mlp_layers(self.input_dim, hidden, batch_norm=True)  # LeakyReLU(0.2) activations
        self.net = nn.Sequential(*body, nn.Linear(hidden[-1], IMAGE_PIXELS), nn.Tanh())

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.conditioned_latent(z, labels)  # (B, latent_dim [+ K])
        return self.net(h).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28)


class MLPDiscriminator(DiscriminatorBase):
    """Flatten -> [Linear -> LeakyReLU(0.2)] x 2 (512-256) -> one logit per image, shape (B,).

    See: book/04_practice/mlp_gan.ipynb.
    """

    def __init__(self, hidden: Sequence[int] = (512, 256), num_classes: int | None = None) -> None:
        hidden = _check_widths(hidden, "hidden")
        super().__init__(hidden[-1], num_classes)
        self.body = nn.Sequential(*_mlp_layers(IMAGE_PIXELS, hidden))  # LeakyReLU(0.2) activations

    def features(self, x: Tensor) -> Tensor:
        check_images(x, type(self).__name__)
        return self.body(x.flatten(1))  # (B, 784) -> (B, 256)


# ----------------------------------------------------------------------------- DCGAN


class DCGANGenerator(GeneratorBase):
    """DCGAN generator for 28x28: z -> Linear -> (128, 7, 7) -> ConvT -> (64, 14, 14) -> ConvT -> (1, 28, 28).

    Each ``ConvTranspose2d(kernel 4, stride 2, padding 1)`` doubles the side:
    ``out = (in - 1) * 2 - 2 * 1 + 4 = 2 * in``, so 7 -> 14 -> 28. About 0.76M parameters at
    the defaults. Weights use the DCGAN initialisation (:func:`init_dcgan_weights`).
    See: book/04_practice/dcgan.ipynb.
    """

    def __init__(self, latent_dim: int = 100, channels: Sequence[int] = (128, 64),
                 num_classes: int | None = None) -> None:
        super().__init__(latent_dim, num_classes)
        self.channels = c1, c2 = _check_widths(channels, "channels", length=2)
        self.project = nn.Linear(self.input_dim, c1 * 7 * 7, bias=False)  # BatchNorm follows: no bias
        self.norm0 = nn.BatchNorm2d(c1)
        self.up1 = nn.ConvTranspose2d(c1, c2, kernel_size=4, stride=2, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(c2)
        self.up2 = nn.ConvTranspose2d(c2, 1, kernel_size=4, stride=2, padding=1)
        init_dcgan_weights(self)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.conditioned_latent(z, labels)  # (B, latent_dim [+ K])
        x = self.project(h).view(-1, self.channels[0], 7, 7)  # (B, 128, 7, 7)
        x = F.relu(self.norm0(x))
        x = F.relu(self.norm1(self.up1(x)))  # (B, 64, 14, 14)
        return torch.tanh(self.up2(x))  # (B, 1, 28, 28)


class DCGANDiscriminator(DiscriminatorBase):
    """DCGAN discriminator: Conv 28 -> 14 -> LeakyReLU -> Conv 14 -> 7 (+BN) -> LeakyReLU -> Linear -> (B,).

    No BatchNorm on the first layer (Radford et al., 2016); ``batch_norm=True`` adds it to the
    second. ``dropout`` (opt-in, default 0) follows each activation: TensorFlow's DCGAN tutorial
    uses 0.3, but on a CPU it costs about 40% of every step and, measured in
    benchmarks/RESULTS.md (time to quality), reached each FID-MNIST threshold later, not sooner.
    Weights use :func:`init_dcgan_weights`. See: book/04_practice/dcgan.ipynb.
    """

    def __init__(self, channels: Sequence[int] = (64, 128), num_classes: int | None = None,
                 batch_norm: bool = False, dropout: float = 0.0) -> None:
        c1, c2 = _check_widths(channels, "channels", length=2)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(c2 * 7 * 7, num_classes)
        self.down1 = nn.Conv2d(1, c1, kernel_size=4, stride=2, padding=1)
        self.down2 = nn.Conv2d(c1, c2, kernel_size=4, stride=2, padding=1, bias=not batch_norm)
        self.norm2 = nn.BatchNorm2d(c2) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        init_dcgan_weights(self)

    def features(self, x: Tensor) -> Tensor:
        check_images(x, type(self).__name__)
        x = self.dropout(F.leaky_relu(self.down1(x), 0.2))  # (B, 64, 14, 14)
        x = self.dropout(F.leaky_relu(self.norm2(self.down2(x)), 0.2))  # (B, 128, 7, 7)
        return x.flatten(1)  # (B, 6272)


class DCGANCritic(DCGANDiscriminator):
    """The DCGAN discriminator as a WGAN(-GP) critic: no BatchNorm, no dropout by default.

    The gradient penalty ``E(||grad_x D(x)||_2 - 1)^2`` is defined per example; BatchNorm makes
    each score depend on the whole batch and breaks it (Gulrajani et al., 2017). Scores are
    unbounded reals, shape (B,). See: book/04_practice/cgan_wgan.ipynb.
    """

    def __init__(self, channels: Sequence[int] = (64, 128), num_classes: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__(channels, num_classes, batch_norm=False, dropout=dropout)


# ----------------------------------------------------------------------------- 2-D toy models


class ToyGenerator(GeneratorBase):
    """MLP generator for 2-D toy data: ``depth`` x [Linear -> ReLU] -> Linear(2), no tanh; (B, 2).

    See: book/02_gan_math/mode_collapse.ipynb.
    """

    def __init__(self, latent_dim: int = 2, hidden: int = 128, depth: int = 3) -> None:
        super().__init__(latent_dim, None)
        if hidden < 1 or depth < 1:
            raise ValueError(f"hidden and depth must be positive, got hidden={hidden}, depth={depth}")
        self.net = nn.Sequential(*_mlp_layers(latent_dim, [hidden] * depth, nn.ReLU), nn.Linear(hidden, 2))

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(self.conditioned_latent(z, labels))  # (B, 2)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al., 2016): features that compare a sample to the batch.

    With ``M_i = h_i T`` reshaped to (num_kernels, kernel_dim) for each sample ``i``::

        o(x_i)_b = sum_{j != i} exp(-||M_{i,b} - M_{j,b}||_1)

    A collapsed generator's samples are all close, so ``o`` is large for them and the
    discriminator can tell. (The paper's sum includes ``j = i``, a constant 1; we drop it.)
    (N, in_features) -> (N, num_kernels). See: book/02_gan_math/mode_collapse.ipynb.
    """

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int = 5) -> None:
        super().__init__()
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim
        self.T = nn.Parameter(0.1 * torch.randn(in_features, num_kernels * kernel_dim))

    def forward(self, h: Tensor) -> Tensor:
        m = (h @ self.T).view(-1, self.num_kernels, self.kernel_dim)  # (N, nk, kd)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(dim=3)  # (N, N, nk)
        return torch.exp(-l1).sum(dim=1) - 1.0  # (N, nk): exp(0) = 1 is the j = i term


class ToyDiscriminator(DiscriminatorBase):
    """MLP discriminator for 2-D points with PacGAN packing and optional minibatch discrimination.

    ``pack = m`` (Lin et al., 2018): consecutive groups of ``m`` samples (all real or all fake)
    are concatenated into one input of width ``2 m``: (B, 2) -> (B / m, 2 m) -> (B / m,)
    logits. B must be divisible by ``pack``. ``minibatch_features > 0`` appends
    :class:`MinibatchDiscrimination` features before the last layer; then a logit depends on
    the rest of the batch (so do not combine it with a per-example gradient penalty).
    See: book/02_gan_math/mode_collapse.ipynb.
    """

    def __init__(self, hidden: int = 128, depth: int = 3, pack: int = 1, minibatch_features: int = 0,
                 minibatch_kernel_dim: int = 5) -> None:
        if hidden < 1 or depth < 1 or pack < 1 or minibatch_features < 0 or minibatch_kernel_dim < 1:
            raise ValueError(f"invalid ToyDiscriminator sizes: hidden={hidden}, depth={depth}, pack={pack}, "
                             f"minibatch_features={minibatch_features}, minibatch_kernel_dim={minibatch_kernel_dim}")
        super().__init__(hidden + minibatch_features, None)
        self.pack = pack
        self.body = nn.Sequential(*_mlp_layers(2 * pack, [hidden] * depth))  # LeakyReLU(0.2) activations
        self.minibatch = (MinibatchDiscrimination(hidden, minibatch_features, minibatch_kernel_dim)
                          if minibatch_features else None)

    def features(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"ToyDiscriminator: expected points of shape (B, 2), got {tuple(getattr(x, 'shape', ()))}")
        batch = x.shape[0]
        if batch % self.pack:
            raise ValueError(f"PacGAN packing: batch size {batch} is not divisible by pack={self.pack}")
        packed = x.reshape(batch // self.pack, 2 * self.pack)  # (B/pack, 2*pack), consecutive samples
        h = self.body(packed)  # (B/pack, hidden)
        if self.minibatch is not None:
            h = torch.cat([h, self.minibatch(h)], dim=1)  # (B/pack, hidden + minibatch_features)
        return h
