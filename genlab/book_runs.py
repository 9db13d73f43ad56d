"""The saved GAN runs of Part 4, trained once and loaded by later chapters.

``book/04_practice/mlp_gan.ipynb`` and ``book/04_practice/dcgan.ipynb`` train their GANs and
save them in :func:`genlab.checkpoint.checkpoint_dir` as ``mlp_gan-<profile>.pt`` and
``dcgan-<profile>.pt``. Chapters that compare against those runs call the functions below,
which rebuild *the same* task (models, optimiser settings, seed, batch size, number of steps)
and hand it to :meth:`genlab.training.Trainer.fit_or_load`: the saved run is loaded when it is
there, and trained (then saved) from scratch otherwise.
See: book/04_practice/cgan_wgan.ipynb and book/03_vae/likelihood.ipynb.
"""

from __future__ import annotations

from genlab.checkpoint import checkpoint_dir
from genlab.data import ImageData, load_mnist
from genlab.models.gan import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from genlab.runtime import Profile, get_profile, seed_everything
from genlab.training import GANTask, Trainer

BATCH_SIZE = 64  # both chapters


def mlp_gan_steps(profile: Profile | None = None) -> int:
    """Training steps of the MLP GAN chapter (book/04_practice/mlp_gan.ipynb) for ``profile``."""
    return (profile or get_profile()).pick(quick=40, standard=5_000, full=10_000)


def dcgan_steps(profile: Profile | None = None) -> int:
    """Training steps of the DCGAN chapter (book/04_practice/dcgan.ipynb) for ``profile``."""
    return (profile or get_profile()).pick(quick=30, standard=3_000, full=6_000)


def dcgan_channels(profile: Profile | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """(generator, discriminator) widths of the DCGAN chapter: halved on a CPU, the article's on a GPU."""
    profile = profile or get_profile()
    return (profile.pick(quick=(32, 16), standard=(64, 32), full=(128, 64)),
            profile.pick(quick=(16, 32), standard=(32, 64), full=(64, 128)))


def _train_or_load(name: str, task: GANTask, steps: int, data: ImageData | None, profile: Profile,
                   log_every: int) -> Trainer:
    data = load_mnist("train", value_range=(-1, 1)) if data is None else data
    trainer = Trainer(task, data=data, batch_size=BATCH_SIZE, seed=0)
    trainer.fit_or_load(steps, checkpoint_dir() / f"{name}-{profile}.pt", log_every=log_every)
    return trainer


def mlp_gan(data: ImageData | None = None, profile: Profile | None = None, log_every: int = 50) -> Trainer:
    """The trained MLP GAN of book/04_practice/mlp_gan.ipynb, loaded if saved, else trained and saved.

    ``data`` defaults to the MNIST training split in [-1, 1], as in the chapter. Returns the
    :class:`~genlab.training.Trainer`: ``trainer.task.generator`` is the generator,
    ``trainer.task.sample(n)`` draws images in [-1, 1], ``trainer.train_seconds`` is the
    training time of the run (also when it was loaded).
    """
    profile = profile or get_profile()
    seed_everything(0)
    task = GANTask(MLPGenerator(latent_dim=100), MLPDiscriminator(hidden=(1024, 512)),
                   loss="non_saturating", lr=5e-4, betas=(0.5, 0.999))
    return _train_or_load("mlp_gan", task, mlp_gan_steps(profile), data, profile, log_every)


def dcgan(data: ImageData | None = None, profile: Profile | None = None, log_every: int = 50) -> Trainer:
    """The trained DCGAN of book/04_practice/dcgan.ipynb, loaded if saved, else trained and saved.

    Same conventions as :func:`mlp_gan`; the widths follow :func:`dcgan_channels`.
    """
    profile = profile or get_profile()
    channels_g, channels_d = dcgan_channels(profile)
    seed_everything(0)
    task = GANTask(DCGANGenerator(channels=channels_g),
                   DCGANDiscriminator(channels=channels_d, batch_norm=True, dropout=0.0),
                   loss="non_saturating", lr=1e-3, betas=(0.5, 0.999))
    return _train_or_load("dcgan", task, dcgan_steps(profile), data, profile, log_every)
