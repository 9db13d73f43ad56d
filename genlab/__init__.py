"""genlab: the companion package of the book "Generative AI, Hands-On".

Small, tested modules that the notebooks call, one concept each. ``import genlab`` is quick:
each submodule is imported the first time you use it (``genlab.data.load_mnist`` works at once).

- ``genlab.data``        MNIST / Fashion-MNIST, 2-D toy mixtures, offline text corpora
- ``genlab.models``      GANs, VAEs, Gaussian mixtures, RNN and Transformer; U-Net, flows, PixelCNN, energies
- ``genlab.losses``      GAN losses, gradient penalty, ELBO, IWAE bound
- ``genlab.likelihood``  importance-weighted NLL, bits per dimension / character
- ``genlab.estimators``  Monte Carlo gradient estimators (pathwise / reparameterisation, score function)
- ``genlab.diffusion``   Part 7: noise schedules, the forward process, DDPM / DDIM sampling, guidance, bits/dim
- ``genlab.flow_matching``  Part 7: rectified-flow loss, Euler and Heun samplers
- ``genlab.latent``      Part 7: latent diffusion (encode to latents, scale, sample and decode)
- ``genlab.flows``       Part 7: change of variables, dequantization and bits/dim for normalizing flows
- ``genlab.autoregressive``  Part 7: PixelCNN's exact likelihood and pixel-by-pixel sampling
- ``genlab.energy``      Part 7: energy-based models (Langevin dynamics, replay buffer, contrastive divergence)
- ``genlab.families``    every family trained on MNIST at one CPU budget (the scoreboard's contenders)
- ``genlab.scoreboard``  the scoreboard's evaluation: one protocol, per-seed rows, summaries, results file
- ``genlab.tasks``       one training step per family (GANTask, VAETask, DiffusionTask, FlowTask, PixelCNNTask, ...)
- ``genlab.training``    the Trainer: loop, budgets, divergence checks, progress
- ``genlab.distributed``  the Trainer under torchrun: process group, DDP, batch shards
- ``genlab.train``       ``python -m genlab.train RECIPE``: the book's main models from the command line
- ``genlab.history``     a run's record (History) and the callbacks that fill it (SampleGrid, Evaluate)
- ``genlab.checkpoint``  atomic, safe save / load / resume
- ``genlab.book_runs``   the Part 4 GAN runs, trained once and loaded by later chapters
- ``genlab.classifier``  the small MNIST classifier behind the metrics
- ``genlab.metrics``     FID-MNIST, classifier IS, precision / recall, mode coverage
- ``genlab.diagnostics``, ``genlab.vae_analysis``  memorisation; a trained VAE's ELBO terms
- ``genlab.gan_theory``, ``genlab.games``  Part 2's theory made computable; toy GAN experiments
- ``genlab.applications``, ``genlab.applications_vae``  pieces of the application chapters
- ``genlab.plots``, ``genlab.widgets``  figures, and widgets with static fallbacks
- ``genlab.runtime``     device, seeds and the profile (also at the top level)
- ``genlab.check``       ``python -m genlab.check``: is this installation healthy?

Train, sample, save and load in a few lines: the DCGAN of book/04_practice/dcgan.ipynb, about
3 minutes on a 2-core laptop CPU in the ``standard`` profile (benchmarks/RESULTS.md)::

    import genlab
    from genlab.data import load_mnist
    from genlab.models.gan import DCGANDiscriminator, DCGANGenerator
    from genlab.training import GANTask, Trainer

    genlab.seed_everything(0)
    task = GANTask(DCGANGenerator(channels=(64, 32)),
                   DCGANDiscriminator(channels=(32, 64), batch_norm=True, dropout=0.0),
                   loss="non_saturating", lr=1e-3, betas=(0.5, 0.999))
    trainer = Trainer(task, data=load_mnist("train", value_range=(-1, 1)), batch_size=64, seed=0)
    trainer.fit(steps=genlab.get_profile().pick(quick=30, standard=3_000, full=6_000))
    images = task.sample(64)          # (64, 1, 28, 28) in [-1, 1]
    trainer.save("dcgan.pt")          # later: Trainer(GANTask(...), data).load("dcgan.pt")
"""

import importlib

from genlab.runtime import Profile, get_device, get_profile, seed_everything

__version__ = "0.1.0"
__all__ = ["Profile", "__version__", "get_device", "get_profile", "seed_everything"]

SUBMODULES = (
    "applications", "applications_vae", "autoregressive", "book_runs", "check", "checkpoint", "classifier", "data",
    "diagnostics", "diffusion", "distributed", "energy", "estimators", "families", "flow_matching", "flows", "games",
    "gan_theory", "history", "latent", "likelihood", "losses", "metrics", "models", "plots", "runtime", "scoreboard",
    "tasks", "train", "training", "vae_analysis", "widgets",
)


def __getattr__(name: str):
    """Import a submodule on first use (PEP 562), so ``genlab.metrics.fid_mnist`` needs no extra import."""
    if name in SUBMODULES:
        return importlib.import_module(f"genlab.{name}")
    raise AttributeError(f"module 'genlab' has no attribute {name!r}; its submodules are {', '.join(SUBMODULES)}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(SUBMODULES))
