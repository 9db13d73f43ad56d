"""Tasks: what is trained and how one step goes (the :class:`genlab.training.Trainer` runs the loop).

A task owns its models and optimisers (dicts by name), ``training_step(batch, step, generator)``
returning a dict of detached scalar tensors (its metrics), and ``sample``. It also knows what can
go wrong with it: ``check_data`` (before training), ``divergence_hint`` (the advice of a
``TrainingDivergedError``) and ``check_health`` (a warning about a run that is finite but failing):

* :class:`GANTask` - a generator and a discriminator/critic, any loss of ``genlab.losses.GAN_LOSSES``;
* :class:`VAETask` - a VAE trained on the negative ELBO (beta, KL warm-up, free bits);
* :class:`LanguageModelTask` - next-token prediction;
* :class:`DiffusionTask` / :class:`FlowMatchingTask` - a denoising network (DDPM's eps or flow
  matching's velocity), with an EMA of the weights and label dropout for classifier-free guidance.

One module per family: ``base`` (Task, noise), ``adversarial``, ``vae``, ``language``, ``denoising``;
Part 7's likelihood families add ``flow``, ``autoregressive`` and ``energy``. Every task is importable
from here (``from genlab.tasks import GANTask``). Subclass :class:`Task` for a new kind of model.
See: book/04_practice/genlab_tour.ipynb.
"""

import importlib
import importlib.util

from genlab.tasks.adversarial import SATURATED_ROWS, GANTask
from genlab.tasks.base import Task, noise
from genlab.tasks.denoising import DiffusionTask, FlowMatchingTask
from genlab.tasks.language import LanguageModelTask
from genlab.tasks.vae import VAETask

__all__ = ["SATURATED_ROWS", "DiffusionTask", "FlowMatchingTask", "GANTask", "LanguageModelTask", "Task",
           "VAETask", "noise"]

# Part 7's likelihood families, imported the first time they are used.
_LAZY = {"FlowTask": "flow", "PixelCNNTask": "autoregressive", "EBMTask": "energy"}


def __getattr__(name: str):
    if name in _LAZY and importlib.util.find_spec(f"genlab.tasks.{_LAZY[name]}") is not None:
        return getattr(importlib.import_module(f"genlab.tasks.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'genlab.tasks' has no attribute {name!r}")
