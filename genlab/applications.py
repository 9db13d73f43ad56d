"""Small pieces for the application chapters: super-resolution and real-versus-generated detection.

Super-resolution (book/05_applications/super_resolution.ipynb)
    :func:`downsample` makes the 14x14 inputs (2x2 average pooling), :func:`psnr` measures
    distortion, :class:`SuperResolutionNet` upsamples 14x14 -> 28x28 (a sub-pixel convolution
    network), :class:`PatchDiscriminator` judges 7x7 patches of a high-resolution image given
    its low-resolution input, and :class:`SuperResolutionTask` trains the network with a pixel
    loss, optionally plus an adversarial loss, under :class:`genlab.training.Trainer`.

Detection (book/05_applications/detection.ipynb)
    :func:`train_detector` trains a binary real-versus-generated classifier (the architecture of
    :class:`genlab.classifier.MNISTClassifier` with two outputs) and :func:`detector_accuracy`
    scores it on held-out real and generated images.

Images are (B, 1, 28, 28) in [0, 1], low-resolution inputs (B, 1, 14, 14) in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.classifier import MNISTClassifier, check_unit_images
from genlab.losses import discriminator_loss, generator_loss
from genlab.runtime import eval_mode
from genlab.tasks import Task

__all__ = [
    "PatchDiscriminator",
    "SuperResolutionNet",
    "SuperResolutionTask",
    "detector_accuracy",
    "downsample",
    "psnr",
    "train_detector",
]


# ----------------------------------------------------------------------------- super-resolution


def _check_batch(x: Tensor, side: int, what: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, side, side):
        raise ValueError(f"expected {what} of shape (B, 1, {side}, {side}), got {tuple(getattr(x, 'shape', ()))}")


def downsample(images: Tensor, factor: int = 2) -> Tensor:
    """Low-resolution version of ``images`` (B, C, H, W): the mean of each ``factor x factor`` block.

    Average pooling is the degradation model of the chapter: (B, 1, 28, 28) -> (B, 1, 14, 14).
    It is linear and many-to-one: adding any pattern whose block means are zero leaves the
    result unchanged. See: book/05_applications/super_resolution.ipynb.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    if factor < 1 or images.shape[-1] % factor or images.shape[-2] % factor:
        raise ValueError(f"factor {factor} must be >= 1 and divide the image size {tuple(images.shape[-2:])}")
    return F.avg_pool2d(images, factor)


def psnr(estimate: Tensor, target: Tensor, max_value: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, in decibels, shape (B,); higher is better.

    ``PSNR = 10 log10(max_value**2 / MSE)`` with ``MSE`` the mean squared error of one image
    (over all its pixels). Identical images give ``inf``; an MSE of 0.01 with ``max_value=1``
    gives exactly 20 dB. Average the result over a test set for a table.
    See: book/05_applications/super_resolution.ipynb.
    """
    if estimate.shape != target.shape or estimate.dim() < 2:
        raise ValueError(f"psnr needs two batches of the same shape (B, ...), got {tuple(estimate.shape)} "
                         f"and {tuple(target.shape)}")
    if max_value <= 0:
        raise ValueError(f"max_value must be positive, got {max_value}")
    mse = (estimate.double() - target.double()).square().flatten(1).mean(1)  # (B,)
    return (10.0 * torch.log10(max_value**2 / mse)).to(estimate.dtype)  # division by 0 -> inf


class SuperResolutionNet(nn.Module):
    """A 2x upsampler: 14x14 -> 28x28, bicubic interpolation plus a learned residual.

    Three 3x3 convolutions at low resolution, a convolution to ``4 * width`` channels that
    ``PixelShuffle(2)`` rearranges into a (width, 28, 28) map (a sub-pixel convolution, Shi et
    al., 2016), and a final 3x3 convolution to one channel: the correction added to the bicubic
    upsampling of the input (residual learning, as in VDSR, Kim et al., 2016). The output is
    *not* clamped, so the pixel loss always has a gradient; clamp it to [0, 1] for display and
    metrics (:meth:`SuperResolutionTask.upsample` does). See: book/05_applications/super_resolution.ipynb.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),  # (B, w, 14, 14)
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        )
        self.up = nn.Sequential(nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.ReLU())
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, low_res: Tensor) -> Tensor:
        _check_batch(low_res, 14, "low-resolution images")
        h = self.body(low_res)  # (B, w, 14, 14)
        h = self.up(h)  # (B, 4w, 14, 14) -> (B, w, 28, 28)
        base = F.interpolate(low_res, scale_factor=2, mode="bicubic", align_corners=False)  # (B, 1, 28, 28)
        return base + self.out(h)  # (B, 1, 28, 28), roughly in [0, 1]


class PatchDiscriminator(nn.Module):
    """A conditional patch discriminator: one raw logit per 7x7 grid cell of a 28x28 image.

    Input: a high-resolution image (real or upsampled) and its 14x14 low-resolution input,
    which is upsampled (nearest) and stacked as a second channel, so the discriminator judges
    "is this a real high-resolution digit *for this input*" (the PatchGAN idea of Isola et al.,
    2017). Output: logits (B, 7, 7), no sigmoid; flatten them for ``genlab.losses``.
    See: book/05_applications/super_resolution.ipynb.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, w, 14, 14)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2w, 7, 7)
            nn.Conv2d(2 * width, 1, 3, padding=1),  # (B, 1, 7, 7)
        )

    def forward(self, high_res: Tensor, low_res: Tensor) -> Tensor:
        _check_batch(high_res, 28, "high-resolution images")
        _check_batch(low_res, 14, "low-resolution images")
        condition = F.interpolate(low_res, scale_factor=2, mode="nearest")  # (B, 1, 28, 28)
        return self.net(torch.cat([high_res, condition], dim=1)).squeeze(1)  # (B, 7, 7)


class SuperResolutionTask(Task):
    """Train a :class:`SuperResolutionNet` on (downsampled, original) pairs made on the fly.

    Each step downsamples a batch of 28x28 digits in [0, 1] and minimises the pixel loss
    (``"l1"``: mean absolute error, ``"l2"``: mean squared error) between the upsampled
    output and the original. With a ``discriminator`` and ``adversarial_weight`` > 0 it first
    updates the discriminator (binary cross-entropy, real = original, fake = output) and then
    adds ``adversarial_weight * generator_loss`` (non-saturating) to the upsampler's loss, as
    SRGAN does (Ledig et al., 2017). Metrics: ``pixel``, ``psnr`` and, with a discriminator,
    ``loss_d``, ``adversarial``. See: book/05_applications/super_resolution.ipynb.
    """

    def __init__(self, upsampler: nn.Module, discriminator: nn.Module | None = None,
                 pixel_loss: str = "l1", adversarial_weight: float = 0.0, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.5, 0.999)) -> None:
        if pixel_loss not in ("l1", "l2"):
            raise ValueError(f"pixel_loss must be 'l1' or 'l2', got {pixel_loss!r}")
        if adversarial_weight < 0 or (adversarial_weight > 0) != (discriminator is not None):
            given = discriminator is not None
            raise ValueError("give a discriminator exactly when adversarial_weight > 0 "
                             f"(got adversarial_weight={adversarial_weight}, discriminator given: {given})")
        self.upsampler, self.discriminator = upsampler, discriminator
        self.pixel_loss, self.adversarial_weight = pixel_loss, adversarial_weight
        self.models = {"upsampler": upsampler}
        self.optimizers = {"upsampler": torch.optim.Adam(upsampler.parameters(), lr=lr, betas=betas)}
        if discriminator is not None:
            self.models["discriminator"] = discriminator
            self.optimizers["discriminator"] = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        check_unit_images(images, "super-resolution targets")

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        high_res, _ = batch  # (B, 1, 28, 28)
        low_res = downsample(high_res)  # (B, 1, 14, 14)
        metrics = {}
        output = self.upsampler(low_res)  # (B, 1, 28, 28)
        if self.discriminator is not None:
            D, opt_d = self.discriminator, self.optimizers["discriminator"]
            fake = output.detach().clamp(0.0, 1.0)  # the discriminator sees valid images only
            loss_d = discriminator_loss(D(high_res, low_res).flatten(), D(fake, low_res).flatten())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            metrics["loss_d"] = loss_d.detach()
        error = output - high_res
        pixel = error.abs().mean() if self.pixel_loss == "l1" else error.square().mean()
        loss = pixel
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)
            try:
                fake_logits = self.discriminator(output.clamp(0.0, 1.0), low_res).flatten()  # (B * 49,)
                adversarial = generator_loss(fake_logits, kind="non_saturating")
            finally:
                self.discriminator.requires_grad_(True)
            loss = pixel + self.adversarial_weight * adversarial
            metrics["adversarial"] = adversarial.detach()
        optimizer = self.optimizers["upsampler"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        metrics["pixel"] = pixel.detach()
        metrics["psnr"] = psnr(output.detach().clamp(0.0, 1.0), high_res).clamp(max=100).mean()
        return metrics

    @torch.no_grad()
    def upsample(self, low_res: Tensor, batch_size: int = 500) -> Tensor:
        """Outputs (N, 1, 28, 28) clamped to [0, 1] for inputs (N, 1, 14, 14), computed in eval mode."""
        with eval_mode(self.upsampler):
            device = self.device
            return torch.cat([self.upsampler(low_res[i : i + batch_size].to(device)).clamp(0.0, 1.0).cpu()
                              for i in range(0, len(low_res), batch_size)])


# ----------------------------------------------------------------------------- detection


def train_detector(real: Tensor, fake: Tensor, steps: int, batch_size: int = 64, lr: float = 1e-3,
                   width: int = 16, generator: torch.Generator | None = None) -> MNISTClassifier:
    """Train a real (label 0) versus generated (label 1) classifier; returns it in eval mode.

    ``real`` and ``fake`` are (N, 1, 28, 28) images in [0, 1]; every minibatch holds
    ``batch_size // 2`` of each, drawn with ``generator``. The network is
    :class:`genlab.classifier.MNISTClassifier` with two outputs, trained with cross-entropy
    and Adam. See: book/05_applications/detection.ipynb.
    """
    check_unit_images(real, "real images")
    check_unit_images(fake, "generated images")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got {steps} and {batch_size}")
    detector = MNISTClassifier(width=width, num_classes=2).to(real.device)
    optimizer = torch.optim.Adam(detector.parameters(), lr=lr)
    half = batch_size // 2
    labels = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(half, dtype=torch.long)]).to(real.device)
    detector.train()
    for _ in range(steps):
        real_index = torch.randint(len(real), (half,), generator=generator).to(real.device)
        fake_index = torch.randint(len(fake), (half,), generator=generator).to(fake.device)
        logits = detector(torch.cat([real[real_index], fake[fake_index]]))  # (2 * half, 2)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return detector.eval()


@torch.no_grad()
def detector_accuracy(detector: nn.Module, real: Tensor, fake: Tensor, batch_size: int = 500) -> dict[str, float]:
    """Held-out scores of a real (0) / generated (1) detector: dict(accuracy, real_correct, fake_caught).

    ``real_correct`` is the fraction of real images called real, ``fake_caught`` the fraction of
    generated images called generated, ``accuracy`` their mean (balanced accuracy, so 0.5 is
    chance whatever the set sizes). See: book/05_applications/detection.ipynb.
    """
    def predicted_fake(images: Tensor) -> float:
        calls = [detector(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]
        return torch.cat(calls).float().mean().item()

    with eval_mode(detector):
        real_correct, fake_caught = 1.0 - predicted_fake(real), predicted_fake(fake)
    if math.isnan(real_correct) or math.isnan(fake_caught):
        raise ValueError("detector_accuracy needs non-empty real and fake batches")
    return {"accuracy": (real_correct + fake_caught) / 2, "real_correct": real_correct, "fake_caught": fake_caught}
