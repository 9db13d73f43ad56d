"""Tests for genlab.games: gradient play on the bilinear game, W1 in 1-D and critics, toy-GAN runs."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.games import (
    ToyGANConfig,
    compare_toy_gans,
    coverage_summary,
    coverage_table,
    fit_critic,
    gradient_play,
    plot_toy_runs,
    plot_toy_snapshots,
    train_toy_gan,
    update_matrix,
    wasserstein_1d,
)
from genlab.gan_theory import Discriminator1d

# ----------------------------------------------------------------------------- gradient play


@pytest.mark.parametrize("lr", [0.05, 0.2, 0.5])
def test_simultaneous_play_grows_by_sqrt_one_plus_lr_squared(lr):
    path = gradient_play(1.0, 0.5, lr, 50, "simultaneous")
    radius = path.norm(dim=1)
    ratios = radius[1:] / radius[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, math.sqrt(1 + lr**2)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["simultaneous", "alternating", "extragradient"])
def test_gradient_play_matches_its_update_matrix(method):
    lr, steps = 0.3, 25
    path = gradient_play(0.7, -0.2, lr, steps, method)
    matrix = update_matrix(lr, method)
    expected = torch.linalg.matrix_power(matrix, steps) @ torch.tensor([0.7, -0.2], dtype=torch.float64)
    assert torch.allclose(path[-1], expected, atol=1e-12)


def test_alternating_play_conserves_the_ellipse_and_area():
    lr = 0.4
    path = gradient_play(1.0, 0.0, lr, 500, "alternating")
    x, y = path[:, 0], path[:, 1]
    invariant = x**2 + y**2 - lr * x * y
    assert torch.allclose(invariant, invariant[0].expand_as(invariant), atol=1e-10)
    assert torch.linalg.det(update_matrix(lr, "alternating")).item() == pytest.approx(1.0, abs=1e-14)
    assert torch.linalg.eigvals(update_matrix(lr, "alternating")).abs().max().item() == pytest.approx(1.0, abs=1e-12)


def test_extragradient_contracts():
    lr = 0.3
    path = gradient_play(1.0, 1.0, lr, 40, "extragradient")
    radius = path.norm(dim=1)
    factor = math.sqrt(1 - lr**2 + lr**4)
    assert torch.allclose(radius[1:] / radius[:-1], torch.full((40,), factor, dtype=torch.float64), atol=1e-12)
    assert radius[-1] < 0.2 * radius[0]


def test_gradient_play_takes_any_value_function():
    # f = x^2 - y^2 is strongly convex-concave: simultaneous play converges to (0, 0)
    path = gradient_play(1.0, -1.0, 0.1, 200, "simultaneous", value_fn=lambda x, y: x**2 - y**2)
    assert path[-1].abs().max() < 1e-8


def test_gradient_play_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown method"):
        gradient_play(1.0, 1.0, 0.1, 5, "adam")
    with pytest.raises(ValueError, match="lr > 0"):
        gradient_play(1.0, 1.0, -0.1, 5)
    with pytest.raises(ValueError, match="scalar"):
        gradient_play(1.0, 1.0, 0.1, 1, value_fn=lambda x, y: torch.stack([x, y]))


# ----------------------------------------------------------------------------- W1 in 1-D


@pytest.fixture
def one_thread():
    """Tiny models train faster (and far faster on a busy machine) in one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_wasserstein_1d_equals_sorted_mean_absolute_difference():
    generator = torch.Generator().manual_seed(0)
    p, q = torch.randn(300, generator=generator), 2 + 0.5 * torch.randn(300, generator=generator)
    sorted_formula = (p.sort().values - q.sort().values).abs().double().mean().item()
    assert wasserstein_1d(p, q) == pytest.approx(sorted_formula, rel=1e-6)  # float32 inputs
    assert wasserstein_1d(q, p) == pytest.approx(wasserstein_1d(p, q), rel=1e-12)
    assert wasserstein_1d(p[:, None], q[:, None]) == pytest.approx(wasserstein_1d(p, q), rel=1e-12)


def test_wasserstein_1d_facts():
    p = torch.randn(100, generator=torch.Generator().manual_seed(1))
    assert wasserstein_1d(p, p) == 0.0
    assert wasserstein_1d(p, p + 1.5) == pytest.approx(1.5, abs=1e-9)  # a shift moves every point by 1.5
    # unequal sizes: a point mass at 0 versus {0, 1}: half the mass travels distance 1
    assert wasserstein_1d(torch.tensor([0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="NaN"):
        wasserstein_1d(torch.tensor([float("nan")]), p)


def test_gradient_penalty_critic_reaches_a_stationary_value_and_unconstrained_one_diverges(one_thread):
    # p and q differ by a shift of 1, so W1 = 1 and the best critic is f(x) = x. With the two-sided
    # penalty of weight lam, a linear critic f = a x scores a W1 - lam (|a| - 1)^2: maximal at
    # a = 1 + W1/(2 lam) and, in 1-D, locally maximal at a = -1 + W1/(2 lam) (the slope cannot change
    # sign without passing |f'| = 0, where the penalty is lam). The estimate is a * W1.
    generator = torch.Generator().manual_seed(0)
    p = 1.0 + torch.randn(2000, 1, generator=generator)
    q = torch.randn(2000, 1, generator=generator)
    exact, lam = wasserstein_1d(p, q), 10.0
    stationary = [exact * (1 + exact / (2 * lam)), -exact * (1 - exact / (2 * lam))]  # a * W1 at the two maxima
    for seed in range(3):
        torch.manual_seed(seed)
        fit = fit_critic(Discriminator1d(hidden=32), p, q, 300, "gradient_penalty", gp_weight=lam, lr=2e-3,
                         generator=generator)
        assert min(abs(fit.final - value) for value in stationary) < 0.12, fit.final
    torch.manual_seed(0)
    free = fit_critic(Discriminator1d(hidden=32), p, q, 300, "none", lr=2e-3, generator=generator)
    assert free.estimates[-1] > 10 * exact  # no Lipschitz constraint: the sup is infinite
    torch.manual_seed(0)
    clipped = fit_critic(Discriminator1d(hidden=32), p, q, 300, "clip", lr=2e-3, generator=generator)
    assert abs(clipped.final) < 0.5 * exact  # clipped weights: a K-Lipschitz critic with small K


def test_fit_critic_rejects_unknown_constraint():
    with pytest.raises(ValueError, match="constraint"):
        fit_critic(Discriminator1d(), torch.zeros(4, 1), torch.ones(4, 1), 1, "spectral")


# ----------------------------------------------------------------------------- toy GAN runs


def test_train_toy_gan_is_deterministic_under_a_seed():
    config = ToyGANConfig("gan", hidden=16, depth=2)
    first = train_toy_gan("ring8", config, steps=20, seed=3, num_data=1000, num_eval=200)
    second = train_toy_gan("ring8", config, steps=20, seed=3, num_data=1000, num_eval=200)
    assert torch.equal(first.samples, second.samples)
    assert first.samples.shape == (200, 2)
    assert first.coverage["num_modes"] == 8 and first.toy == "ring8"


def test_compare_toy_gans_and_the_summary():
    configs = [ToyGANConfig("gan", hidden=16, depth=2), ToyGANConfig("pac2", pack=2, hidden=16, depth=2)]
    runs = compare_toy_gans(["ring8"], configs, seeds=[0, 1], steps={"gan": 10, "pac2": 10}, progress=False,
                            num_data=500, num_eval=100)
    assert [(r.config.name, r.seed) for r in runs] == [("gan", 0), ("gan", 1), ("pac2", 0), ("pac2", 1)]
    summary = coverage_summary(runs)
    assert [row["variant"] for row in summary] == ["gan", "pac2"]
    modes = [runs[0].coverage["modes_covered"], runs[1].coverage["modes_covered"]]
    assert summary[0]["modes"] == pytest.approx(sum(modes) / 2)
    assert summary[0]["modes_std"] == pytest.approx(abs(modes[0] - modes[1]) / math.sqrt(2))
    runs[0].coverage["reverse_kl"] = 0.5
    runs[1].coverage["reverse_kl"] = float("nan")  # a run with no high-quality sample has no KL
    kl = coverage_summary(runs)[0]
    assert kl["reverse_kl"] == runs[0].coverage["reverse_kl"] and math.isnan(kl["reverse_kl_std"])
    reference = [{"toy": "ring8", "variant": "published", "modes": 7.9}]
    table = coverage_table(summary, reference=reference)
    assert table.count("\n") == 4 and "±" in table and "| published |" in table and "7.9" in table
    html = coverage_table(summary, reference=reference, fmt="html")
    assert html.startswith("<table>") and html.count("<tr>") == 4 and "<td>published</td>" in html
    with pytest.raises(ValueError, match="unique"):
        compare_toy_gans(["ring8"], [configs[0], configs[0]], seeds=[0], steps=1)


@pytest.mark.slow
def test_workers_give_the_same_runs_as_one_process():
    config = ToyGANConfig("gan", hidden=16, depth=2)
    kwargs = dict(steps=15, progress=False, num_data=500, num_eval=100)
    serial = compare_toy_gans(["grid25"], [config], seeds=[0, 1], **kwargs)
    parallel = compare_toy_gans(["grid25"], [config], seeds=[0, 1], workers=2, **kwargs)
    for a, b in zip(serial, parallel):
        assert torch.equal(a.samples, b.samples)


def test_plots_of_runs_and_snapshots():
    import matplotlib.pyplot as plt

    from genlab.training import SampleGrid

    configs = [ToyGANConfig("gan", hidden=16, depth=2), ToyGANConfig("pac2", pack=2, hidden=16, depth=2)]
    runs = compare_toy_gans(["ring8", "grid25"], configs, seeds=[0], steps=6, progress=False, num_data=500,
                            num_eval=100, callbacks=[SampleGrid(every=2, num_samples=50)])
    fig = plot_toy_runs(runs)
    assert len(fig.axes) == 4 and "modes" in fig.axes[0].get_title()
    snapshots = plot_toy_snapshots(runs[0])
    assert [ax.get_title().split(":")[0] for ax in snapshots.axes] == ["step 2", "step 4", "step 6"]
    plt.close("all")
    with pytest.raises(ValueError, match="seed 5"):
        plot_toy_runs(runs, seed=5)
