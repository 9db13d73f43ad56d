#!/usr/bin/env python3
"""Does ``torch.set_flush_denormal(True)`` speed up the book's models on a CPU?

    python benchmarks/flush_denormal.py              # every model, 5 alternating repeats, writes RESULTS.md
    python benchmarks/flush_denormal.py --dry-run    # one short repeat each, prints only

Denormal (subnormal) floats, below about 1.2e-38 in float32, are handled by slow microcode on
many x86 CPUs. Small activations and gradients that decay towards zero (late in training, deep in
a network, in small U-Nets) can hit them; flushing them to zero trades a negligible amount of
precision for speed. This script measures Trainer steps per second of each model the book
trains on MNIST with the flag off and on, alternating which goes first, in one process, and
writes the "flush-denormal" section of ``benchmarks/RESULTS.md``. Each model is first trained
for ``--warm`` steps (flag off), since denormals appear as weights and activations evolve, then
timed with the flag off and on from copies of that same state.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import machine, markdown_table, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.data import load_mnist  # noqa: E402
from genlab.models.gan import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator  # noqa: E402
from genlab.models.vae import MLPVAE, ConvVAE  # noqa: E402
from genlab.training import GANTask, Trainer, VAETask  # noqa: E402


def cases() -> dict:
    """name -> (build task, value range, batch size): the book's standard-profile MNIST recipes."""
    return {
        "DCGAN (G 64/32, D 32/64, BN), batch 64": (
            lambda: GANTask(DCGANGenerator(channels=(64, 32)),
                            DCGANDiscriminator(channels=(32, 64), batch_norm=True, dropout=0.0), lr=1e-3),
            (-1, 1), 64),
        "MLP GAN (100-256-512-1024-784), batch 64": (
            lambda: GANTask(MLPGenerator(latent_dim=100), MLPDiscriminator(hidden=(1024, 512)), lr=5e-4),
            (-1, 1), 64),
        "MLP VAE 784-400-20, batch 128": (lambda: VAETask(MLPVAE()), (0, 1), 128),
        "conv VAE (32, 64), batch 128": (lambda: VAETask(ConvVAE()), (0, 1), 128),
    }


def rate(trainer: Trainer, steps: int, flush: bool) -> float:
    torch.set_flush_denormal(flush)
    try:
        start = time.perf_counter()
        trainer.fit(steps=steps, log_every=10_000)
        return steps / (time.perf_counter() - start)
    finally:
        torch.set_flush_denormal(False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run")
    parser.add_argument("--warm", type=int, default=300, help="training steps before timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.steps, args.warm, args.repeats = 3, 3, 1
    supported = torch.set_flush_denormal(True)
    torch.set_flush_denormal(False)
    if not supported:
        print("this CPU does not support flushing denormals (no SSE3): nothing to measure")
        return 0
    rows = []
    for name, (build, value_range, batch_size) in cases().items():
        genlab.seed_everything(0)
        data = load_mnist("train", value_range=value_range)
        base = Trainer(build(), data=data, batch_size=batch_size, device="cpu", seed=0, progress=False)
        base.fit(steps=args.warm, log_every=10_000)
        off, on = [], []
        for repeat in range(args.repeats):
            for flush in ((False, True) if repeat % 2 == 0 else (True, False)):
                trainer = copy.deepcopy(base)  # the same trained state for both settings
                (on if flush else off).append(rate(trainer, args.steps, flush))
        o, f = statistics.median(off), statistics.median(on)
        rows.append({"model": name, "steps/s, flag off": f"{o:.2f}", "steps/s, flush_denormal": f"{f:.2f}",
                     "speed-up": f"{f / o:.2f}x",
                     "range (off; on)": f"{min(off):.2f}-{max(off):.2f}; {min(on):.2f}-{max(on):.2f}"})
        print(rows[-1], flush=True)
    table = markdown_table(rows)
    print(table)
    if not args.dry_run:
        header = (f"Command: `python benchmarks/flush_denormal.py {' '.join(sys.argv[1:])}`; "
                  f"{machine(torch.device('cpu'))}; {date.today().isoformat()}; genlab {genlab.__version__}. "
                  f"Each model trained {args.warm} steps first (flag off), then {args.steps} timed steps "
                  f"from copies of that state, median of {args.repeats} alternating runs.\n")
        write_results("flush-denormal", "## CPU: does `torch.set_flush_denormal(True)` help?\n\n" + header
                      + "\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
