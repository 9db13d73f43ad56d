"""The scoreboard's evaluation core: every family measured the same way, on the same test digits.

The scoreboard chapter puts a dozen MNIST generators side by side. Training is not done here
(see :mod:`genlab.families`); this module only *measures*, identically for every family:

* :func:`evaluate_family` - draw ``num_samples`` images from a sampler (timed) and score them
  against ``num_samples`` official test digits: FID-MNIST, classifier Inception Score,
  precision/recall (k = 3, Kynkaanniemi et al. 2019), density/coverage (k = 5, Naeem et al.
  2020), the memorisation ratio (nearest training neighbour, :mod:`genlab.diagnostics`),
  sampling seconds per 1,000 images, and the likelihood numbers the family reports;
* :func:`real_floor` - the same metrics for *real* test digits against the reference digits:
  what a perfect generator would score at this sample size (FID-MNIST is biased upwards at
  finite N, so the floor is not 0);
* :func:`summarise` and :func:`markdown_table` - mean and spread over seeds, one row per family;
* :func:`save_results`, :func:`load_results`, :func:`update_results` - the committed results
  file: JSON with the raw per-seed rows and their summary, written atomically.

The test protocol, per seed ``s``: a random permutation of the test set (seeded with ``s``)
gives the *reference* digits (its first ``num_samples``) and, for the floor, ``num_samples``
*other* test digits (the next ``num_samples``; 5,000 + 5,000 of the official 10,000).
All families evaluated with the same seed share the same reference, so their numbers are
comparable row by row; over seeds, the spread includes the reference's sampling noise, as the
floor's spread shows. Every row is a flat dict of JSON types (str, int, float, None, list).

See: book/07_diffusion/scoreboard.ipynb (method: book/04_practice/evaluation.ipynb).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from genlab.diagnostics import memorisation_ratio
from genlab.metrics import (
    _features_and_logits,
    _inception_score_from_logits,
    density_coverage,
    frechet_distance,
    precision_recall,
)

__all__ = [
    "DEFAULT_COLUMNS",
    "FLOOR_FAMILY",
    "LIKELIHOOD_KINDS",
    "METRICS",
    "evaluate_family",
    "load_results",
    "markdown_table",
    "real_floor",
    "reference_split",
    "save_results",
    "summarise",
    "update_results",
]

FLOOR_FAMILY = "real test digits (floor)"  # the family name of real_floor's rows
PRECISION_RECALL_K = 3  # Kynkaanniemi et al. (2019)
DENSITY_COVERAGE_K = 5  # Naeem et al. (2020)
LIKELIHOOD_KINDS = ("exact", "bound")
RESULTS_FORMAT, RESULTS_VERSION = "genlab-scoreboard", 1

# column key -> (header, better): the metrics every row holds (None where a family has none)
METRICS: dict[str, tuple[str, str]] = {
    "fid": ("FID-MNIST", "lower"),
    "inception_score": ("IS", "higher"),
    "precision": ("precision", "higher"),
    "recall": ("recall", "higher"),
    "density": ("density", "about 1"),
    "coverage": ("coverage", "higher"),
    "memorisation_ratio": ("memorisation", "about 1 (near 0: copies)"),
    "sample_seconds_per_1000": ("s / 1,000 samples", "lower"),
    "nats": ("NLL nats (binarized)", "lower"),
    "bits_per_dim": ("bits/dim (dequantized)", "lower"),
}
_LIKELIHOOD_KEYS = {"nats": "nats_kind", "bits_per_dim": "bits_kind"}  # number -> its exact|bound flag


# --------------------------------------------------------------------------- the test protocol


def _check_images(images: Tensor, name: str) -> Tensor:
    images = torch.as_tensor(images)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28) or not images.is_floating_point():
        raise ValueError(f"expected {name} as float images (N, 1, 28, 28) in [0, 1], got "
                         f"{tuple(images.shape)} {images.dtype}; pass load_mnist(...).images")
    return images


def _check_count(value: int, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def reference_split(real_test: Tensor, num_samples: int = 5000, seed: int = 0,
                    need_floor: bool = False) -> tuple[Tensor, Tensor | None]:
    """The seed's reference test digits (num_samples, 1, 28, 28) and, with ``need_floor``, as many others.

    A permutation of ``real_test`` seeded with ``seed``: its first ``num_samples`` digits are
    the reference every family is compared with; the next ``num_samples`` (disjoint) are the
    stand-in "perfect generator" of :func:`real_floor` (``None`` without ``need_floor``).
    Raises ValueError when the test set is too small (the floor needs ``2 * num_samples``).
    See: book/07_diffusion/scoreboard.ipynb.
    """
    real_test = _check_images(real_test, "real_test")
    _check_count(num_samples, "num_samples", 2)
    needed = 2 * num_samples if need_floor else num_samples
    if len(real_test) < needed:
        raise ValueError(f"{'the floor needs 2 x ' if need_floor else ''}{num_samples} test digits: "
                         f"{needed} > {len(real_test)} given; lower num_samples or pass the full test split "
                         "(load_mnist('test'), 10,000 digits)")
    order = torch.randperm(len(real_test), generator=torch.Generator().manual_seed(seed))
    reference = real_test[order[:num_samples]]
    others = real_test[order[num_samples:2 * num_samples]] if need_floor else None
    return reference, others


def _quality(fake: Tensor, reference: Tensor, classifier: nn.Module | None, batch_size: int) -> dict[str, Any]:
    """FID-MNIST, IS, precision/recall, density/coverage and the predicted-label counts of ``fake``."""
    fake_feats, fake_logits = _features_and_logits(fake, classifier, batch_size)  # (N, 128), (N, 10)
    real_feats, _ = _features_and_logits(reference, classifier, batch_size)
    return {
        "fid": frechet_distance(fake_feats, real_feats),
        "inception_score": _inception_score_from_logits(fake_logits),
        **precision_recall(real_feats, fake_feats, k=PRECISION_RECALL_K),
        **density_coverage(real_feats, fake_feats, k=DENSITY_COVERAGE_K),
        "label_counts": torch.bincount(fake_logits.argmax(1), minlength=fake_logits.shape[1]).tolist(),
    }


def _memorisation(fake: Tensor, real_train: Tensor | None, held_out: Tensor, count: int) -> float | None:
    if real_train is None or count == 0:
        return None
    return memorisation_ratio(fake[:count], _check_images(real_train, "real_train"), held_out[:count])


def _likelihood_columns(likelihood_fn: Callable[[], Mapping[str, Any]] | None) -> dict[str, Any]:
    """Check and pass through ``{nats, nats_kind, bits_per_dim, bits_kind}`` (missing ones become None)."""
    columns: dict[str, Any] = {key: None for pair in _LIKELIHOOD_KEYS.items() for key in pair}
    columns["likelihood_seconds"] = None
    if likelihood_fn is None:
        return columns
    start = time.perf_counter()
    reported = dict(likelihood_fn())
    columns["likelihood_seconds"] = time.perf_counter() - start
    unknown = set(reported) - set(columns)
    if unknown:
        raise ValueError(f"likelihood_fn returned unknown keys {sorted(unknown)}; expected some of "
                         f"{sorted(k for pair in _LIKELIHOOD_KEYS.items() for k in pair)}")
    for number, kind in _LIKELIHOOD_KEYS.items():
        if reported.get(number) is None:
            if reported.get(kind) is not None:
                raise ValueError(f"likelihood_fn gave {kind}={reported[kind]!r} without {number}")
            continue
        value = float(reported[number])
        if not math.isfinite(value):
            raise ValueError(f"likelihood_fn returned {number}={value}; check the model for NaN outputs")
        if reported.get(kind) not in LIKELIHOOD_KINDS:
            raise ValueError(f"likelihood_fn must say whether {number} is exact or a bound: {kind} must be one "
                             f"of {LIKELIHOOD_KINDS}, got {reported.get(kind)!r}")
        columns[number], columns[kind] = value, reported[kind]
    return columns


def _sample_timed(sample_fn: Callable[[int, torch.Generator], Tensor], num_samples: int, seed: int,
                  batch_size: int, warmup: int) -> tuple[Tensor, float, str]:
    """All samples on the CPU (N, 1, 28, 28), the seconds they took, and the device they came from."""
    if warmup:  # first calls pay one-off costs (lazy init, allocator, cuDNN autotuning): not timed
        sample_fn(warmup, torch.Generator().manual_seed(seed + 1_000_003))
    generator = torch.Generator().manual_seed(seed)
    batches, device = [], "cpu"
    start = time.perf_counter()
    for first in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - first)
        batch = sample_fn(n, generator)
        if not isinstance(batch, Tensor) or batch.dim() == 0 or len(batch) != n:
            got = f"shape {tuple(batch.shape)}" if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"sample_fn(n, generator) must return a tensor of n={n} images (n, 1, 28, 28) "
                             f"in [0, 1], got {got}")
        device = batch.device.type
        batches.append(batch.detach().float().cpu())  # .cpu() waits for the GPU: the timing is complete
    seconds = time.perf_counter() - start
    return _check_images(torch.cat(batches), "samples"), seconds, device


def evaluate_family(
    sample_fn: Callable[[int, torch.Generator], Tensor],
    *,
    real_test: Tensor,
    real_train: Tensor | None,
    num_samples: int = 5000,
    seed: int = 0,
    likelihood_fn: Callable[[], Mapping[str, Any]] | None = None,
    family: str = "model",
    info: Mapping[str, Any] | None = None,
    batch_size: int = 500,
    memorisation_samples: int = 1000,
    warmup: int = 16,
    classifier: nn.Module | None = None,
) -> dict[str, Any]:
    """Score one trained model (one family, one seed) on the scoreboard's protocol; no training here.

    ``sample_fn(n, generator)`` must return ``n`` images ``(n, 1, 28, 28)`` in [0, 1] (tanh
    generators: map with ``genlab.data.to_unit_range``), drawing its randomness from the CPU
    ``torch.Generator`` it is given (seeded with ``seed``), so a row is reproducible. It is called
    in batches of ``batch_size``; the wall-clock time of those calls (after an untimed warm-up
    call of ``warmup`` images with another generator; 0 skips it) gives ``sample_seconds_per_1000``,
    on whatever device and thread count the sampler uses (both recorded).

    The samples are scored against the seed's ``num_samples`` reference test digits
    (:func:`reference_split`): ``fid`` (FID-MNIST), ``inception_score``, ``precision``/``recall``
    (k = 3), ``density``/``coverage`` (k = 5), ``label_counts`` (predicted digits, 10 ints) and,
    given ``real_train`` (the digits the model trained on), ``memorisation_ratio``: the median
    pixel distance of ``memorisation_samples`` samples to their nearest training digit over that
    of as many reference test digits (about 1: new digits; near 0: copies).

    ``likelihood_fn()`` (optional) returns the family's own likelihood numbers, passed through:
    ``nats`` (NLL per image of dynamically binarized test digits) with ``nats_kind`` and/or
    ``bits_per_dim`` (of dequantized 8-bit test digits) with ``bits_kind``, each kind
    ``"exact"`` or ``"bound"`` (an upper bound on the NLL: IWAE, a variational bound); its
    wall-clock time is ``likelihood_seconds``. Families without a likelihood get None.

    ``info`` adds the caller's columns (parameters, training CPU seconds, steps, ...); they
    must not reuse a metric's name. Returns a flat dict of JSON types. Typical cost on 2 CPU
    cores at 5,000 samples: a few seconds plus the sampling itself.
    See: book/07_diffusion/scoreboard.ipynb.
    """
    _check_count(batch_size, "batch_size")
    _check_count(memorisation_samples, "memorisation_samples", 0)
    _check_count(warmup, "warmup", 0)
    reference, _ = reference_split(real_test, num_samples, seed)
    likelihood = _likelihood_columns(likelihood_fn)  # first: a malformed report fails before the sampling
    fake, seconds, device = _sample_timed(sample_fn, num_samples, seed, batch_size, warmup)
    row: dict[str, Any] = {
        "family": str(family),
        "seed": int(seed),
        "num_samples": int(num_samples),
        **_quality(fake, reference, classifier, batch_size),
        "memorisation_ratio": _memorisation(fake, real_train, reference, min(memorisation_samples, num_samples)),
        "sample_seconds_per_1000": 1000.0 * seconds / num_samples,
        "sample_device": device,
        "sample_threads": torch.get_num_threads(),
        "sample_batch_size": int(batch_size),
        **likelihood,
    }
    return _add_info(row, info)


def _add_info(row: dict[str, Any], info: Mapping[str, Any] | None) -> dict[str, Any]:
    for key, value in (info or {}).items():
        if key in row:
            raise ValueError(f"info key {key!r} would overwrite a measured column; rename it")
        row[key] = _json_value(value, key)
    return row


def real_floor(real_test: Tensor, num_samples: int = 5000, seed: int = 0, *, real_train: Tensor | None = None,
               memorisation_samples: int = 1000, batch_size: int = 500,
               classifier: nn.Module | None = None) -> dict[str, Any]:
    """The same metrics for ``num_samples`` real test digits against the seed's disjoint reference digits.

    The best any generator can score at this sample size: FID-MNIST of two disjoint sets of
    5,000 real test digits is small but not 0 (finite-sample bias), precision/recall and
    coverage sit below 1 and density near 1 (k-NN balls miss some fresh points); the
    memorisation ratio (given ``real_train``) is about 1. The row's family is
    :data:`FLOOR_FAMILY`; sampling and likelihood columns are None. Needs ``2 * num_samples``
    test digits (the full split: 10,000). See: book/07_diffusion/scoreboard.ipynb.
    """
    _check_count(batch_size, "batch_size")
    _check_count(memorisation_samples, "memorisation_samples", 0)
    reference, others = reference_split(real_test, num_samples, seed, need_floor=True)
    assert others is not None
    row: dict[str, Any] = {
        "family": FLOOR_FAMILY,
        "seed": int(seed),
        "num_samples": int(num_samples),
        **_quality(others, reference, classifier, batch_size),
        "memorisation_ratio": _memorisation(others, real_train, reference, min(memorisation_samples, num_samples)),
        "sample_seconds_per_1000": None,
        "sample_device": None,
        "sample_threads": None,
        "sample_batch_size": None,
        **_likelihood_columns(None),
    }
    return row


# --------------------------------------------------------------------------- summaries over seeds


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summarise(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds, one entry per family (in order of first appearance).

    Each entry: ``family``, ``seeds`` (sorted list), ``num_seeds``, and ``metrics``: for every
    numeric column (not ``seed``), ``{"mean", "std", "min", "max", "n"}`` over the seeds that
    have a value (None values, e.g. a GAN's likelihood, are skipped; all None gives mean None).
    The spread is the *sample* standard deviation (ddof = 1; None with one seed) and the
    min-max range; with 3 seeds the range is the more honest of the two. Non-numeric columns
    (``nats_kind``, ``sample_device``, ...) are kept in ``labels`` when every seed agrees, else
    listed as ``"mixed: a, b"``. A family with two rows for the same seed is an error.
    See: book/07_diffusion/scoreboard.ipynb.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if "family" not in row or "seed" not in row:
            raise ValueError(f"every row needs 'family' and 'seed' (rows of evaluate_family), got keys {sorted(row)}")
        groups.setdefault(str(row["family"]), []).append(row)
    summary = []
    for family, group in groups.items():
        seeds = [int(row["seed"]) for row in group]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"family {family!r} has several rows for one seed ({sorted(seeds)}); "
                             "update_results replaces a (family, seed) row instead of adding one")
        keys = [key for key in dict.fromkeys(k for row in group for k in row) if key not in ("family", "seed")]
        metrics: dict[str, dict[str, Any]] = {}
        labels: dict[str, Any] = {}
        for key in keys:
            values = [row.get(key) for row in group]
            present = [v for v in values if v is not None]
            if present and all(_is_number(v) for v in present):
                metrics[key] = _spread([float(v) for v in present])
            elif all(v is None for v in values):
                metrics[key] = _spread([]) if key in METRICS else None
            elif all(isinstance(v, (str, type(None))) for v in values):
                distinct = list(dict.fromkeys(present))
                labels[key] = distinct[0] if len(distinct) == 1 else "mixed: " + ", ".join(distinct)
        summary.append({"family": family, "seeds": sorted(seeds), "num_seeds": len(seeds),
                        "metrics": {k: v for k, v in metrics.items() if v is not None}, "labels": labels})
    return summary


def _spread(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n}


def _decimals(value: float) -> int:
    """Decimals that show about 3 significant figures (0 for values >= 100, at most 4)."""
    if value == 0 or not math.isfinite(value):
        return 2
    return max(0, min(4, 2 - math.floor(math.log10(abs(value)))))


def _cell(stats: Mapping[str, Any] | None, spread: str, kind: str | None = None) -> str:
    if not stats or stats.get("mean") is None:
        return "-"
    mean, places = stats["mean"], _decimals(stats["mean"])
    text = f"{mean:.{places}f}"
    if spread == "std" and stats.get("std") is not None:
        text += f" ± {stats['std']:.{places}f}"
    elif spread == "range" and stats.get("n", 0) > 1:
        text += f" ({stats['min']:.{places}f}-{stats['max']:.{places}f})"
    if kind == "bound":
        text = "≤ " + text  # an upper bound on the NLL
    return text


DEFAULT_COLUMNS = ("fid", "inception_score", "precision", "recall", "density", "coverage", "memorisation_ratio",
                   "sample_seconds_per_1000", "nats", "bits_per_dim")


def markdown_table(summary: Sequence[Mapping[str, Any]], columns: Sequence[str] = DEFAULT_COLUMNS,
                   spread: str = "std") -> str:
    """A Markdown table of :func:`summarise`'s output: one row per family, ``mean ± std`` cells.

    ``columns`` are metric keys (:data:`METRICS` or any numeric info column such as
    ``parameters``); ``spread`` is ``"std"`` (mean ± sample std over seeds), ``"range"``
    (mean (min-max)) or ``"none"``. Likelihoods that are upper bounds get a "≤" prefix;
    missing values show "-". The last column is the number of seeds; about 3 significant
    figures per cell. See: book/07_diffusion/scoreboard.ipynb.
    """
    if spread not in ("std", "range", "none"):
        raise ValueError(f"spread must be 'std', 'range' or 'none', got {spread!r}")
    headers = ["family"] + [METRICS[c][0] if c in METRICS else c for c in columns] + ["seeds"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
    for entry in summary:
        labels = entry.get("labels", {})
        cells = [str(entry["family"])]
        for column in columns:
            kind = labels.get(_LIKELIHOOD_KEYS[column]) if column in _LIKELIHOOD_KEYS else None
            cells.append(_cell(entry["metrics"].get(column), spread, kind))
        cells.append(str(entry["num_seeds"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the results file


def _json_value(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (tensors and numpy scalars converted; NaN and inf become None)."""
    if isinstance(value, Tensor):
        value = value.tolist()
    elif hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalars
    elif hasattr(value, "tolist") and callable(value.tolist):
        value = value.tolist()  # numpy arrays
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v, where) for v in value]
    raise ValueError(f"{where}: {type(value).__name__} is not JSON-serialisable; pass numbers, strings or lists")


def save_results(path: str | Path, rows: Sequence[Mapping[str, Any]],
                 metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write the results file atomically: ``{format, version, metadata, rows, summary}`` as JSON.

    ``rows`` are the raw per-seed rows (:func:`evaluate_family`, :func:`real_floor`); the
    summary is recomputed from them, so the file never disagrees with itself. The JSON goes to
    a temporary file in the same folder, is flushed to disk, then renamed over ``path``: a
    crash mid-write leaves the old file intact. Returns the written document.
    See: book/07_diffusion/scoreboard.ipynb.
    """
    path = Path(path)
    clean_rows = [_json_value(dict(row), f"rows[{i}]") for i, row in enumerate(rows)]
    document = {"format": RESULTS_FORMAT, "version": RESULTS_VERSION,
                "metadata": _json_value(dict(metadata or {}), "metadata"),
                "rows": clean_rows, "summary": summarise(clean_rows)}
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        os.chmod(path, 0o644)  # mkstemp creates it private; the results file is shared (and shipped)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return document


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file written by :func:`save_results`; its summary is recomputed from the rows.

    Raises FileNotFoundError naming the command to create it, ValueError for another format.
    See: book/07_diffusion/scoreboard.ipynb.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no scoreboard results at {path.name}; run the benchmark "
                                "(benchmarks/scoreboard.py) to create it")
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path.name} is not a genlab scoreboard results file (format {RESULTS_FORMAT!r})")
    if document.get("version") != RESULTS_VERSION:
        raise ValueError(f"{path.name} has results version {document.get('version')!r}; this genlab reads "
                         f"version {RESULTS_VERSION}: regenerate it with the benchmark")
    document["summary"] = summarise(document["rows"])
    return document


def update_results(path: str | Path, new_rows: Sequence[Mapping[str, Any]],
                   metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Add rows to the results file (created if missing), replacing any row with the same (family, seed).

    The benchmark calls it after each model, so an interrupted run keeps what it measured and a
    rerun of one family overwrites only that family's seeds. ``metadata`` keys update the
    stored ones. Returns the written document. See: book/07_diffusion/scoreboard.ipynb.
    """
    path = Path(path)
    with _locked(path):  # two benchmark processes (e.g. different --only) may finish at once
        document = load_results(path) if path.exists() else {"rows": [], "metadata": {}}
        fresh = {(str(row["family"]), int(row["seed"])) for row in new_rows}
        rows = [row for row in document["rows"] if (str(row["family"]), int(row["seed"])) not in fresh]
        return save_results(path, rows + list(new_rows), {**document.get("metadata", {}), **(metadata or {})})


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path``'s sibling ``.lock`` file for a read-modify-write (POSIX; elsewhere none)."""
    try:
        import fcntl
    except ImportError:  # Windows: one benchmark process at a time
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
