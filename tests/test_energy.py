"""Energy-based models (genlab.energy, genlab.models.ebm, genlab.tasks.energy): Langevin dynamics,
the replay buffer, the contrastive-divergence loss and EBMTask."""

import math

import pytest
import torch

from genlab.energy import (
    ReplayBuffer,
    contrastive_divergence_loss,
    decoupled_langevin_parameters,
    energy_grid,
    langevin_sample,
)
from genlab.models.ebm import ConvEnergy, MLPEnergy
from genlab.tasks import EBMTask
from genlab.training import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards

MEAN = torch.tensor([1.0, -2.0])
VAR = torch.tensor([0.25, 1.0])


def gaussian_energy(x):
    """E(x) = sum (x - m)^2 / (2 v): p = N(m, diag(v))."""
    return ((x - MEAN) ** 2 / (2 * VAR)).sum(1)


def test_langevin_reproduces_a_gaussian_mean_and_variance():
    g = torch.Generator().manual_seed(0)
    x = langevin_sample(gaussian_energy, torch.zeros(4000, 2), steps=1000, step_size=0.02, generator=g)
    assert torch.allclose(x.mean(0), MEAN, atol=0.05)
    # ULA's stationary variance for a Gaussian is v / (1 - eps / (4 v)) (0.5-2% too large here)
    expected = VAR / (1 - 0.02 / (4 * VAR))
    assert torch.allclose(x.var(0), expected, rtol=0.07)


def test_noise_scale_is_a_temperature_and_zero_noise_is_gradient_descent():
    g = torch.Generator().manual_seed(1)
    x = langevin_sample(gaussian_energy, torch.zeros(4000, 2), steps=1000, step_size=0.02, noise_scale=0.5,
                        generator=g)
    assert torch.allclose(x.var(0), 0.25 * VAR, rtol=0.08)  # exp(-E / s^2): variance times s^2
    descent = langevin_sample(gaussian_energy, torch.zeros(3, 2), steps=2000, step_size=0.05, noise_scale=0.0)
    assert torch.allclose(descent, MEAN.expand(3, 2), atol=1e-4)


def test_langevin_is_seeded_clamps_and_leaves_parameters_alone():
    energy = MLPEnergy(2, 16, 2)
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    a = langevin_sample(energy, x0, 5, 0.1, clamp=(-0.5, 0.5), generator=torch.Generator().manual_seed(3))
    b = langevin_sample(energy, x0, 5, 0.1, clamp=(-0.5, 0.5), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.abs().max() <= 0.5 and not a.requires_grad
    assert all(p.grad is None for p in energy.parameters())
    with torch.no_grad():  # works inside no_grad too
        langevin_sample(energy, x0, 2, 0.1)


def test_decoupled_parameters_match_du_and_mordatch():
    step_size, noise_scale = decoupled_langevin_parameters(10.0, 0.005)
    assert step_size == 20.0 and math.isclose(noise_scale * math.sqrt(step_size), 0.005)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x0 = torch.zeros(5, 2)
    ours = langevin_sample(gaussian_energy, x0, 1, step_size, noise_scale, generator=g1)
    z = torch.randn(5, 2, generator=g2)
    theirs = x0 - 10.0 * torch.func.vmap(torch.func.grad(lambda x: gaussian_energy(x[None])[0]))(x0) + 0.005 * z
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(step_size=0.0), dict(step_size=-1.0), dict(noise_scale=-0.1),
                                    dict(clamp=(1.0, -1.0)), dict(steps=-1)])
def test_langevin_rejects_bad_settings(kwargs):
    args = dict(steps=1, step_size=0.1) | kwargs
    with pytest.raises(ValueError):
        langevin_sample(gaussian_energy, torch.zeros(2, 2), **args)


def test_replay_buffer_reinit_fraction_and_capacity():
    buffer = ReplayBuffer(100, (2,), reinit=0.2, noise="uniform", noise_scale=1.0)
    g = torch.Generator().manual_seed(0)
    assert len(buffer) == 0 and buffer.sample(10, g).abs().max() <= 1  # empty: all fresh
    buffer.push(torch.full((250, 2), 7.0))  # more than the capacity: the last 100 kept
    assert len(buffer) == 100 and int(buffer.position) == 50
    starts = buffer.sample(20_000, g)
    fresh = (starts != 7.0).all(1).float().mean().item()
    assert abs(fresh - 0.2) < 0.015
    assert buffer.sample(1000, g, reinit=0.0).eq(7.0).all()
    buffer.push(torch.zeros(30, 2))  # first in, first out: slots 50..79 overwritten
    assert buffer.samples[50:80].eq(0).all() and buffer.samples[80:].eq(7.0).all()


def test_replay_buffer_checks_and_state():
    with pytest.raises(ValueError, match="reinit"):
        ReplayBuffer(10, (2,), reinit=1.5)
    with pytest.raises(ValueError, match="reinit"):
        ReplayBuffer(10, (2,), reinit=-0.1)
    buffer = ReplayBuffer(10, (2,), noise="normal", noise_scale=2.0)
    with pytest.raises(ValueError, match="shape"):
        buffer.push(torch.zeros(3, 3))
    buffer.push(torch.ones(4, 2))
    copy = ReplayBuffer(10, (2,))
    copy.load_state_dict(buffer.state_dict())
    assert len(copy) == 4 and torch.equal(copy.samples, buffer.samples)


def test_cd_loss_sign_and_regulariser():
    real, fake = torch.tensor([-1.0, -3.0]), torch.tensor([2.0, 0.0])
    assert contrastive_divergence_loss(real, fake, alpha=0.0).item() == pytest.approx(-3.0)
    assert contrastive_divergence_loss(real, fake, alpha=0.5).item() == pytest.approx(-3.0 + 0.5 * (5.0 + 2.0))
    # the CD term pushes real energies down and fake energies up
    real.requires_grad_(True)
    fake.requires_grad_(True)
    contrastive_divergence_loss(real, fake, alpha=0.0).backward()
    assert (real.grad > 0).all() and (fake.grad < 0).all()
    with pytest.raises(ValueError):
        contrastive_divergence_loss(real, fake, alpha=-1.0)


def test_grad_log_z_is_minus_the_model_expectation_of_grad_e():
    """d log Z / d theta = -E_p[d E / d theta], on a grid, for a small MLP energy."""
    torch.manual_seed(0)
    energy = MLPEnergy(2, 8, 1).double()
    xs = torch.linspace(-4, 4, 161, dtype=torch.float64)
    points = torch.cartesian_prod(xs, xs)
    e = energy(points)
    log_z = torch.logsumexp(-e, 0)  # the cell area is a constant: no gradient
    direct = torch.autograd.grad(log_z, list(energy.parameters()))
    weights = torch.softmax(-e, 0).detach()
    expectation = torch.autograd.grad(-(weights * energy(points)).sum(), list(energy.parameters()))
    for a, b in zip(direct, expectation):
        assert torch.allclose(a, b, atol=1e-10)


def test_energy_grid_normalises():
    grid = energy_grid(gaussian_energy, limit=6.0, size=241)
    cell = float(grid["xs"][1] - grid["xs"][0]) ** 2
    assert float(grid["density"].sum()) * cell == pytest.approx(1.0, abs=1e-6)
    assert float(grid["log_z"]) == pytest.approx(math.log(2 * math.pi * math.sqrt(0.25 * 1.0)), abs=1e-3)


def test_energy_networks_shapes_and_spectral_norm():
    assert MLPEnergy(2)(torch.randn(5, 2)).shape == (5,)
    assert MLPEnergy(2, num_frequencies=3)(torch.randn(5, 2)).shape == (5,)
    net = ConvEnergy(spectral_norm=True)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3,)
    with pytest.raises(ValueError, match="shape"):
        ConvEnergy()(torch.randn(3, 28, 28))


def points(n=128):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0)) * 0.3


def make_task(**kwargs):
    torch.manual_seed(0)
    return EBMTask(MLPEnergy(2, 32, 2), langevin_steps=5, step_size=0.01, noise_scale=0.1, buffer_size=64,
                   lr=1e-3, **kwargs)


def test_ebm_task_step_shapes_and_determinism(tmp_path):
    runs = []
    for _ in range(2):
        task = make_task()
        trainer = Trainer(task, points(), batch_size=32, progress=False, seed=0)
        trainer.fit(steps=4, log_every=2)
        runs.append((task, trainer))
    (a, ta), (b, _) = runs
    assert set(ta.history.metrics) == {"loss", "energy_real", "energy_fake", "contrast"}
    assert len(a.buffer) == 64 and torch.equal(a.buffer.samples, b.buffer.samples)
    for p, q in zip(a.energy.parameters(), b.energy.parameters()):
        assert torch.equal(p, q)
    x = a.sample(10, generator=torch.Generator().manual_seed(0))
    assert x.shape == (10, 2) and torch.equal(x, b.sample(10, generator=torch.Generator().manual_seed(0)))
    assert a.sample(10, from_buffer=True, steps=2).shape == (10, 2)


def test_ebm_task_checkpoint_round_trip_keeps_the_buffer(tmp_path):
    task = make_task()
    trainer = Trainer(task, points(), batch_size=32, progress=False)
    trainer.fit(steps=3)
    trainer.save(tmp_path / "ebm.pt")
    trainer.fit(steps=2)
    other = make_task()
    resumed = Trainer(other, points(), batch_size=32, progress=False).load(tmp_path / "ebm.pt")
    assert len(other.buffer) == 64 and int(other.buffer.position) == 96 % 64
    resumed.fit(steps=2)
    assert torch.equal(other.buffer.samples, task.buffer.samples)  # resuming continues the same chains
    for p, q in zip(other.energy.parameters(), task.energy.parameters()):
        assert torch.equal(p, q)


def test_ebm_task_on_images_maps_to_unit_range_and_checks_data():
    torch.manual_seed(0)
    task = EBMTask(ConvEnergy(channels=(4, 4, 8, 8)), langevin_steps=2, step_size=1.0, noise_scale=0.01,
                   buffer_size=32)
    images = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    Trainer(task, images, batch_size=8, progress=False).fit(steps=2)
    assert task.buffer.samples.abs().max() <= 1.0
    x = task.sample(3, from_buffer=True, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Trainer(task, images * 2 - 1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="shape"):
        Trainer(task, torch.rand(16, 2), batch_size=8, progress=False)


@pytest.mark.parametrize("kwargs", [dict(step_size=0.0), dict(reinit=1.5), dict(langevin_steps=0),
                                    dict(alpha=-0.1)])
def test_ebm_task_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        EBMTask(MLPEnergy(2), **kwargs)
    with pytest.raises(ValueError, match="input_shape"):
        EBMTask(torch.nn.Linear(2, 1))


def test_ebm_task_warns_when_the_energies_separate():
    from genlab.history import History

    task = make_task(alpha=0.1)
    history = History()
    history.record(10, {"contrast": -0.5})
    assert task.check_health(history) is None
    history.record(20, {"contrast": -9.5})
    assert "no longer reach the data" in task.check_health(history)
