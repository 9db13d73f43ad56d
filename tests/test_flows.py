"""Normalizing flows: log-determinants against autograd, invertibility, normalisation, bits/dim, FlowTask."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.flows import (
    autograd_log_det,
    bits_per_dim_8bit,
    dequantize,
    dequantized_bits_per_dim,
    logit_transform,
    logit_transform_inverse,
    numerical_log_det,
    standard_normal_log_prob,
    temperature_noise,
)
from genlab.models.flow import AffineCoupling, MultiScaleFlow, RealNVP2D, checkerboard_mask, conv_conditioner
from genlab.tasks import FlowTask
from genlab.training import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def _perturbed(model: torch.nn.Module, scale: float, seed: int = 0) -> torch.nn.Module:
    """A flow away from the identity (the zero-initialised last layers make a fresh flow trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def test_standard_normal_log_prob_matches_torch():
    z = torch.randn(5, 3)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(dim=1)
    torch.testing.assert_close(standard_normal_log_prob(z), expected)


def test_coupling_log_det_equals_autograd_2d():
    torch.manual_seed(0)
    flow = _perturbed(RealNVP2D(num_layers=4, hidden=16), 0.3).double()
    x = torch.randn(6, 2, dtype=torch.float64)
    _, logdet = flow(x)
    assert logdet.abs().min() > 0.01  # a non-trivial map
    torch.testing.assert_close(logdet, autograd_log_det(lambda v: flow(v)[0], x), atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet, numerical_log_det(lambda v: flow(v)[0], x), atol=1e-6, rtol=0)


def test_coupling_log_det_equals_autograd_tiny_image():
    torch.manual_seed(0)
    coupling = _perturbed(AffineCoupling(checkerboard_mask(4, 4), conv_conditioner(2, hidden=8)), 0.3).double()
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    _, logdet = coupling(x)
    assert logdet.abs().min() > 0.01
    torch.testing.assert_close(logdet, autograd_log_det(lambda v: coupling(v)[0], x), atol=1e-10, rtol=0)


def test_multiscale_log_det_equals_autograd_small_image():
    torch.manual_seed(0)
    flow = _perturbed(MultiScaleFlow(hidden=4, num_checker=1, num_channel=1, num_final=2, image_size=4), 0.2)
    flow = flow.double()
    y = torch.rand(2, 1, 4, 4, dtype=torch.float64) * 0.9 + 0.05
    _, logdet = flow(y)
    torch.testing.assert_close(logdet, autograd_log_det(lambda v: flow(v)[0], y), atol=1e-8, rtol=0)


def test_logit_transform_inverse_and_log_det():
    y = torch.rand(4, 1, 2, 2, dtype=torch.float64)
    x, logdet = logit_transform(y, 0.05)
    torch.testing.assert_close(logit_transform_inverse(x, 0.05), y)
    torch.testing.assert_close(logdet, autograd_log_det(lambda v: logit_transform(v, 0.05)[0], y))
    with pytest.raises(ValueError, match="alpha"):
        logit_transform(y, 0.5)


def test_inverse_of_forward_2d():
    torch.manual_seed(0)
    flow = _perturbed(RealNVP2D(num_layers=6, hidden=32), 0.1)
    x = 2 * torch.randn(200, 2)
    z, _ = flow(x)
    assert (z - x).abs().max() > 0.1
    assert (flow.inverse(z) - x).abs().max() < 1e-5


def test_inverse_of_forward_multiscale():
    torch.manual_seed(0)
    flow = _perturbed(MultiScaleFlow(hidden=8), 0.05)
    y = torch.rand(4, 1, 28, 28) * 0.98 + 0.01
    z, logdet = flow(y)
    assert z.shape == (4, 4, 14, 14) and logdet.shape == (4,)
    assert (flow.inverse(z) - y).abs().max() < 1e-5


def test_2d_density_integrates_to_one():
    torch.manual_seed(0)
    flow = _perturbed(RealNVP2D(num_layers=4, hidden=16), 0.3, seed=1)
    side = torch.linspace(-8, 8, 401)
    gx, gy = torch.meshgrid(side, side, indexing="xy")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        density = flow.log_prob(points).exp()
    cell = float(side[1] - side[0]) ** 2
    assert abs(float(density.sum()) * cell - 1.0) < 0.01


def test_uniform_model_scores_eight_bits_per_dim():
    log_prob = torch.zeros(7)  # the uniform density on [0, 1)^D
    assert torch.equal(bits_per_dim_8bit(log_prob, 784), torch.full((7,), 8.0))
    # and an exact half-size uniform box costs one bit per dimension less
    assert float(bits_per_dim_8bit(torch.tensor([784 * math.log(2.0)]), 784)) == pytest.approx(7.0)


def test_dequantize_stays_in_each_pixel_cell():
    levels = torch.randint(0, 256, (8, 1, 5, 5)).float()
    y = dequantize(levels / 255, torch.Generator().manual_seed(0))
    assert torch.equal((y * 256).floor(), levels)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dequantize(levels)


def test_temperature_noise_scales_the_std():
    z = temperature_noise((20_000, 4), 0.7, torch.Generator().manual_seed(0))
    assert float(z.std()) == pytest.approx(0.7, abs=0.01)


def test_dequantized_bits_per_dim_of_identity_like_flow_is_finite():
    flow = MultiScaleFlow(hidden=4)  # zero-initialised couplings: only the logit layer acts
    images = torch.randint(0, 256, (6, 1, 28, 28)).float() / 255
    result = dequantized_bits_per_dim(flow, images, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert result["num_images"] == 6 and 5 < result["bits_per_dim"] < 12


def _image_task(seed: int = 0) -> FlowTask:
    torch.manual_seed(seed)
    return FlowTask(MultiScaleFlow(hidden=4, num_checker=1, num_channel=1, num_final=2), lr=1e-3)


def test_flow_task_shapes_and_seeded_determinism():
    images = torch.randint(0, 256, (32, 1, 28, 28)).float() / 255
    runs = []
    for _ in range(2):
        task = _image_task()
        trainer = Trainer(task, images, batch_size=8, seed=3, progress=False)
        trainer.fit(steps=3, log_every=1)
        samples = task.sample(5, temperature=0.7, generator=torch.Generator().manual_seed(1))
        runs.append((trainer.history.as_dict(), samples))
    assert runs[0][1].shape == (5, 1, 28, 28)
    assert runs[0][1].min() >= 0 and runs[0][1].max() <= 1
    assert torch.equal(runs[0][1] * 255, (runs[0][1] * 255).round())  # 8-bit pixel values
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_flow_task_learns_2d_points_and_samples():
    torch.manual_seed(0)
    data = torch.randn(512, 2) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -1.0])
    task = FlowTask(RealNVP2D(num_layers=4, hidden=32), lr=3e-3)
    trainer = Trainer(task, data, batch_size=128, seed=0, progress=False)
    before = float(task.loss(data).detach())
    trainer.fit(steps=150, log_every=50)
    after = float(task.loss(data).detach())
    exact = float(-torch.distributions.Normal(torch.tensor([1.0, -1.0]), torch.tensor([2.0, 0.5]))
                  .log_prob(data).sum(1).mean() / (2 * math.log(2.0)))
    assert after < before and abs(after - exact) < 0.15
    assert task.sample(10, generator=torch.Generator().manual_seed(0)).shape == (10, 2)


def test_flow_task_checkpoint_round_trip(tmp_path):
    images = torch.randint(0, 256, (32, 1, 28, 28)).float() / 255
    task = _image_task()
    trainer = Trainer(task, images, batch_size=8, seed=0, progress=False)
    trainer.fit(steps=2, log_every=1)
    path = trainer.save(tmp_path / "flow.pt")
    other = _image_task(seed=5)
    Trainer(other, images, batch_size=8, seed=0, progress=False).load(path)
    g = torch.Generator().manual_seed(0)
    x = images[:4]
    torch.testing.assert_close(other.loss(x, torch.Generator().manual_seed(0)), task.loss(x, g))


def test_flow_task_rejects_images_outside_unit_range():
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Trainer(_image_task(), images, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="shape"):
        Trainer(_image_task(), torch.rand(16, 2), batch_size=8, progress=False)
    with pytest.raises(ValueError, match="inverse"):
        FlowTask(torch.nn.Linear(2, 2))
