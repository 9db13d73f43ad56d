"""genlab.families: every scoreboard contender builds, trains, samples, reports its likelihood and round-trips."""

from __future__ import annotations

import math
import time

import pytest
import torch

from genlab.families import CONTENDERS, _budget_loop, binarized_test_digits, dequantized_test_digits, get_contender

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards

TEST_IMAGES = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list(CONTENDERS))
def test_contender_trains_samples_reports_and_round_trips(name, tmp_path):
    contender = get_contender(name)
    run = contender.build(0)
    run.train(steps=(2, 2) if isinstance(run.steps, tuple) else 2)
    assert run.steps in (2, (2, 2)) and run.cpu_seconds > 0
    images = run.sample(3, torch.Generator().manual_seed(1))
    assert images.shape == (3, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    likelihood = run.likelihood(TEST_IMAGES, 2)
    for number, kind in (("nats", "nats_kind"), ("bits_per_dim", "bits_kind")):
        if number in likelihood:
            assert math.isfinite(likelihood[number]) and likelihood[kind] in ("exact", "bound")
    assert run.num_parameters() > 0
    run.save(tmp_path / "run.pt")
    again = contender.build(0)
    again.load(tmp_path / "run.pt")
    assert again.steps == run.steps
    torch.testing.assert_close(again.sample(3, torch.Generator().manual_seed(1)), images)


@pytest.mark.parametrize("name", ["Gaussian mixture (20 diag.)", "MLP VAE", "DCGAN"])
def test_replaying_the_recorded_steps_reproduces_a_run(name):
    """The scoreboard chapter replays a benchmark run by its recorded steps and seed: same model."""
    samples = []
    for _ in range(2):
        run = get_contender(name).build(3)
        run.train(steps=4)
        samples.append(run.sample(4, torch.Generator().manual_seed(0)))
    torch.testing.assert_close(samples[0], samples[1], rtol=0, atol=0)


def test_budget_loop_counts_cpu_seconds_and_needs_one_budget():
    def burn(k: int) -> None:
        end = time.process_time() + 0.01 * k
        while time.process_time() < end:
            pass

    done, seconds = _budget_loop(burn, cpu_seconds=0.1, steps=None, chunk=2)
    assert 0.1 <= seconds < 0.2 and done % 2 == 0 and done >= 10
    assert _budget_loop(burn, cpu_seconds=None, steps=5, chunk=2)[0] == 5
    for bad in ({"cpu_seconds": None, "steps": None}, {"cpu_seconds": 1.0, "steps": 3}):
        with pytest.raises(ValueError, match="exactly one budget"):
            _budget_loop(burn, chunk=1, **bad)


def test_test_digit_protocols():
    binary = binarized_test_digits(TEST_IMAGES, 4)
    assert binary.shape == (4, 1, 28, 28) and set(binary.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(binary, binarized_test_digits(TEST_IMAGES, 4))  # one fixed draw
    y = dequantized_test_digits(TEST_IMAGES, 4)
    pixels = (TEST_IMAGES[:4] * 255).round()
    assert ((y * 256 - pixels) >= 0).all() and ((y * 256 - pixels) < 1).all()  # inside each pixel's bin


def test_unknown_contender_names_the_known_ones():
    with pytest.raises(ValueError, match="DCGAN"):
        get_contender("StyleGAN")


def test_scoreboard_benchmark_dry_run_scores_a_contender(capsys):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "scoreboard.py"
    spec = importlib.util.spec_from_file_location("scoreboard_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert module.slug("IWAE-trained VAE (k=5)") == "iwae-trained-vae-k5"
    assert module.main(["--dry-run", "--only", "MLP VAE"]) == 0  # writes nothing
    assert "MLP VAE seed 0: FID" in capsys.readouterr().out
