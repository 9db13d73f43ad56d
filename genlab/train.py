"""Train one of the book's main models from the command line, on one process or many (``torchrun``).

    python -m genlab.train vae --steps 20 --out vae.pt                     # one process (CPU or GPU)
    torchrun --nproc_per_node=4 -m genlab.train dcgan --profile full       # 4 GPUs of one node
    python -m genlab.train --help                                          # every recipe and option

Each recipe builds *the same* task as its chapter (models, optimiser settings, seed, batch size,
steps of the chosen profile), so the checkpoint it writes is what that chapter's train-or-load
(:meth:`genlab.training.Trainer.fit_or_load`) loads: train once on a cluster, read the book with
the results. ``--batch-size`` is the *global* batch, split evenly over the processes. The default
``--out`` is ``<checkpoint folder>/<recipe>-<profile>.pt`` (``GENLAB_CHECKPOINT_DIR``), the name
the chapters use; an existing checkpoint there is resumed (``--resume``, the default) when it was
written by the same number of processes. See: book/04_practice/distributed.ipynb.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genlab.runtime import Profile, get_profile, seed_everything

__all__ = ["RECIPES", "Recipe", "build", "main"]


@dataclass(frozen=True)
class Recipe:
    """A model of the book: ``build(profile, seed)`` -> (task, data, default batch size, default steps).

    See: book/04_practice/distributed.ipynb.
    """

    chapter: str
    description: str
    build: Callable
    checkpoint: str | None = None  # the chapter's checkpoint name (default: the recipe's name)


def _mnist(value_range=(0.0, 1.0)):
    from genlab.data import load_mnist

    return load_mnist("train", value_range=value_range)


def _vae(profile: Profile, seed: int = 0):
    from genlab.models.vae import MLPVAE
    from genlab.tasks import VAETask

    seed_everything(seed)
    return VAETask(MLPVAE(latent_dim=20), lr=1e-3), _mnist(), 128, profile.pick(quick=30, standard=400, full=6_000)


def _conv_vae(profile: Profile, seed: int = 0):
    from genlab.models.vae import ConvVAE
    from genlab.tasks import VAETask

    seed_everything(seed)
    return (VAETask(ConvVAE(latent_dim=20, channels=(16, 32)), lr=1e-3), _mnist(), 128,
            profile.pick(quick=30, standard=400, full=6_000))


def _iwae_vae(profile: Profile, seed: int = 0):
    from genlab.models.vae import MLPVAE
    from genlab.tasks import VAETask

    seed_everything(seed)
    return (VAETask(MLPVAE(latent_dim=20), lr=1e-3, binarize=True, iwae_samples=5), _mnist(), 128,
            profile.pick(quick=30, standard=400, full=6_000))


def _dcgan(profile: Profile, seed: int = 0):
    from genlab import book_runs
    from genlab.models.gan import DCGANDiscriminator, DCGANGenerator
    from genlab.tasks import GANTask

    channels_g, channels_d = book_runs.dcgan_channels(profile)
    seed_everything(seed)
    task = GANTask(DCGANGenerator(channels=channels_g),
                   DCGANDiscriminator(channels=channels_d, batch_norm=True, dropout=0.0),
                   loss="non_saturating", lr=1e-3, betas=(0.5, 0.999))
    return task, _mnist((-1, 1)), book_runs.BATCH_SIZE, book_runs.dcgan_steps(profile)


def _mlp_gan(profile: Profile, seed: int = 0):
    from genlab import book_runs
    from genlab.models.gan import MLPDiscriminator, MLPGenerator
    from genlab.tasks import GANTask

    seed_everything(seed)
    task = GANTask(MLPGenerator(latent_dim=100), MLPDiscriminator(hidden=(1024, 512)),
                   loss="non_saturating", lr=5e-4, betas=(0.5, 0.999))
    return task, _mnist((-1, 1)), book_runs.BATCH_SIZE, book_runs.mlp_gan_steps(profile)


def _cgan(profile: Profile, seed: int = 0):
    from genlab.models.gan import MLPDiscriminator, MLPGenerator
    from genlab.tasks import GANTask

    seed_everything(seed)
    task = GANTask(MLPGenerator(num_classes=10), MLPDiscriminator(hidden=(1024, 512), num_classes=10), lr=5e-4)
    return task, _mnist((-1, 1)), 64, profile.pick(quick=20, standard=3_000, full=10_000)


def _wgan_gp(profile: Profile, seed: int = 0):
    from genlab.models.gan import DCGANCritic, DCGANGenerator
    from genlab.tasks import GANTask

    channels_g = profile.pick(quick=(32, 16), standard=(64, 32), full=(128, 64))
    channels_d = profile.pick(quick=(16, 32), standard=(32, 64), full=(64, 128))
    seed_everything(seed)
    task = GANTask(DCGANGenerator(channels=channels_g), DCGANCritic(channels=channels_d), loss="wasserstein",
                   gp_weight=10.0, n_critic=2, lr=5e-4, betas=(0.5, 0.9))
    return task, _mnist((-1, 1)), 64, profile.pick(quick=10, standard=1_000, full=20_000)


def _char_transformer(profile: Profile, seed: int = 0):
    from genlab.data import CharTokenizer, python_source_corpus, train_val_split
    from genlab.models.text import TinyTransformer
    from genlab.tasks import LanguageModelTask

    text = python_source_corpus(max_chars=profile.pick(quick=200_000, standard=400_000, full=1_000_000))
    train_text, _ = train_val_split(text, val_fraction=0.1)
    tokenizer = CharTokenizer.from_text(text)
    seed_everything(seed)
    block_size = 64
    model = TinyTransformer(tokenizer.vocab_size, block_size=block_size, n_layer=2, n_head=4, n_embd=64)
    return (LanguageModelTask(model, lr=3e-3, block_size=block_size), tokenizer.encode(train_text),
            profile.pick(quick=32, standard=32, full=64), profile.pick(quick=40, standard=300, full=3_000))


def _diffusion(profile: Profile, seed: int = 0):
    from genlab.diffusion import NoiseSchedule
    from genlab.models.unet import UNet
    from genlab.tasks import DiffusionTask

    seed_everything(seed)
    task = DiffusionTask(UNet(base_channels=32), schedule=NoiseSchedule(1000, "linear"), lr=1e-3, ema_decay=0.999)
    return task, _mnist(), 32, profile.pick(quick=30, standard=2_000, full=20_000)


def _flow_matching(profile: Profile, seed: int = 0):
    from genlab.models.unet import UNet
    from genlab.tasks import FlowMatchingTask

    seed_everything(seed)
    task = FlowMatchingTask(UNet(base_channels=32), lr=1e-3, ema_decay=0.999)
    return task, _mnist(), 32, profile.pick(quick=30, standard=2_000, full=20_000)


def _diffusion_available() -> bool:
    import genlab.tasks

    return (hasattr(genlab.tasks, "FlowMatchingTask") and importlib.util.find_spec("genlab.models.unet") is not None
            and importlib.util.find_spec("genlab.diffusion") is not None)


RECIPES: dict[str, Recipe] = {
    "vae": Recipe("book/03_vae/mnist_vae.ipynb", "MLP VAE, latent 20, Adam 1e-3 (VAETask)", _vae),
    "conv_vae": Recipe("book/03_vae/mnist_vae.ipynb", "convolutional VAE, channels (16, 32)", _conv_vae),
    "iwae_vae": Recipe("book/03_vae/likelihood.ipynb", "MLP VAE trained on the importance-weighted bound "
                       "(k=5) of dynamically binarized digits", _iwae_vae),
    "mlp_gan": Recipe("book/04_practice/mlp_gan.ipynb", "MLP GAN, non-saturating loss, lr 5e-4 "
                      "(the chapter's saved run, mlp_gan-<profile>.pt)", _mlp_gan),
    "dcgan": Recipe("book/04_practice/dcgan.ipynb", "DCGAN, BatchNorm in both players, lr 1e-3 "
                    "(the chapter's saved run, dcgan-<profile>.pt)", _dcgan),
    "cgan": Recipe("book/04_practice/cgan_wgan.ipynb", "class-conditional MLP GAN (projection discriminator)",
                   _cgan),
    "wgan_gp": Recipe("book/04_practice/cgan_wgan.ipynb", "DCGAN generator + critic, Wasserstein loss, "
                      "gradient penalty 10, 2 critic steps", _wgan_gp),
    "char_transformer": Recipe("book/05_applications/text_generation.ipynb", "character-level Transformer "
                               "(2 layers, 4 heads, 64 wide) on Python source", _char_transformer),
}
if _diffusion_available():
    RECIPES["diffusion"] = Recipe("book/07_diffusion/diffusion_mnist.ipynb", "DDPM U-Net (32 channels, linear "
                                  "schedule, EMA 0.999; the chapter's saved run, ddpm_mnist-<profile>.pt)",
                                  _diffusion, "ddpm_mnist")
    RECIPES["flow_matching"] = Recipe("book/07_diffusion/flow_matching.ipynb", "flow-matching U-Net (32 channels, "
                                      "EMA 0.999; the chapter's saved run, flow_mnist-<profile>.pt)",
                                      _flow_matching, "flow_mnist")


def build(recipe: str, profile: Profile | None = None, seed: int = 0):
    """(task, data, batch size, steps) of ``recipe`` for ``profile``; ``seed`` seeds the initial weights
    (the chapters use 0). See: book/04_practice/distributed.ipynb."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[recipe].build(profile or get_profile(), seed)


def _parser() -> argparse.ArgumentParser:
    recipes = "\n".join(f"  {name:<17} {r.description}\n  {'':<17} chapter: {r.chapter}"
                        for name, r in RECIPES.items())
    parser = argparse.ArgumentParser(
        prog="python -m genlab.train", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one of the book's models (the same task as its chapter) and write a checkpoint "
                    "that the chapter's train-or-load reads. Runs unchanged under torchrun.",
        epilog=f"recipes:\n{recipes}\n\nexamples:\n"
               "  python -m genlab.train vae --steps 20 --out vae.pt\n"
               "  torchrun --standalone --nproc_per_node=2 -m genlab.train vae --steps 20 --out vae.pt\n"
               "  torchrun --nnodes=2 --nproc_per_node=8 --rdzv_id=JOB --rdzv_backend=c10d \\\n"
               "      --rdzv_endpoint=HOST:29400 -m genlab.train dcgan --profile full   # on every node\n"
               "See book/04_practice/distributed.ipynb.")
    parser.add_argument("recipe", choices=list(RECIPES), metavar="RECIPE", help="one of: " + ", ".join(RECIPES))
    parser.add_argument("--steps", type=int, help="training steps (default: the chapter's for the profile)")
    parser.add_argument("--batch-size", type=int, help="the GLOBAL batch, divided evenly over the processes "
                        "(default: the chapter's)")
    parser.add_argument("--profile", choices=["quick", "standard", "full"],
                        help="budget profile (default: GENLAB_PROFILE, else full on a GPU, standard on a CPU)")
    parser.add_argument("--out", type=Path, help="checkpoint path (default: <GENLAB_CHECKPOINT_DIR>/"
                        "<name>-<profile>.pt, where the chapter looks: the recipe's name unless its "
                        "description names another)")
    parser.add_argument("--seed", type=int, default=0, help="the Trainer's seed: batches and noise (default 0, "
                        "as in the chapters; the models' initialisation is seeded with 0 by the recipe)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="continue from --out when it exists (default); --no-resume trains afresh")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="also write --out every N steps")
    parser.add_argument("--log-every", type=int, default=50, help="history rows every N steps (default 50)")
    parser.add_argument("--sync-batchnorm", action="store_true", help="BatchNorm statistics over the global "
                        "batch (SyncBatchNorm) when running on several GPUs (CUDA only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status. See: book/04_practice/distributed.ipynb."""
    from genlab.checkpoint import checkpoint_dir
    from genlab.training import Trainer

    args = _parser().parse_args(argv)
    profile = get_profile(args.profile)
    task, data, batch_size, steps = build(args.recipe, profile)
    steps = steps if args.steps is None else args.steps
    batch_size = batch_size if args.batch_size is None else args.batch_size
    out = args.out or checkpoint_dir() / f"{RECIPES[args.recipe].checkpoint or args.recipe}-{profile}.pt"
    trainer = Trainer(task, data=data, batch_size=batch_size, seed=args.seed, sync_batchnorm=args.sync_batchnorm)
    world = trainer.world
    if world.is_main:
        print(f"genlab.train {args.recipe}: profile {profile}, {steps} steps, global batch {batch_size} = "
              f"{world.world_size} process(es) x {batch_size // world.world_size}, device {trainer.device}, "
              f"checkpoint {out.name}", flush=True)
        if out.exists() and not args.resume:
            out.unlink()
    if not args.resume:
        from genlab.distributed import barrier

        barrier()  # rank 0 removed the old file before anyone looks for it
    start = time.perf_counter()
    trainer.fit(steps=steps, log_every=args.log_every, checkpoint_path=out, checkpoint_every=args.checkpoint_every)
    if world.is_main:
        row = {name: round(trainer.history.last(name), 4) for name in trainer.history.metrics}
        print(f"genlab.train {args.recipe}: step {trainer.step}, {time.perf_counter() - start:.1f} s this run, "
              f"last logged {row}; wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
