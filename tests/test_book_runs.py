"""genlab.book_runs: the Part 4 GAN runs are saved on the first call and loaded on the next."""

from __future__ import annotations

import pytest
import torch

from genlab import book_runs
from genlab.runtime import Profile

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def digits() -> torch.Tensor:
    """Stand-in training data in [-1, 1] (the real runs use MNIST)."""
    return torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("run", [book_runs.mlp_gan, book_runs.dcgan])
def test_quick_run_is_saved_then_loaded(run, digits, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENLAB_CHECKPOINT_DIR", str(tmp_path))
    quick = Profile("quick")
    first = run(data=digits, profile=quick)
    saved = list(tmp_path.glob("*-quick.pt"))
    assert [p.name for p in saved] == [f"{run.__name__}-quick.pt"]
    steps = book_runs.mlp_gan_steps(quick) if run is book_runs.mlp_gan else book_runs.dcgan_steps(quick)
    assert first.step == steps
    capsys.readouterr()

    second = run(data=digits, profile=quick)
    assert "loaded" in capsys.readouterr().out
    assert second.step == steps and second.train_seconds == pytest.approx(first.train_seconds)
    for a, b in zip(first.task.generator.state_dict().values(), second.task.generator.state_dict().values()):
        assert torch.equal(a, b)
    z = torch.Generator().manual_seed(1)
    images = second.task.sample(4, generator=z)
    assert images.shape == (4, 1, 28, 28) and images.min() >= -1 and images.max() <= 1


def test_widths_and_steps_follow_the_chapters():
    assert book_runs.mlp_gan_steps(Profile("standard")) == 5_000
    assert book_runs.dcgan_steps(Profile("standard")) == 3_000
    assert book_runs.dcgan_channels(Profile("standard")) == ((64, 32), (32, 64))
