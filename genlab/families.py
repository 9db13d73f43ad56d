"""Every model family the book trains on MNIST, built the same way and trained at the same budget.

The scoreboard chapter (book/07_diffusion/scoreboard.ipynb) and its benchmark
(``benchmarks/scoreboard.py``) put a dozen families side by side. Each :class:`Contender` knows
its chapter and how to build a :class:`Run` for a seed; a run trains for a number of *CPU
seconds* (``time.process_time``: honest on a busy machine, where wall-clock seconds are not) or
for a recorded number of steps (to reproduce a benchmark run exactly), samples images in [0, 1],
and reports the likelihood its family defines:

* ``nats``: negative log-likelihood of dynamically binarized test digits (Bernoulli pixels),
  exact (PixelCNN) or an upper bound (VAEs: the IWAE estimate);
* ``bits_per_dim``: of 8-bit test digits under uniform dequantization, exact density of the
  dequantized digits (mixture, flow) or an upper bound (DDPM's variational bound); both are upper
  bounds on the discrete 8-bit likelihood.

Every model is the one its chapter trains (same architecture and optimiser); only the budget
changes. See: book/07_diffusion/scoreboard.ipynb.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from genlab.runtime import get_profile, seed_everything

__all__ = ["CONTENDERS", "RESULTS_PATH", "SAMPLES_PATH", "Contender", "Run", "TrainerRun", "binarized_test_digits",
           "checkpoint_path", "dequantized_test_digits", "get_contender", "slug"]

ASSETS = Path(__file__).resolve().parent / "assets"
RESULTS_PATH = ASSETS / "scoreboard.json"  # written by benchmarks/scoreboard.py, read by the chapter
SAMPLES_PATH = ASSETS / "scoreboard_samples.npz"  # 36 samples (uint8) per contender, seed 0


# --------------------------------------------------------------------------- test data, one protocol


def binarized_test_digits(test_images: Tensor, n: int, seed: int = 0) -> Tensor:
    """The first ``n`` test digits, each pixel drawn once as Bernoulli(intensity): the IWAE protocol
    (Burda et al. 2016) that ``benchmarks/run.py`` and Part 3 use. (n, 1, 28, 28) in {0, 1}."""
    from genlab.data import binarize

    return binarize(test_images[:n], generator=torch.Generator().manual_seed(seed))


def dequantized_test_digits(test_images: Tensor, n: int, seed: int = 0) -> Tensor:
    """The first ``n`` test digits as 8-bit integers plus uniform noise, divided by 256: (n, 1, 28, 28)
    in [0, 1). A density on these scores ``-log2 p / 784 + 8`` bits/dim for the 8-bit digits, an upper
    bound on their discrete negative log-likelihood (Theis et al. 2016)."""
    pixels = (test_images[:n] * 255).round()
    return (pixels + torch.rand(pixels.shape, generator=torch.Generator().manual_seed(seed))) / 256


# --------------------------------------------------------------------------- runs


class Run:
    """One trained model of one family, for one seed. Subclasses fill in the four methods."""

    steps: int = 0
    cpu_seconds: float = 0.0

    def train(self, cpu_seconds: float | None = None, steps: int | None = None) -> None:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """(n, 1, 28, 28) images in [0, 1]."""
        raise NotImplementedError

    def likelihood(self, test_images: Tensor, n: int) -> dict:
        """{"nats": ..., "nats_kind": "exact" | "bound"} and/or {"bits_per_dim": ..., "bits_kind": ...}."""
        return {}

    def num_parameters(self) -> int:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        raise NotImplementedError

    def load(self, path: str | Path) -> None:
        raise NotImplementedError


def _budget_loop(step_chunk: Callable[[int], None], cpu_seconds: float | None, steps: int | None,
                 chunk: int) -> tuple[int, float]:
    """Call ``step_chunk(k)`` until ``steps`` are done or ``cpu_seconds`` of process CPU time are spent."""
    if (cpu_seconds is None) == (steps is None):
        raise ValueError("train needs exactly one budget: cpu_seconds=... or steps=...")
    done, start = 0, time.process_time()
    while (steps is None or done < steps) and (cpu_seconds is None or time.process_time() - start < cpu_seconds):
        k = chunk if steps is None else min(chunk, steps - done)
        step_chunk(k)
        done += k
    return done, time.process_time() - start


class TrainerRun(Run):
    """A :class:`genlab.tasks.Task` trained by the :class:`genlab.training.Trainer` (GANs, VAEs, DDPM,
    flow matching, and Part 7's likelihood families)."""

    def __init__(self, task, data, batch_size: int, seed: int, sample: Callable, likelihood: Callable | None = None,
                 chunk: int = 10) -> None:
        from genlab.training import Trainer

        self.task, self.chunk = task, chunk
        self.trainer = Trainer(task, data=data, batch_size=batch_size, seed=seed, progress=False)
        self._sample, self._likelihood = sample, likelihood

    def train(self, cpu_seconds: float | None = None, steps: int | None = None) -> None:
        done, seconds = _budget_loop(lambda k: self.trainer.fit(steps=k, log_every=max(k, 1)), cpu_seconds, steps,
                                     self.chunk)
        self.steps, self.cpu_seconds = self.steps + done, self.cpu_seconds + seconds

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self._sample(self.task, n, generator).float().clamp(0, 1).cpu()

    def likelihood(self, test_images: Tensor, n: int) -> dict:
        return {} if self._likelihood is None else self._likelihood(self.task, test_images, n)

    def num_parameters(self) -> int:
        from genlab.models import count_parameters

        return sum(count_parameters(m) for name, m in self.task.models.items() if name != "ema")

    def save(self, path: str | Path) -> None:
        self.trainer.save(path)

    def load(self, path: str | Path) -> None:
        self.trainer.load(path)
        self.steps = self.trainer.step


class MixtureRun(Run):
    """A Gaussian mixture fitted by EM (Part 1) to dequantized training digits; one step = one EM step."""

    def __init__(self, train_images: Tensor, num_components: int, seed: int, variance_floor: float = 1e-4) -> None:
        from genlab.models.mixture import initialise_mixture

        pixels = (train_images * 255).round().flatten(1).double()
        noise = torch.rand(pixels.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.data, self.floor = (pixels + noise) / 256, variance_floor  # (N, 784) in [0, 1)
        self.model = initialise_mixture(self.data, num_components, "diag", torch.Generator().manual_seed(seed),
                                        variance_floor)

    def train(self, cpu_seconds: float | None = None, steps: int | None = None) -> None:
        from genlab.models.mixture import em_step

        def step(k: int) -> None:
            for _ in range(k):
                self.model, _ = em_step(self.model, self.data, self.floor)

        done, seconds = _budget_loop(step, cpu_seconds, steps, 1)
        self.steps, self.cpu_seconds = self.steps + done, self.cpu_seconds + seconds

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.model.sample(n, generator=generator).float().clamp(0, 1).view(n, 1, 28, 28)

    def likelihood(self, test_images: Tensor, n: int) -> dict:
        y = dequantized_test_digits(test_images, n).flatten(1).double()  # (n, 784)
        nats = -self.model.log_prob(y).mean().item()
        return {"bits_per_dim": nats / (784 * math.log(2)) + 8, "bits_kind": "exact"}

    def num_parameters(self) -> int:
        from genlab.models.mixture import gaussian_mixture_parameter_count

        return gaussian_mixture_parameter_count(self.model.num_components, self.model.dim, "diag")

    def save(self, path: str | Path) -> None:
        from genlab.checkpoint import save_checkpoint

        save_checkpoint(path, weights=self.model.weights, means=self.model.means,
                        covariances=self.model.covariances, steps=self.steps)

    def load(self, path: str | Path) -> None:
        from genlab.checkpoint import load_checkpoint
        from genlab.models.mixture import GaussianMixture

        state = load_checkpoint(path)
        self.model = GaussianMixture(state["weights"], state["means"], state["covariances"], "diag")
        self.steps = state["steps"]


class LatentFlowRun(Run):
    """Latent diffusion at CPU scale (book/07_diffusion/latent_diffusion.ipynb): a ConvVAE (beta 0.1,
    16-d latents) gets the first ``autoencoder_share`` of the budget, then an MLP flow-matching model
    on its standardised mean latents gets the rest. ``steps`` is (autoencoder steps, latent steps)."""

    def __init__(self, train_images: Tensor, seed: int, autoencoder_share: float = 0.55) -> None:
        from genlab.models import ConvVAE, MLPDenoiser
        from genlab.tasks import VAETask
        from genlab.training import Trainer

        seed_everything(seed)
        self.autoencoder = ConvVAE(latent_dim=16, channels=(32, 64))
        self.ae_trainer = Trainer(VAETask(self.autoencoder, lr=1e-3, beta=0.1), train_images, batch_size=64,
                                  seed=seed, progress=False)
        self.velocity_net = MLPDenoiser(data_dim=16, hidden_dim=256, num_blocks=3)
        self.optimizer = torch.optim.Adam(self.velocity_net.parameters(), lr=1e-3)
        self.images, self.share, self.seed = train_images, autoencoder_share, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.steps, self.scaled, self.scaler = (0, 0), None, None

    def _encode(self) -> None:
        from genlab.latent import LatentScaler, encode_dataset

        self.autoencoder.eval()
        latents = encode_dataset(self.autoencoder, self.images)  # (N, 16)
        self.scaler = LatentScaler.fit(latents)
        self.scaled = self.scaler.transform(latents)

    def _latent_steps(self, k: int) -> None:
        from genlab.flow_matching import flow_matching_loss

        self.velocity_net.train()
        for _ in range(k):
            batch = self.scaled[torch.randint(len(self.scaled), (256,), generator=self.generator)]  # (256, 16)
            loss = flow_matching_loss(lambda z, s: self.velocity_net(z, 1000 * s), batch, generator=self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()

    def train(self, cpu_seconds: float | None = None, steps: tuple[int, int] | None = None) -> None:
        ae_budget = None if cpu_seconds is None else self.share * cpu_seconds
        ae_done, ae_seconds = _budget_loop(lambda k: self.ae_trainer.fit(steps=k, log_every=k), ae_budget,
                                           None if steps is None else steps[0], 10)
        start = time.process_time()
        self._encode()
        encode_seconds = time.process_time() - start
        rest = None if cpu_seconds is None else max(0.0, cpu_seconds - ae_seconds - encode_seconds)
        latent_done, latent_seconds = _budget_loop(self._latent_steps, rest, None if steps is None else steps[1], 50)
        self.steps = (ae_done, latent_done)
        self.cpu_seconds = ae_seconds + encode_seconds + latent_seconds

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        from genlab.latent import sample_latent_flow

        self.velocity_net.eval()
        images, _ = sample_latent_flow(lambda z, s: self.velocity_net(z, 1000 * s),
                                       lambda z: self.autoencoder.to_images(self.autoencoder.decode(z)),
                                       self.scaler, n, steps=10, sampler="heun", generator=generator)
        return images.float().clamp(0, 1)

    def num_parameters(self) -> int:
        from genlab.models import count_parameters

        return count_parameters(self.autoencoder) + count_parameters(self.velocity_net)

    def save(self, path: str | Path) -> None:
        from genlab.checkpoint import save_checkpoint

        save_checkpoint(path, autoencoder=self.autoencoder.state_dict(), velocity=self.velocity_net.state_dict(),
                        steps=list(self.steps))

    def load(self, path: str | Path) -> None:
        from genlab.checkpoint import load_checkpoint, load_model_state

        state = load_checkpoint(path)
        load_model_state(self.autoencoder, state["autoencoder"], "autoencoder")
        load_model_state(self.velocity_net, state["velocity"], "velocity")
        self.steps = tuple(state["steps"])
        self._encode()


# --------------------------------------------------------------------------- the contenders


def _mnist(value_range=(0.0, 1.0)):
    from genlab.data import load_mnist

    return load_mnist("train", value_range=value_range)


def _vae_likelihood(task, test_images: Tensor, n: int) -> dict:
    from genlab.likelihood import importance_weighted_nll

    k = get_profile().pick(quick=50, standard=500, full=5000)
    result = importance_weighted_nll(task.model, binarized_test_digits(test_images, n), num_samples=k,
                                     batch_size=20, generator=torch.Generator().manual_seed(0))
    return {"nats": result["nats"], "nats_kind": "bound"}


def _vae(build_model: Callable, iwae_samples: int = 1) -> Callable[[int], Run]:
    def build(seed: int) -> Run:
        from genlab.tasks import VAETask

        seed_everything(seed)
        task = VAETask(build_model(), lr=1e-3, binarize=True, iwae_samples=iwae_samples)
        return TrainerRun(task, _mnist(), 128, seed, lambda t, n, g: t.sample(n, generator=g), _vae_likelihood)
    return build


def _recipe(name: str, sample: Callable | None = None) -> Callable[[int], Run]:
    """A GAN recipe of ``genlab.train`` (the chapter's model and optimiser), images mapped to [0, 1]."""
    def build(seed: int) -> Run:
        from genlab.train import build as build_recipe

        task, data, batch_size, _ = build_recipe(name, get_profile(), seed)
        return TrainerRun(task, data, batch_size, seed,
                          sample or (lambda t, n, g: (t.sample(n, generator=g) + 1) / 2))
    return build


def _ddpm_likelihood(task, test_images: Tensor, n: int) -> dict:
    from genlab.diffusion import vlb_bits_per_dim

    # Every one of the T terms, not a random subset: the t = 1 (decoder) term is large and a random
    # subset that happens to draw it for a few digits swings the mean by bits (variance, not bias).
    # All T terms cost T network passes per digit, so at most 100 digits (standard).
    n = min(n, get_profile().pick(quick=4, standard=100, full=1000))
    x0 = dequantized_test_digits(test_images, n) * 2 - 1  # the bound's convention: [-1, 1]
    net = task.network().eval()
    with torch.no_grad():
        bpd = vlb_bits_per_dim(lambda x, t: net(x, t), task.schedule, x0, num_terms=None,
                               generator=torch.Generator().manual_seed(1))
    return {"bits_per_dim": bpd, "bits_kind": "bound"}


def _denoiser(name: str, sample: Callable, likelihood: Callable | None = None) -> Callable[[int], Run]:
    def build(seed: int) -> Run:
        from genlab.train import build as build_recipe

        task, data, batch_size, _ = build_recipe(name, get_profile(), seed)
        return TrainerRun(task, data, batch_size, seed, sample, likelihood)
    return build


def _pixelcnn(seed: int) -> Run:
    from genlab.models.pixelcnn import PixelCNN
    from genlab.tasks import PixelCNNTask

    def likelihood(task, test_images: Tensor, n: int) -> dict:
        from genlab.autoregressive import exact_nll

        return {"nats": exact_nll(task.model, binarized_test_digits(test_images, n))["nats"], "nats_kind": "exact"}

    seed_everything(seed)
    task = PixelCNNTask(PixelCNN(channels=32, num_blocks=5), lr=3e-3)
    return TrainerRun(task, _mnist(), 32, seed, lambda t, n, g: t.sample(n, generator=g), likelihood)


def _coupling_flow(seed: int) -> Run:
    from genlab.models.flow import MultiScaleFlow
    from genlab.tasks import FlowTask

    def likelihood(task, test_images: Tensor, n: int) -> dict:
        from genlab.flows import dequantized_bits_per_dim

        result = dequantized_bits_per_dim(task.model, test_images[:n], generator=torch.Generator().manual_seed(0))
        return {"bits_per_dim": result["bits_per_dim"], "bits_kind": "exact"}

    seed_everything(seed)
    task = FlowTask(MultiScaleFlow(hidden=32), lr=1e-3)
    return TrainerRun(task, _mnist(), 64, seed, lambda t, n, g: t.sample(n, generator=g), likelihood)


def _energy(seed: int) -> Run:
    from genlab.energy import decoupled_langevin_parameters
    from genlab.models.ebm import ConvEnergy
    from genlab.tasks import EBMTask

    step_size, noise_scale = decoupled_langevin_parameters(10.0, 0.005)
    seed_everything(seed)
    task = EBMTask(ConvEnergy(), langevin_steps=20, step_size=step_size, noise_scale=noise_scale, alpha=0.1,
                   lr=3e-4, buffer_size=8_192, reinit=0.05, data_noise=0.005)
    return TrainerRun(task, _mnist(), 64, seed, lambda t, n, g: t.sample(n, steps=60, generator=g))


def _mixture(seed: int) -> Run:
    return MixtureRun(_mnist().images, num_components=20, seed=seed)


def _latent_flow(seed: int) -> Run:
    return LatentFlowRun(_mnist().images, seed)


@dataclass(frozen=True)
class Contender:
    """One family's entry on the scoreboard: ``build(seed)`` returns an untrained :class:`Run`.

    See: book/07_diffusion/scoreboard.ipynb."""

    name: str
    family: str
    chapter: str
    build: Callable[[int], Run] = field(repr=False)
    sampler: str = ""  # how samples are drawn (number of network evaluations per image)
    max_samples: int | None = None  # a cap on the scoreboard's sample size, for samplers too slow for 5,000


def _contenders() -> dict[str, Contender]:
    from genlab.models.vae import MLPVAE, ConvVAE

    entries = [
        Contender("Gaussian mixture (20 diag.)", "mixture", "book/01_concepts/generative_vs_discriminative.ipynb",
                  _mixture, "ancestral, 1 pass"),
        Contender("MLP VAE", "VAE", "book/03_vae/mnist_vae.ipynb", _vae(lambda: MLPVAE(latent_dim=20)),
                  "decoder mean, 1 pass"),
        Contender("Conv VAE", "VAE", "book/03_vae/mnist_vae.ipynb",
                  _vae(lambda: ConvVAE(latent_dim=20, channels=(16, 32))), "decoder mean, 1 pass"),
        Contender("IWAE-trained VAE (k=5)", "VAE", "book/03_vae/likelihood.ipynb",
                  _vae(lambda: MLPVAE(latent_dim=20), iwae_samples=5), "decoder mean, 1 pass"),
        Contender("MLP GAN", "GAN", "book/04_practice/mlp_gan.ipynb", _recipe("mlp_gan"), "1 pass"),
        Contender("DCGAN", "GAN", "book/04_practice/dcgan.ipynb", _recipe("dcgan"), "1 pass"),
        Contender("cGAN (labels 0-9 in turn)", "GAN", "book/04_practice/cgan_wgan.ipynb", _recipe("cgan"), "1 pass"),
        Contender("WGAN-GP", "GAN", "book/04_practice/cgan_wgan.ipynb", _recipe("wgan_gp"), "1 pass"),
        Contender("DDPM (DDIM 50)", "diffusion", "book/07_diffusion/diffusion_mnist.ipynb",
                  _denoiser("diffusion", lambda t, n, g: t.sample(n, steps=50, generator=g), _ddpm_likelihood),
                  "DDIM, 50 passes"),
        Contender("Flow matching (Heun 10)", "diffusion", "book/07_diffusion/flow_matching.ipynb",
                  _denoiser("flow_matching", lambda t, n, g: t.sample(n, steps=10, sampler="heun", generator=g)),
                  "Heun, 19 passes"),
        Contender("Latent flow matching", "diffusion", "book/07_diffusion/latent_diffusion.ipynb", _latent_flow,
                  "Heun 19 MLP passes + 1 decoder pass"),
        Contender("Coupling flow (RealNVP-style)", "flow", "book/07_diffusion/normalizing_flows.ipynb", _coupling_flow,
                  "1 inverse pass"),
        Contender("PixelCNN", "autoregressive", "book/07_diffusion/pixelcnn.ipynb", _pixelcnn,
                  "784 passes (one per pixel)", max_samples=1000),  # ~1 CPU s per sample: 5,000 take 80 min
        Contender("Conv EBM (Langevin 60)", "energy-based", "book/07_diffusion/energy_models.ipynb", _energy,
                  "Langevin from noise, 60 gradient passes"),
    ]
    return {c.name: c for c in entries}


CONTENDERS: dict[str, Contender] = _contenders()


def slug(name: str) -> str:
    """A file name for a contender: 'IWAE-trained VAE (k=5)' -> 'iwae-trained-vae-k5'."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in name.replace("=", ""))
    return "-".join(part for part in out.split("-") if part)


def checkpoint_path(name: str, seed: int, budget_cpu_seconds: float) -> Path:
    """Where the scoreboard benchmark saves (and the chapter looks for) one trained contender:
    ``<checkpoint folder>/scoreboard/<slug>-s<seed>-<budget>cpus.pt``."""
    from genlab.checkpoint import checkpoint_dir

    return checkpoint_dir() / "scoreboard" / f"{slug(name)}-s{seed}-{budget_cpu_seconds:g}cpus.pt"


def get_contender(name: str) -> Contender:
    """The contender called ``name`` (a key of :data:`CONTENDERS`), with a clear error otherwise."""
    if name not in CONTENDERS:
        raise ValueError(f"unknown contender {name!r}; expected one of: {', '.join(CONTENDERS)}")
    return CONTENDERS[name]
