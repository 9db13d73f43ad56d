"""benchmarks/time_to_quality.py: the peer recipes are faithful in shape, and the report reads its curves right."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("time_to_quality", ROOT / "benchmarks" / "time_to_quality.py")
ttq = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = ttq  # dataclasses look their module up there
spec.loader.exec_module(ttq)


def test_peer_gans_map_noise_to_28x28_images_and_images_to_one_logit(one_thread):
    for build in (ttq.pytorch_dcgan, ttq.tensorflow_dcgan):
        generator, discriminator = build()
        images = generator(torch.randn(3, 100))
        assert images.shape == (3, 1, 28, 28)
        assert images.abs().max() <= 1.0
        assert discriminator(images).shape == (3,)


def test_pytorch_dcgan_initialisation_follows_the_example():
    generator, _ = ttq.pytorch_dcgan()
    conv = generator[1]
    assert abs(conv.weight.std().item() - 0.02) < 0.002


def test_negative_elbo_matches_the_closed_form_terms(one_thread):
    torch.manual_seed(0)
    model = ttq.PyTorchExampleVAE()
    binary = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3))
    value = ttq.negative_elbo(model, binary)
    mu, logvar = model.encode(binary)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    logits = model.decode_logits(mu + eps * torch.exp(0.5 * logvar))
    expected = (torch.nn.functional.binary_cross_entropy_with_logits(logits, binary, reduction="none").flatten(1).sum(1)
                + 0.5 * (logvar.exp() + mu.pow(2) - 1 - logvar).sum(1)).mean()
    assert math.isclose(value, expected.item(), rel_tol=1e-5)
    assert value > 0


def test_thresholds_are_read_from_the_first_crossing():
    curve = [(10.0, 100, 400.0), (20.0, 200, 190.0), (30.0, 300, 210.0), (40.0, 400, 140.0)]
    assert ttq.first_time_below(curve, 300) == 20.0
    assert ttq.first_time_below(curve, 150) == 40.0
    assert ttq.first_time_below(curve, 100) is None
    runs = [{"recipe": "book DCGAN (dropout 0)", "family": "gan", "seed": s, "steps_per_s": 10.0,
             "curve": curve[: 4 - s]} for s in range(3)]
    row = ttq.summary_rows(runs, 60.0)[0]
    median, reached, total = row[150.0]
    assert total == 3 and reached == [40.0] and median == math.inf  # two seeds never got there
    assert ttq._cell(row[150.0]) == "> budget (40; 1/3)"


def test_the_results_section_is_replaced_in_place(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nbefore\n")
    ttq.write_section("first", results)
    ttq.write_section("second", results)
    text = results.read_text()
    assert text.count("Time to quality") == 1 and "second" in text and "first" not in text
    assert text.startswith("# Results\n\nbefore\n")


def test_flush_denormal_benchmark_dry_run_measures_every_model(capsys, monkeypatch):
    """benchmarks/flush_denormal.py --dry-run trains each model a few steps with the flag off and on."""
    monkeypatch.setenv("GENLAB_OFFLINE", "1")
    spec = importlib.util.spec_from_file_location("flush_denormal", ROOT / "benchmarks" / "flush_denormal.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert module.main(["--dry-run"]) == 0
    finally:
        torch.set_num_threads(previous)
        torch.set_flush_denormal(False)
    out = capsys.readouterr().out
    if "does not support" not in out:
        assert out.count("x |") == len(module.cases())  # one speed-up per model in the table


def test_hf_course_basic_unet_matches_the_course(one_thread):
    net = ttq.BasicUNet()
    assert sum(p.numel() for p in net.parameters()) == 309_057  # the course: "~309k parameters"
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    steps, sample = ttq._peer_hf_diffusion(0, torch.rand(256, 1, 28, 28))
    steps(1)
    images = sample(3, torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 28, 28) and images.min() >= -1 and images.max() <= 1


def test_cpu_clock_counts_training_seconds(one_thread):
    recipe = next(r for r in ttq.RECIPES if r.name == "HF course BasicUNet (from scratch)")
    data = {"diffusion": torch.rand(256, 1, 28, 28), "real": torch.rand(64, 1, 28, 28)}
    result = ttq.run(recipe, 0, budget_s=0.5, eval_every_s=10.0, data=data, clock="cpu",
                        num_samples=16)
    assert result["clock"] == "cpu" and len(result["curve"]) == 1 and result["curve"][0][0] >= 0.5
