"""Tests for genlab.applications: PSNR, downsampling, the super-resolution task, the detector."""

import math

import pytest
import torch

from genlab.applications import (
    PatchDiscriminator,
    SuperResolutionNet,
    SuperResolutionTask,
    detector_accuracy,
    downsample,
    psnr,
    train_detector,
)
from genlab.training import Trainer


def test_psnr_of_identical_images_is_infinite():
    x = torch.rand(3, 1, 28, 28)
    assert torch.isinf(psnr(x, x)).all()


def test_psnr_of_known_mse_matches_closed_form():
    x = torch.zeros(2, 1, 28, 28)
    y = x + 0.1  # MSE = 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert torch.allclose(psnr(y, x), torch.full((2,), 20.0))  # same dtype as the images
    # with max_value 255 and an error of 1 grey level: 20 log10(255) dB
    assert psnr(x + 1.0, x, max_value=255.0)[0].item() == pytest.approx(20 * math.log10(255))


def test_psnr_is_per_image_and_checks_shapes():
    x = torch.zeros(2, 1, 28, 28)
    y = x.clone()
    y[1] += 0.1
    values = psnr(y, x)
    assert torch.isinf(values[0]) and values[1].item() == pytest.approx(20.0)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:1])


def test_downsample_is_block_mean_and_many_to_one():
    x = torch.rand(4, 1, 28, 28)
    low = downsample(x)
    assert low.shape == (4, 1, 14, 14)
    assert torch.allclose(low[0, 0, 0, 0], x[0, 0, :2, :2].mean())
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(14, 14)  # zero mean in each 2x2 block
    assert torch.allclose(downsample(x + 0.1 * checker), low, atol=1e-6)
    with pytest.raises(ValueError, match="divide"):
        downsample(torch.rand(1, 1, 27, 27))


def test_models_shapes_and_ranges():
    low = torch.rand(5, 1, 14, 14)
    out = SuperResolutionNet(width=8)(low)
    assert out.shape == (5, 1, 28, 28)
    logits = PatchDiscriminator(width=8)(out, low)
    assert logits.shape == (5, 7, 7)
    with pytest.raises(ValueError, match=r"\(B, 1, 14, 14\)"):
        SuperResolutionNet(width=8)(torch.rand(5, 1, 28, 28))


def test_pixel_loss_training_improves_psnr():
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 8:20, 12:16] = 1.0  # a bar: easy to learn
    task = SuperResolutionTask(SuperResolutionNet(width=8), lr=3e-3)
    before = psnr(task.upsample(downsample(images)), images).mean().item()
    Trainer(task, data=images, batch_size=32, progress=False, device="cpu").fit(steps=60)
    after = psnr(task.upsample(downsample(images)), images).mean().item()
    assert after > before + 3


def test_adversarial_task_runs_and_checks_arguments():
    torch.manual_seed(0)
    images = torch.rand(32, 1, 28, 28)
    task = SuperResolutionTask(SuperResolutionNet(width=8), PatchDiscriminator(width=8), adversarial_weight=0.01)
    history = Trainer(task, data=images, batch_size=16, progress=False, device="cpu").fit(steps=3, log_every=1)
    assert {"loss_d", "adversarial", "pixel", "psnr"} <= set(history.metrics) and len(history) == 3
    with pytest.raises(ValueError, match="discriminator exactly"):
        SuperResolutionTask(SuperResolutionNet(width=8), adversarial_weight=0.1)
    with pytest.raises(ValueError, match="pixel_loss"):
        SuperResolutionTask(SuperResolutionNet(width=8), pixel_loss="l3")


def test_detector_separates_an_obvious_difference():
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(200, 1, 28, 28, generator=generator) * 0.3
    fake = 0.7 + torch.rand(200, 1, 28, 28, generator=generator) * 0.3  # much brighter
    detector = train_detector(real[:100], fake[:100], steps=30, width=4, generator=generator)
    scores = detector_accuracy(detector, real[100:], fake[100:])
    assert scores["accuracy"] > 0.95
    assert scores["accuracy"] == pytest.approx((scores["real_correct"] + scores["fake_caught"]) / 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train_detector(real * 2 - 1, fake, steps=1)
