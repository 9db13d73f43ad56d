"""genlab: the companion package of the book "Generative AI, Hands-On".

Small, tested modules that the notebooks call, one concept each:

- ``genlab.data``        MNIST / Fashion-MNIST, 2-D toy mixtures, offline text corpora
- ``genlab.models``      GANs, VAEs, character-level RNN and Transformer
- ``genlab.losses``      GAN losses, gradient penalty, ELBO, IWAE bound
- ``genlab.likelihood``  importance-weighted NLL, bits per dimension / character
- ``genlab.tasks``       what one training step does (GANTask, VAETask, LanguageModelTask)
- ``genlab.training``    the Trainer: loop, history, callbacks, budgets, divergence checks
- ``genlab.checkpoint``  atomic, safe save / load / resume
- ``genlab.classifier``  the small MNIST classifier behind the metrics
- ``genlab.metrics``     FID-MNIST, classifier IS, precision / recall, mode coverage
- ``genlab.plots``, ``genlab.widgets``  figures, and widgets with static fallbacks
- ``genlab.check``       ``python -m genlab.check``: is this installation healthy?

Train, sample, save and load in a few lines::

    import genlab
    from genlab.data import load_mnist
    from genlab.models.gan import DCGANGenerator, DCGANDiscriminator
    from genlab.training import GANTask, Trainer

    genlab.seed_everything(0)
    task = GANTask(DCGANGenerator(), DCGANDiscriminator())
    trainer = Trainer(task, data=load_mnist("train", value_range=(-1, 1)))
    trainer.fit(steps=genlab.get_profile().pick(quick=20, standard=1_500, full=10_000))
    images = task.sample(64)          # (64, 1, 28, 28) in [-1, 1]
    trainer.save("dcgan.pt")          # later: Trainer(GANTask(...), data).load("dcgan.pt")
"""

from genlab.runtime import Profile, get_device, get_profile, seed_everything

__version__ = "0.1.0"
__all__ = ["Profile", "__version__", "get_device", "get_profile", "seed_everything"]
