#!/usr/bin/env python3
"""The scoreboard: every family the book trains on MNIST, at one budget, on one protocol.

    python benchmarks/scoreboard.py                        # every contender, seeds 0 1 2, 120 CPU s each
    python benchmarks/scoreboard.py --seeds 0 --only DCGAN "MLP VAE"
    python benchmarks/scoreboard.py --report               # rewrite RESULTS.md from the results file
    python benchmarks/scoreboard.py --dry-run              # every contender for 1 CPU second (CI checks it)

Each (contender, seed) runs in its own process on one CPU thread (``--jobs 2`` runs two at once on
a 2-core machine): it trains for ``--budget`` seconds of *process CPU time* (``time.process_time``,
so a busy machine does not change the budget; the steps it reached are recorded and the scoreboard
chapter replays them exactly), saves the model under the checkpoint folder
(``scoreboard/<contender>-s<seed>.pt``), and is scored by :func:`genlab.scoreboard.evaluate_family`:
``--samples`` images (fewer where a contender caps it: the PixelCNN's pixel-by-pixel sampler, with
its own real-digit floor at that size) against as many official test digits (FID-MNIST, IS, precision/recall,
density/coverage, memorisation), the family's likelihood, and sampling cost (wall-clock and CPU
seconds per 1,000 images). Rows go to ``genlab/assets/scoreboard.json`` as each run finishes
(``genlab.scoreboard.update_results``: an interrupted benchmark keeps what it measured; a rerun skips
the (contender, seed) pairs already there unless ``--force``), 36 samples per contender (seed 0) to
``genlab/assets/scoreboard_samples.npz``, and the summary table to the "scoreboard" section of RESULTS.md.
See: book/07_diffusion/scoreboard.ipynb.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from genlab.families import RESULTS_PATH as RESULTS_FILE  # noqa: E402  (shipped: the chapter reads it offline)
from genlab.families import SAMPLES_PATH as SAMPLES_FILE  # noqa: E402
from genlab.families import checkpoint_path, slug  # noqa: E402

GRID = 36  # samples kept per contender for the chapter's figure


def _cpu_timed(sample_fn):
    """Wrap ``sample_fn`` to add up the CPU seconds and images of every call after the first (the warm-up)."""
    totals = {"calls": 0, "seconds": 0.0, "images": 0}

    def wrapped(n: int, generator: torch.Generator) -> torch.Tensor:
        start = time.process_time()
        images = sample_fn(n, generator)
        if totals["calls"] > 0:
            totals["seconds"] += time.process_time() - start
            totals["images"] += n
        totals["calls"] += 1
        return images

    return wrapped, totals


def run_one(name: str, seed: int, budget: float, num_samples: int, num_likelihood: int, fresh: bool,
            save: bool = True) -> dict:
    """Train (or load) one contender for one seed and score it; returns its row and its first samples."""
    torch.set_num_threads(1)
    from genlab.data import load_mnist
    from genlab.families import get_contender
    from genlab.scoreboard import evaluate_family

    contender = get_contender(name)
    num_samples = min(num_samples, contender.max_samples or num_samples)
    train, test = load_mnist("train"), load_mnist("test").images
    run = contender.build(seed)
    path = checkpoint_path(name, seed, budget)
    if path.exists() and not fresh:
        run.load(path)
        run.cpu_seconds = float("nan")  # not re-measured: the row keeps the training run's own number
    else:
        run.train(cpu_seconds=budget)
        if save:
            path.parent.mkdir(parents=True, exist_ok=True)
            run.save(path)
    sample_fn, totals = _cpu_timed(run.sample)
    row = evaluate_family(
        sample_fn, real_test=test, real_train=train.images, num_samples=num_samples, seed=seed,
        likelihood_fn=lambda: run.likelihood(test, num_likelihood), family=name,
        info={"family_kind": contender.family, "chapter": contender.chapter, "sampler": contender.sampler,
              "parameters": run.num_parameters(), "steps": list(run.steps) if isinstance(run.steps, tuple)
              else run.steps, "train_cpu_seconds": run.cpu_seconds, "budget_cpu_seconds": budget,
              "likelihood_test_digits": num_likelihood, "train_digits": len(train)})
    row["sample_cpu_seconds_per_1000"] = 1000 * totals["seconds"] / max(totals["images"], 1)
    grid = run.sample(GRID, torch.Generator().manual_seed(10_000 + seed))
    return {"row": row, "grid": (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()}


def _run_star(job: tuple) -> dict:
    try:
        return run_one(*job)
    except Exception as error:  # one failing contender must not lose the others' rows
        return {"error": f"{job[0]} seed {job[1]}: {type(error).__name__}: {error}"}


def _machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"


def report(document: dict) -> str:
    from genlab.families import CONTENDERS
    from genlab.scoreboard import DEFAULT_COLUMNS, FLOOR_FAMILY, markdown_table

    meta = document.get("metadata", {})
    seeds = sorted({row["seed"] for row in document["rows"]})
    order = [FLOOR_FAMILY, f"{FLOOR_FAMILY}, 1,000", *CONTENDERS]
    summary = sorted(document["summary"], key=lambda e: order.index(e["family"]) if e["family"] in order else 99)
    # wall-clock sampling seconds depend on the machine's load: the CPU seconds are in the results file
    table = markdown_table(summary, columns=[c for c in DEFAULT_COLUMNS if c != "sample_seconds_per_1000"])
    return (f"Command: `{meta.get('command', 'python benchmarks/scoreboard.py')}`; {meta.get('machine', '')}; "
            f"{meta.get('date', '')}. Budget: {meta.get('budget_cpu_seconds', '?')} CPU seconds of training per "
            f"model (one thread); {meta.get('num_samples', '?')} samples against as many official test digits; "
            f"seeds {', '.join(map(str, seeds))}; cells are mean ± standard deviation over seeds. Likelihoods: "
            "nats of dynamically binarized test digits, bits/dim of dequantized 8-bit test digits; "
            "'≤' marks an upper bound on the negative log-likelihood. Sampling cost (CPU seconds per 1,000 "
            "samples, one thread) is in the raw per-seed rows, "
            "`genlab/assets/scoreboard.json`.\n\n" + table)


def write_section(body: str) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run import write_results

    write_results("cpu-scoreboard", "## CPU: every family on one scoreboard\n\n" + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="contenders (default: all)")
    parser.add_argument("--budget", type=float, default=120.0, help="training CPU seconds per model")
    parser.add_argument("--samples", type=int, default=5000, help="samples (and reference test digits) per model")
    parser.add_argument("--likelihood-digits", type=int, default=1000, help="test digits for likelihoods")
    parser.add_argument("--jobs", type=int, default=1, help="models in parallel, one thread each")
    parser.add_argument("--force", action="store_true", help="re-run pairs already in the results file")
    parser.add_argument("--retrain", action="store_true", help="ignore saved checkpoints")
    parser.add_argument("--report", action="store_true", help="only rewrite RESULTS.md from the results file")
    parser.add_argument("--dry-run", action="store_true", help="1 CPU second per model, tiny evaluation; "
                        "writes nothing")
    args = parser.parse_args(argv)
    from genlab.families import CONTENDERS
    from genlab.scoreboard import FLOOR_FAMILY, load_results, real_floor, update_results

    if args.report:
        body = report(load_results(RESULTS_FILE))
        print(body)
        write_section(body)
        return 0
    names = args.only or list(CONTENDERS)
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s) {unknown}; expected some of {list(CONTENDERS)}")
    if args.dry_run:
        args.seeds, args.budget, args.samples, args.likelihood_digits = [0], 1.0, 64, 8
    done = set()
    if RESULTS_FILE.exists() and not (args.force or args.dry_run):
        done = {(r["family"], r["seed"]) for r in load_results(RESULTS_FILE)["rows"]}
    jobs = [(n, s, args.budget, args.samples, args.likelihood_digits, args.retrain or args.dry_run, not args.dry_run)
            for s in args.seeds for n in names if (n, s) not in done]
    print(f"{len(jobs)} runs ({len(done)} already in {RESULTS_FILE.name}); {args.jobs} at a time", flush=True)
    command = "python benchmarks/scoreboard.py " + " ".join(argv if argv is not None else sys.argv[1:])
    metadata = {"command": command.strip(), "machine": _machine(), "date": date.today().isoformat(),
                "budget_cpu_seconds": args.budget, "num_samples": args.samples}
    if not args.dry_run:
        from genlab.data import load_mnist

        test = load_mnist("test").images
        train = load_mnist("train").images
        floors = [real_floor(test, args.samples, s, real_train=train) for s in args.seeds]
        for cap in sorted({CONTENDERS[n].max_samples for n in names} - {None}):  # floors at capped sizes too
            for s in args.seeds:
                floors.append({**real_floor(test, cap, s, real_train=train), "family": f"{FLOOR_FAMILY}, {cap:,}"})
        update_results(RESULTS_FILE, floors, metadata)
    failures = []

    def record(result: dict) -> None:
        if "error" in result:
            failures.append(result["error"])
            print("  FAILED", result["error"], flush=True)
            return
        row = result["row"]
        print(f"  {row['family']} seed {row['seed']}: FID {row['fid']:.1f}, {row['steps']} steps, "
              f"{row['sample_cpu_seconds_per_1000']:.1f} CPU s / 1,000 samples", flush=True)
        if args.dry_run:
            return
        update_results(RESULTS_FILE, [row], metadata)
        if row["seed"] == 0:  # the chapter shows seed 0's samples; re-read: other runs may have added theirs
            samples = dict(np.load(SAMPLES_FILE)) if SAMPLES_FILE.exists() else {}
            samples[slug(row["family"])] = result["grid"]
            tmp = SAMPLES_FILE.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **samples)
            os.replace(tmp, SAMPLES_FILE)

    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for result in pool.imap_unordered(_run_star, jobs):
                record(result)
    else:
        for job in jobs:
            record(_run_star(job))
    if not args.dry_run and RESULTS_FILE.exists():
        body = report(load_results(RESULTS_FILE))
        print(body)
        write_section(body)
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
