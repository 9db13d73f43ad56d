#!/usr/bin/env python3
"""Seconds per 60,000-image DCGAN epoch on a GPU, data on the device: which switches help.

    python benchmarks/gpu_epoch.py             # on a CUDA machine (benchmarks/gpu.sh calls it)
    python benchmarks/gpu_epoch.py --dry-run   # on a CPU: every variant for 2 steps, writes nothing

Variants, each timed over ``--steps`` steps after a warm-up (compilation and CUDA-graph capture
happen in the warm-up and are reported separately):

- the genlab Trainer with its GPU defaults (bf16 autocast + channels_last), batch 128 and 512;
- a hand loop in fp32 (eager), the same loop with ``torch.compile`` on both networks, and with
  ``torch.compile(mode="reduce-overhead")`` (CUDA graphs), batch 128.

The networks are genlab's default ``DCGANGenerator`` / ``DCGANDiscriminator`` (the full widths).
Writes the "gpu-epoch" section of benchmarks/RESULTS.md. Goal (issue 15): < 2 s per epoch on an
H100/H200-class GPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import machine, markdown_table, write_results  # noqa: E402

import genlab  # noqa: E402
from genlab.models.gan import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from genlab.training import GANTask, Trainer  # noqa: E402

EPOCH = 60_000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _images(device: torch.device) -> torch.Tensor:
    """10,000 real digits in [-1, 1] when the test split is there, else random images (speed only)."""
    try:
        from genlab.data import load_mnist

        return load_mnist("test", value_range=(-1, 1)).images.to(device)
    except Exception:  # noqa: BLE001 - timing does not depend on the pixels
        return torch.rand(10_000, 1, 28, 28, device=device) * 2 - 1


def hand_loop(device: torch.device, batch_size: int, compile_mode: str | None):
    """A plain fp32 GAN step (GANTask's algorithm), optionally with both networks compiled."""
    G, D = DCGANGenerator().to(device), DCGANDiscriminator().to(device)
    if compile_mode is not None:
        G, D = torch.compile(G, mode=compile_mode), torch.compile(D, mode=compile_mode)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    images = _images(device)
    ones, zeros = torch.ones(batch_size, device=device), torch.zeros(batch_size, device=device)

    def step() -> None:
        real = images[torch.randint(len(images), (batch_size,), device=device)]
        with torch.no_grad():
            fake = G(torch.randn(batch_size, 100, device=device))
        loss_d = (F.binary_cross_entropy_with_logits(D(real), ones)
                  + F.binary_cross_entropy_with_logits(D(fake), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(D(G(torch.randn(batch_size, 100, device=device))), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    return step


def trainer_loop(device: torch.device, batch_size: int):
    genlab.seed_everything(0)
    trainer = Trainer(GANTask(DCGANGenerator(), DCGANDiscriminator()), data=_images(device), batch_size=batch_size,
                      device=device, progress=False)
    return lambda: trainer.fit(steps=1, log_every=10**9)


def measure(name: str, batch_size: int, make, device: torch.device, warmup: int, steps: int) -> dict:
    started = time.perf_counter()
    step = make()
    for _ in range(warmup):
        step()
    _sync(device)
    warm_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = (time.perf_counter() - started) / steps
    return {"variant": name, "batch": batch_size, "ms/step": f"{1000 * seconds:.2f}",
            "s per 60k epoch": f"{seconds * math.ceil(EPOCH / batch_size):.2f}",
            "warm-up s (compile, capture)": f"{warm_seconds:.1f}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--dry-run", action="store_true", help="2 steps per variant on any device; writes nothing")
    args = parser.parse_args(argv)
    device = genlab.get_device()
    if device.type != "cuda" and not args.dry_run:
        sys.exit("gpu_epoch.py measures a GPU: no CUDA device here (use --dry-run to check it on a CPU)")
    warmup, steps = (1, 2) if args.dry_run else (30, args.steps)
    variants = [("Trainer (bf16 autocast + channels_last)", 128, lambda: trainer_loop(device, 128)),
                ("Trainer (bf16 autocast + channels_last)", 512, lambda: trainer_loop(device, 512)),
                ("hand loop, fp32 eager", 128, lambda: hand_loop(device, 128, None))]
    if device.type == "cuda":  # compilation needs a GPU toolchain (Triton); the CPU dry run skips it
        variants += [("hand loop, torch.compile", 128, lambda: hand_loop(device, 128, "default")),
                     ("hand loop, torch.compile reduce-overhead (CUDA graphs)", 128,
                      lambda: hand_loop(device, 128, "reduce-overhead"))]
    rows = []
    for name, batch_size, make in variants:
        try:
            rows.append(measure(name, batch_size, make, device, warmup, steps))
        except Exception as error:  # noqa: BLE001 - report a variant that fails, keep the others
            print(f"{name} failed: {type(error).__name__}: {str(error)[:2000]}", flush=True)
            rows.append({"variant": name, "batch": batch_size, "ms/step": f"failed: {type(error).__name__}",
                         "s per 60k epoch": "", "warm-up s (compile, capture)": ""})
        print(rows[-1], flush=True)
    table = markdown_table(rows)
    print(table)
    if not args.dry_run:
        write_results("gpu-epoch", f"### DCGAN seconds per 60k-image epoch, data on the device ({machine(device)}; "
                                   f"`python benchmarks/gpu_epoch.py --steps {steps}`)\n\n{table}\n"
                                   "Goal: < 2 s per epoch on an H100/H200-class GPU.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
