#!/usr/bin/env python3
"""Time to quality: the book's recipes against the recipes readers would otherwise copy.

    python benchmarks/time_to_quality.py                       # GANs and VAEs, 3 seeds, writes RESULTS.md
    python benchmarks/time_to_quality.py --family vae --seeds 0
    python benchmarks/time_to_quality.py --dry-run             # every recipe for a few seconds (CI checks it)

Every run trains on one CPU thread (``torch.set_num_threads(1)``; ``--jobs 2`` runs two at once on a
2-core machine without slowing either), on the same data (``load_mnist("train")``: the 5,000 offline
digits, or the 60,000 when online), and is evaluated every ``--eval-every`` seconds of *training*
time (the evaluation's own time is not counted):

- GANs: FID-MNIST of 1,000 samples against 1,000 official test digits;
- diffusion models: FID-MNIST as for GANs (their sampling, tens of network passes, is evaluation);
- VAEs: the negative ELBO (nats, one posterior sample per digit, fixed noise) on 1,000 test digits
  binarized once with a fixed seed (the book's likelihood protocol).

The peer recipes are ports to PyTorch at 28x28 of what a reader would copy, with their published
hyperparameters: pytorch/examples ``dcgan`` and the PyTorch DCGAN tutorial (lr 2e-4, beta1 0.5,
BatchNorm in both networks, batch 128, N(0, 0.02) initialisation), TensorFlow's DCGAN tutorial
(Dense-BN-LeakyReLU generator with 5x5 transposed convolutions, a dropout-0.3 discriminator,
Adam 1e-4 for both, batch 256, both players updated from one forward pass) and pytorch/examples
``vae`` (784-400-20, lr 1e-3, batch 128, summed BCE + KL), and the Hugging Face diffusion course's
"Diffusion models from scratch" (unit 1: a 309k-parameter ``BasicUNet`` that predicts the clean image
from a uniform-noise blend, MSE, Adam 1e-3, batch 128, sampled in 40 blending steps).
Writes ``benchmarks/time_to_quality.json`` (every curve), ``benchmarks/time_to_quality.png`` and the
"time to quality" section of RESULTS.md.
These are measurements, not tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "benchmarks" / "time_to_quality.json"
THRESHOLDS = {"gan": [300.0, 200.0, 150.0], "vae": [120.0, 110.0, 105.0], "diffusion": [300.0, 200.0, 150.0, 120.0]}


# ----------------------------------------------------------------------------- peer models (ports)


def _dcgan_init(module: nn.Module) -> None:
    """pytorch/examples dcgan ``weights_init``: conv N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def pytorch_dcgan(latent_dim: int = 100, ngf: int = 64, ndf: int = 64) -> tuple[nn.Module, nn.Module]:
    """pytorch/examples ``dcgan`` at 28x28: the 64x64 stacks with one up/down-sampling stage fewer."""
    generator = nn.Sequential(
        nn.Unflatten(1, (latent_dim, 1, 1)),
        nn.ConvTranspose2d(latent_dim, ngf * 2, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),  # 7x7
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),  # 14x14
        nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh())  # (B, 1, 28, 28)
    discriminator = nn.Sequential(
        nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),  # 14x14
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),  # 7x7
        nn.Conv2d(ndf * 2, 1, 7, 1, 0, bias=False), nn.Flatten(0))  # (B,) logits (the example: Sigmoid + BCELoss)
    generator.apply(_dcgan_init)
    discriminator.apply(_dcgan_init)
    generator.latent_dim = latent_dim
    return generator, discriminator


def tensorflow_dcgan(latent_dim: int = 100) -> tuple[nn.Module, nn.Module]:
    """TensorFlow's DCGAN tutorial in PyTorch ('same' padding, Keras BatchNorm momentum and Glorot init)."""
    def bn(n: int) -> nn.Module:
        return nn.BatchNorm2d(n, momentum=0.01, eps=1e-3)  # Keras: momentum 0.99, epsilon 1e-3

    generator = nn.Sequential(
        nn.Linear(latent_dim, 7 * 7 * 256, bias=False), nn.BatchNorm1d(7 * 7 * 256, momentum=0.01, eps=1e-3),
        nn.LeakyReLU(0.3), nn.Unflatten(1, (256, 7, 7)),  # Keras LeakyReLU's default slope is 0.3
        nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), bn(128), nn.LeakyReLU(0.3),  # (B, 128, 7, 7)
        nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False), bn(64), nn.LeakyReLU(0.3),  # 14x14
        nn.ConvTranspose2d(64, 1, 5, 2, 2, output_padding=1, bias=False), nn.Tanh())  # (B, 1, 28, 28)
    discriminator = nn.Sequential(
        nn.Conv2d(1, 64, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),  # (B, 64, 14, 14)
        nn.Conv2d(64, 128, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),  # (B, 128, 7, 7)
        nn.Flatten(), nn.Linear(7 * 7 * 128, 1), nn.Flatten(0))  # (B,) logits
    for module in [*generator.modules(), *discriminator.modules()]:
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    generator.latent_dim = latent_dim
    return generator, discriminator


class PyTorchExampleVAE(nn.Module):
    """pytorch/examples ``vae``: fc1 784-400, fc21/fc22 400-20, fc3 20-400, fc4 400-784 (sigmoid)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc1(x.flatten(1)))  # (B, 400)
        return self.fc21(h), self.fc22(h)  # (B, 20) each

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc4(F.relu(self.fc3(z))).view(-1, 1, 28, 28)  # the example applies a sigmoid to these


# ----------------------------------------------------------------------------- one run


@dataclass
class Recipe:
    name: str
    family: str  # "gan", "vae" or "diffusion"
    source: str  # where it comes from
    batch_size: int
    chunk: int  # training steps between clock readings
    build: Callable  # (seed, train_images) -> (train_steps(n), sample_or_elbo)


def _batches(images: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Shuffled epochs of in-memory images, as a DataLoader with shuffle=True, drop_last=True gives them."""
    from genlab.data import iterate_minibatches

    return (batch for (batch,) in iterate_minibatches(images, batch_size=batch_size, generator=generator))


def _peer_pytorch_gan(seed: int, train: torch.Tensor):
    torch.manual_seed(seed)
    G, D = pytorch_dcgan()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    batches = _batches(train, 128, torch.Generator().manual_seed(seed))

    def steps(n: int) -> None:
        for _ in range(n):
            real = next(batches)
            b = len(real)
            fake = G(torch.randn(b, 100))
            loss_d = (F.binary_cross_entropy_with_logits(D(real), torch.ones(b))
                      + F.binary_cross_entropy_with_logits(D(fake.detach()), torch.zeros(b)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(D(fake), torch.ones(b))  # the example reuses `fake`
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():  # the example draws its fixed-noise grid with netG in training mode
            return G(torch.randn(n, 100, generator=generator))

    return steps, sample


def _peer_tensorflow_gan(seed: int, train: torch.Tensor):
    torch.manual_seed(seed)
    G, D = tensorflow_dcgan()
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-4), torch.optim.Adam(D.parameters(), lr=1e-4)
    batches = _batches(train, 256, torch.Generator().manual_seed(seed))
    g_params, d_params = list(G.parameters()), list(D.parameters())

    def steps(n: int) -> None:
        for _ in range(n):  # the tutorial's train_step: one forward pass, two tapes
            real = next(batches)
            b = len(real)
            fake = G(torch.randn(b, 100))
            d_real, d_fake = D(real), D(fake)
            loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones(b))
            loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones(b))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros(b)))
            grads_g = torch.autograd.grad(loss_g, g_params, retain_graph=True)
            grads_d = torch.autograd.grad(loss_d, d_params)
            for params, grads in ((g_params, grads_g), (d_params, grads_d)):
                for p, g in zip(params, grads):
                    p.grad = g
            opt_g.step()
            opt_d.step()

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        G.eval()  # generator(test_input, training=False)
        with torch.no_grad():
            images = G(torch.randn(n, 100, generator=generator))
        G.train()
        return images

    return steps, sample


def _book_gan(dropout: float):
    def build(seed: int, train: torch.Tensor):
        from genlab.models.gan import DCGANDiscriminator, DCGANGenerator
        from genlab.training import GANTask, Trainer

        torch.manual_seed(seed)
        task = GANTask(DCGANGenerator(channels=(64, 32)),
                       DCGANDiscriminator(channels=(32, 64), batch_norm=True, dropout=dropout),
                       loss="non_saturating", lr=1e-3, betas=(0.5, 0.999))
        trainer = Trainer(task, data=train, batch_size=64, seed=seed, progress=False)

        def steps(n: int) -> None:
            trainer.fit(steps=n, log_every=10**9)

        def sample(n: int, generator: torch.Generator) -> torch.Tensor:
            return task.sample(n, generator=generator)

        return steps, sample
    return build


def _book_gan_on_peer_models(seed: int, train: torch.Tensor):
    """genlab's Trainer + GANTask driving the pytorch/examples networks (speed comparison)."""
    from genlab.training import GANTask, Trainer

    torch.manual_seed(seed)
    G, D = pytorch_dcgan()
    task = GANTask(_Wrapped(G), _Wrapped(D), loss="non_saturating", lr=2e-4, betas=(0.5, 0.999),
                   reuse_fakes=True)  # the example's algorithm: the generator's step reuses the fakes
    trainer = Trainer(task, data=train, batch_size=128, seed=seed, progress=False)

    def steps(n: int) -> None:
        trainer.fit(steps=n, log_every=10**9)

    return steps, lambda n, generator: task.sample(n, generator=generator)


class _Wrapped(nn.Module):
    """A plain nn.Sequential with genlab's ``forward(x, labels=None)`` signature."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.num_classes = net, None
        self.latent_dim = getattr(net, "latent_dim", None)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)


def _peer_vae(seed: int, train: torch.Tensor):
    torch.manual_seed(seed)
    model = PyTorchExampleVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = _batches(train, 128, torch.Generator().manual_seed(seed))

    def steps(n: int) -> None:
        for _ in range(n):
            x = next(batches)
            mu, logvar = model.encode(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            bce = F.binary_cross_entropy(torch.sigmoid(model.decode_logits(z)), x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            optimizer.zero_grad()
            (bce + kld).backward()
            optimizer.step()

    return steps, model


def _book_vae(kind: str):
    def build(seed: int, train: torch.Tensor):
        from genlab.models.vae import MLPVAE, ConvVAE
        from genlab.training import Trainer, VAETask

        torch.manual_seed(seed)
        model = MLPVAE() if kind == "mlp" else ConvVAE(latent_dim=20, channels=(16, 32))
        trainer = Trainer(VAETask(model, lr=1e-3), data=train, batch_size=128, seed=seed, progress=False)

        def steps(n: int) -> None:
            trainer.fit(steps=n, log_every=10**9)

        return steps, model
    return build


class BasicUNet(nn.Module):
    """The Hugging Face diffusion course's minimal U-Net (unit 1, "Diffusion models from scratch"): three 5x5
    convolutions down (max-pooling after the first two), three up (nearest upsampling, additive skips), SiLU
    after every layer, no time input. 309,057 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.ModuleList([nn.Conv2d(1, 32, 5, padding=2), nn.Conv2d(32, 64, 5, padding=2),
                                   nn.Conv2d(64, 64, 5, padding=2)])
        self.up = nn.ModuleList([nn.Conv2d(64, 64, 5, padding=2), nn.Conv2d(64, 32, 5, padding=2),
                                 nn.Conv2d(32, 1, 5, padding=2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, conv in enumerate(self.down):
            x = F.silu(conv(x))  # (B, 32, 28, 28), (B, 64, 14, 14), (B, 64, 7, 7)
            if i < 2:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for i, conv in enumerate(self.up):
            if i > 0:
                x = F.interpolate(x, scale_factor=2.0) + skips.pop()
            x = F.silu(conv(x))  # (B, 64, 7, 7), (B, 32, 14, 14), (B, 1, 28, 28)
        return x


def _peer_hf_diffusion(seed: int, train: torch.Tensor):
    torch.manual_seed(seed)
    net = BasicUNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batches = _batches(train, 128, torch.Generator().manual_seed(seed))

    def steps(n: int) -> None:
        for _ in range(n):
            x = next(batches)  # (128, 1, 28, 28) in [0, 1]
            amount = torch.rand(len(x)).view(-1, 1, 1, 1)
            noisy = x * (1 - amount) + torch.rand_like(x) * amount  # the course's corrupt(x, amount)
            loss = F.mse_loss(net(noisy), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        x = torch.rand(n, 1, 28, 28, generator=generator)
        with torch.no_grad():
            for i in range(40):  # move 1/(40 - i) of the way to the prediction
                x = x + (net(x) - x) / (40 - i)
        return x.clamp(0, 1) * 2 - 1

    return steps, sample


def _book_denoiser(kind: str):
    def build(seed: int, train: torch.Tensor):
        from genlab.train import build as build_recipe
        from genlab.training import Trainer

        task, _, batch_size, _ = build_recipe("flow_matching" if kind == "flow" else "diffusion", seed=seed)
        trainer = Trainer(task, data=train, batch_size=batch_size, seed=seed, progress=False)

        def steps(n: int) -> None:
            trainer.fit(steps=n, log_every=10**9)

        def sample(n: int, generator: torch.Generator) -> torch.Tensor:
            if kind == "flow":
                images = task.sample(n, steps=10, sampler="heun", generator=generator)
            else:
                images = task.sample(n, steps=20, generator=generator)
            return images * 2 - 1

        return steps, sample
    return build


def negative_elbo(model: nn.Module, binary: torch.Tensor) -> float:
    """Mean -ELBO in nats (one posterior sample per digit, fixed noise) of a Bernoulli-decoder VAE."""
    was = model.training
    model.eval()
    with torch.no_grad():
        mu, logvar = model.encode(binary)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
        z = mu + eps * torch.exp(0.5 * logvar)
        logits = model.decode_logits(z) if hasattr(model, "decode_logits") else model.decode(z)
        reconstruction = F.binary_cross_entropy_with_logits(logits, binary, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(1)
    model.train(was)
    return float((reconstruction + kl).mean())


RECIPES = [
    Recipe("pytorch/examples dcgan", "gan", "pytorch/examples dcgan + PyTorch DCGAN tutorial", 128, 5,
           _peer_pytorch_gan),
    Recipe("TensorFlow DCGAN tutorial", "gan", "tensorflow.org/tutorials/generative/dcgan", 256, 3,
           _peer_tensorflow_gan),
    Recipe("book DCGAN (dropout 0)", "gan", "book/04_practice/dcgan.ipynb", 64, 10, _book_gan(0.0)),
    Recipe("book DCGAN, dropout 0.3", "gan", "the same with DCGANDiscriminator's dropout 0.3", 64, 10,
           _book_gan(0.3)),
    Recipe("HF course BasicUNet (from scratch)", "diffusion", "huggingface/diffusion-models-class unit 1", 128, 5,
           _peer_hf_diffusion),
    Recipe("book flow matching (Heun 10)", "diffusion", "book/07_diffusion/flow_matching.ipynb", 32, 10,
           _book_denoiser("flow")),
    Recipe("book DDPM (DDIM 20)", "diffusion", "book/07_diffusion/diffusion_mnist.ipynb", 32, 10,
           _book_denoiser("ddpm")),
    Recipe("pytorch/examples vae", "vae", "pytorch/examples vae", 128, 50, _peer_vae),
    Recipe("book MLP VAE", "vae", "book/03_vae/mnist_vae.ipynb", 128, 50, _book_vae("mlp")),
    Recipe("book conv VAE", "vae", "book/03_vae/mnist_vae.ipynb (ConvVAE 16/32, latent 20)", 128, 20,
           _book_vae("conv")),
]
SPEED_PAIR = ("pytorch/examples dcgan", _book_gan_on_peer_models)


def _data():
    from genlab.data import binarize, load_mnist

    train = load_mnist("train", value_range=(0, 1))
    test = load_mnist("test").images[:1000]
    return {"gan": train.images * 2 - 1, "vae": train.images, "diffusion": train.images, "real": test,
            "binary": binarize(test, generator=torch.Generator().manual_seed(0)), "train_source": str(len(train))}


def run(recipe: Recipe, seed: int, budget_s: float, eval_every_s: float, data: dict, clock: str = "wall",
        num_samples: int = 1000) -> dict:
    """Train ``recipe`` for ``budget_s`` seconds of training time; evaluate every ``eval_every_s``.

    ``clock="cpu"`` counts the process's CPU seconds (``time.process_time``) instead of wall-clock
    seconds: on one thread the two agree on an idle machine, and only the CPU clock stays honest on
    a busy one."""
    from genlab.metrics import fid_mnist

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    steps, handle = recipe.build(seed, data[recipe.family])

    def evaluate() -> float:
        if recipe.family == "vae":
            return negative_elbo(handle, data["binary"])
        fake = handle(num_samples, torch.Generator().manual_seed(123)).float()
        return fid_mnist(((fake + 1) / 2).clamp(0, 1), data["real"])

    now = time.process_time if clock == "cpu" else time.perf_counter
    elapsed, done, next_eval, curve = 0.0, 0, eval_every_s, []
    while elapsed < budget_s:
        started = now()
        steps(recipe.chunk)
        elapsed += now() - started
        done += recipe.chunk
        if elapsed >= next_eval or elapsed >= budget_s:
            value = evaluate()
            curve.append((round(elapsed, 2), done, value if math.isfinite(value) else None))
            next_eval += eval_every_s
    return {"recipe": recipe.name, "family": recipe.family, "seed": seed, "curve": curve, "clock": clock,
            "steps_per_s": done / elapsed, "batch_size": recipe.batch_size,
            "loadavg_1min_at_end": round(os.getloadavg()[0], 2)}  # > the jobs running: the machine was shared


def _run_star(args):
    recipe_name, seed, budget_s, eval_every_s, clock = args
    recipe = next(r for r in RECIPES if r.name == recipe_name)
    return run(recipe, seed, budget_s, eval_every_s, _data(), clock)


def speed(seconds: float, repeats: int) -> dict:
    """Steps/s of the peer loop and of genlab's Trainer on the same peer networks, interleaved."""
    torch.set_num_threads(1)
    train = _data()["gan"]
    peer = next(r for r in RECIPES if r.name == SPEED_PAIR[0])
    rates = {"peer loop": [], "genlab Trainer": []}
    for repeat in range(repeats):
        order = [("peer loop", peer.build), ("genlab Trainer", SPEED_PAIR[1])]
        for name, build in order if repeat % 2 == 0 else order[::-1]:
            steps, _ = build(repeat, train)
            steps(2)  # warm-up
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                steps(5)
                done += 5
            rates[name].append(done / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()} | {"runs": rates}


# ----------------------------------------------------------------------------- reporting


def first_time_below(curve: list, threshold: float) -> float | None:
    return next((t for t, _, value in curve if value is not None and value <= threshold), None)


def summary_rows(runs: list[dict], budget_s: float) -> list[dict]:
    rows = []
    for recipe in RECIPES:
        mine = [r for r in runs if r["recipe"] == recipe.name]
        if not mine:
            continue
        row = {"recipe": recipe.name, "family": recipe.family, "seeds": len(mine),
               "steps/s": statistics.median(r["steps_per_s"] for r in mine),
               "final": statistics.median(r["curve"][-1][2] or math.inf for r in mine)}
        for threshold in THRESHOLDS[recipe.family]:
            times = [first_time_below(r["curve"], threshold) for r in mine]
            reached = sorted(t for t in times if t is not None)
            row[threshold] = (statistics.median([t if t is not None else math.inf for t in times]),
                              reached, len(mine))
        rows.append(row)
    return rows


def _cell(value) -> str:
    median, reached, total = value
    if not reached:
        return f"not in budget (0/{total})"
    spread = f"{reached[0]:.0f}-{reached[-1]:.0f}" if len(reached) > 1 else f"{reached[0]:.0f}"
    median_text = f"{median:.0f} s" if math.isfinite(median) else "> budget"
    return f"{median_text} ({spread}; {len(reached)}/{total})"


def markdown(rows: list[dict], budget: dict, speed_result: dict | None, command: str) -> str:
    names = {"gan": "GAN", "vae": "VAE", "diffusion": "diffusion"}
    budgets = ", ".join(f"{names[f]} {budget[f]:.0f} s" for f in names if f in budget)
    lines = [f"Command: `{command}`. {date.today().isoformat()}, one CPU thread per run, training clock only "
             f"(evaluation excluded); budgets: {budgets} per run.", ""]
    for family, metric in (("gan", "FID-MNIST (1,000 samples vs 1,000 test digits)"),
                           ("diffusion", "FID-MNIST (1,000 samples vs 1,000 test digits)"),
                           ("vae", "-ELBO, nats (1,000 binarized test digits)")):
        mine = [r for r in rows if r["family"] == family]
        if not mine:
            continue
        thresholds = THRESHOLDS[family]
        lines += [f"Seconds until {metric} first reaches each threshold: median over seeds (range of the seeds "
                  "that reached it; how many did).", "",
                  "| recipe | steps/s | " + " | ".join(f"<= {t:.0f}" for t in thresholds) + " | final (median) |",
                  "|---|---|" + "---|" * len(thresholds) + "---|"]
        for row in mine:
            lines.append(f"| {row['recipe']} | {row['steps/s']:.1f} | "
                         + " | ".join(_cell(row[t]) for t in thresholds) + f" | {row['final']:.1f} |")
        lines.append("")
        book = [r for r in mine if r["recipe"].startswith("book")]
        peers = [r for r in mine if not r["recipe"].startswith("book")]
        for threshold in thresholds:
            best_peer = min((r[threshold][0] for r in peers), default=math.inf)
            for r in book:
                mine_t = r[threshold][0]
                if math.isfinite(mine_t) and math.isfinite(best_peer):
                    lines.append(f"- <= {threshold:.0f}: {r['recipe']} reaches it {best_peer / mine_t:.2f}x as "
                                 "fast as the best peer recipe (goal >= 1.5x).")
                elif math.isfinite(mine_t):
                    lines.append(f"- <= {threshold:.0f}: {r['recipe']} reaches it in {mine_t:.0f} s; no peer recipe "
                                 f"did within its {budget[family]:.0f} s, so the book's recipe is at least "
                                 f"{budget[family] / mine_t:.1f}x as fast (a lower bound).")
                elif math.isfinite(best_peer):
                    lines.append(f"- <= {threshold:.0f}: a peer recipe reaches it in {best_peer:.0f} s; "
                                 f"{r['recipe']} does not within its budget.")
        lines.append("")
    if speed_result:
        ratio = speed_result["genlab Trainer"] / speed_result["peer loop"]
        lines += [f"Trainer on the peer's own networks (pytorch/examples dcgan, batch 128): "
                  f"{speed_result['genlab Trainer']:.2f} steps/s against the peer loop's "
                  f"{speed_result['peer loop']:.2f}, ratio {ratio:.3f} (goal >= 0.97). Both run the example's "
                  "algorithm (GANTask(reuse_fakes=True): the generator's step reuses the discriminator "
                  "step's fakes).", ""]
    return "\n".join(lines)


def figure(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in ("gan", "diffusion", "vae") if any(r["family"] == f for r in runs)]
    fig, axes = plt.subplots(len(families), 1, figsize=(6.5, 3.6 * len(families)), layout="constrained",
                             squeeze=False)
    colours = dict(zip([r.name for r in RECIPES], plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, family in zip(axes[:, 0], families):
        for recipe in [r for r in RECIPES if r.family == family]:
            for i, run_ in enumerate(r for r in runs if r["recipe"] == recipe.name):
                points = [(t, v) for t, _, v in run_["curve"] if v is not None]
                ax.plot(*zip(*points), color=colours[recipe.name], alpha=0.8, lw=1.2,
                        label=recipe.name if i == 0 else None)
        for threshold in THRESHOLDS[family]:
            ax.axhline(threshold, color="grey", lw=0.6, ls=":")
        ax.set(xlabel="training seconds (1 CPU thread)", yscale="log",
               ylabel="-ELBO (nats)" if family == "vae" else "FID-MNIST")
        ax.set_title({"gan": "GANs", "vae": "VAEs", "diffusion": "diffusion and flow matching"}[family], fontsize=11)
        ax.legend(fontsize=9)
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)


def write_section(body: str, results: Path = ROOT / "benchmarks" / "RESULTS.md") -> None:
    """Replace (or append) the time-to-quality section of ``results``, atomically (benchmarks/run.py's writer)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run import write_results

    title = "## Time to quality: the book's recipes against the ones readers would copy (CPU)"
    write_results("time-to-quality", f"{title}\n\n{body}", results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=["gan", "vae", "diffusion", "all", "none"], default="all",
                        help="which runs to train ('none' with --merge --speed: only re-measure the speed line)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gan-budget", type=float, default=360.0, help="training seconds per GAN run")
    parser.add_argument("--vae-budget", type=float, default=90.0, help="training seconds per VAE run")
    parser.add_argument("--diffusion-budget", type=float, default=300.0, help="training seconds per diffusion run")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="count training seconds by the wall clock or the process's CPU time (a busy machine)")
    parser.add_argument("--eval-every", type=float, default=None, help="seconds between evaluations")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel, one thread each")
    parser.add_argument("--speed-seconds", type=float, default=20.0)
    parser.add_argument("--dry-run", action="store_true", help="a few seconds per recipe; writes nothing")
    parser.add_argument("--merge", action="store_true",
                        help="keep the saved runs not re-run now (other families or seeds; the speed line unless "
                        "it is re-measured)")
    parser.add_argument("--speed", action="store_true", help="also re-measure the Trainer-vs-peer speed line")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the table and figure from benchmarks/time_to_quality.json")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads(OUTPUT.read_text())
        body = markdown(summary_rows(saved["runs"], saved["budget"]["gan"]), saved["budget"], saved["speed"],
                        saved.get("command", "python benchmarks/time_to_quality.py"))
        if saved.get("note"):
            body = f"{body}\n{saved['note']}\n"
        print(body)
        figure(saved["runs"], ROOT / "benchmarks" / "time_to_quality.png")
        write_section(body + "\n![time to quality](time_to_quality.png)\n")
        return 0
    if args.dry_run:
        args.seeds, args.gan_budget, args.vae_budget, args.speed_seconds = [0], 2.0, 1.0, 1.0
        args.diffusion_budget = 2.0
    budget = {"gan": args.gan_budget, "vae": args.vae_budget, "diffusion": args.diffusion_budget}
    every = {"gan": 20.0, "vae": 5.0, "diffusion": 60.0}
    jobs = [(r.name, seed, budget[r.family], args.eval_every or (1.0 if args.dry_run else every[r.family]),
             args.clock)
            for r in RECIPES if args.family in ("all", r.family) for seed in args.seeds]
    print(f"{len(jobs)} runs; {args.jobs} at a time", flush=True)
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            runs = []
            for result in pool.imap_unordered(_run_star, jobs):
                runs.append(result)
                print(f"  {result['recipe']} seed {result['seed']}: final {result['curve'][-1]}", flush=True)
    else:
        runs = []
        for job in jobs:
            runs.append(_run_star(job))
            print(f"  {job[0]} seed {job[1]}: final {runs[-1]['curve'][-1]}", flush=True)
    measure_speed = args.family in ("all", "gan") or args.speed
    speed_result = speed(args.speed_seconds, 1 if args.dry_run else 3) if measure_speed else None
    command = "python benchmarks/time_to_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    command, note = command.strip(), None
    if args.merge and OUTPUT.exists():
        saved = json.loads(OUTPUT.read_text())
        command = f"{saved.get('command', '')}; then {command.removeprefix('python benchmarks/time_to_quality.py ')}"
        note = saved.get("note")  # the reading of the kept runs stays with them
        fresh = {(r["recipe"], r["seed"]) for r in runs}  # keep every other saved run (other seeds too)
        runs = [r for r in saved["runs"] if (r["recipe"], r["seed"]) not in fresh] + runs
        speed_result = speed_result or saved.get("speed")
        if args.family in ("gan", "vae", "diffusion"):
            budget = {**saved["budget"], args.family: budget[args.family]}
        elif args.family == "none":
            budget = saved["budget"]
    rows = summary_rows(runs, args.gan_budget)
    body = markdown(rows, budget, speed_result, command)
    if note:
        body = f"{body}\n{note}\n"
    print(body)
    if args.dry_run:
        return 0
    OUTPUT.write_text(json.dumps({"runs": runs, "speed": speed_result, "budget": budget, "command": command,
                                  **({"note": note} if note else {})}, indent=1) + "\n")
    figure(runs, ROOT / "benchmarks" / "time_to_quality.png")
    write_section(body + "\n![time to quality](time_to_quality.png)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
