"""EBMTask: an energy-based model trained by contrastive divergence with persistent Langevin chains (Part 7).

See: book/07_diffusion/energy_models.ipynb.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.energy import ReplayBuffer, contrastive_divergence_loss, langevin_sample
from genlab.runtime import eval_mode
from genlab.tasks.base import Task, _range_error, noise

__all__ = ["EBMTask"]


class EBMTask(Task):
    """An energy network ``energy(x) -> (B,)`` trained as in Du and Mordatch (2019).

    One step: draw chain starts from the :class:`~genlab.energy.ReplayBuffer` (a fraction
    ``reinit`` fresh noise), run ``langevin_steps`` steps of :func:`~genlab.energy.langevin_sample`
    on the current energy (``step_size``, ``noise_scale``, clamped to [-1, 1] for images), push the
    end points back, and take one Adam step on
    :func:`~genlab.energy.contrastive_divergence_loss` (E(real) - E(fake) + ``alpha`` times the
    squared energies). ``data_noise``: the standard deviation of Gaussian noise added to each
    real batch (Du and Mordatch: 0.005 on images), which smooths the data distribution slightly.

    Data, by ``energy.input_shape``: 2-D points (N, 2) as they are, or images (N, 1, 28, 28) in
    [0, 1] (an ``ImageData``), mapped to [-1, 1] inside the task. The buffer is
    ``models["buffer"]``: a checkpoint saves the chains with the network, so a resumed run is the
    same run. Metrics: ``loss``, ``energy_real``, ``energy_fake`` (means) and ``contrast``
    (their difference, the CD term). See: book/07_diffusion/energy_models.ipynb.
    """

    divergence_hint = ("raise alpha (the energy regulariser), lower the learning rate or the Langevin step_size, "
                       "or build the energy with spectral_norm=True")

    def __init__(self, energy: nn.Module, langevin_steps: int = 30, step_size: float = 2e-2,
                 noise_scale: float = 0.05, alpha: float = 0.1, lr: float = 1e-4,
                 betas: tuple[float, float] = (0.0, 0.999), buffer_size: int = 8192, reinit: float = 0.05,
                 data_noise: float = 0.0, grad_clip: float | None = 0.1, buffer_noise_scale: float = 1.0) -> None:
        shape = getattr(energy, "input_shape", None)
        if shape is None:
            raise ValueError("EBMTask needs an energy with an input_shape attribute (MLPEnergy or ConvEnergy: "
                             "(2,) for points, (1, 28, 28) for images)")
        if langevin_steps < 1 or step_size <= 0 or noise_scale < 0:
            raise ValueError(f"need langevin_steps >= 1, step_size > 0, noise_scale >= 0; got {langevin_steps}, "
                             f"{step_size}, {noise_scale}")
        if alpha < 0 or lr <= 0 or data_noise < 0 or (grad_clip is not None and grad_clip <= 0):
            raise ValueError(f"need alpha >= 0, lr > 0, data_noise >= 0, grad_clip > 0 or None; got {alpha}, {lr}, "
                             f"{data_noise}, {grad_clip}")
        self.energy = energy
        self.images = len(shape) == 3
        self.langevin_steps, self.step_size, self.noise_scale = langevin_steps, step_size, noise_scale
        self.alpha, self.data_noise, self.grad_clip = alpha, data_noise, grad_clip
        self.clamp = (-1.0, 1.0) if self.images else None
        self.buffer = ReplayBuffer(buffer_size, shape, reinit=reinit, noise="uniform",
                                   noise_scale=1.0 if self.images else buffer_noise_scale)
        self.models = {"energy": energy, "buffer": self.buffer}  # the energy first: Task.device reads it
        self.optimizers = {"energy": torch.optim.Adam(energy.parameters(), lr=lr, betas=betas)}

    def check_data(self, images: Tensor, labels: Tensor | None) -> None:
        shape = tuple(self.buffer.shape)
        if tuple(images.shape[1:]) != shape:
            raise ValueError(f"EBMTask's energy takes examples of shape {shape}, the data has "
                             f"{tuple(images.shape[1:])}")
        if self.images and (images.min() < 0 or images.max() > 1):
            raise _range_error(images, (0.0, 1.0), "EBMTask (it maps [0, 1] pixels to [-1, 1] itself)")
        if not torch.isfinite(images).all():
            raise ValueError("the data contains NaN or infinite values")

    def check_health(self, history) -> str | None:
        """Warn when the energies of data and samples have separated to about -1/(2 alpha) and
        +1/(2 alpha), where the regulariser balances the CD term: the Langevin chains no longer
        reach the data, and the energy has become a classifier of data against stuck samples."""
        if self.alpha <= 0 or not history.metrics.get("contrast"):
            return None
        contrast = history.last("contrast")
        if contrast > -0.8 / self.alpha:
            return None
        return (f"EBMTask: E(data) - E(samples) = {contrast:.3g}, near the regulariser's limit -1/alpha = "
                f"{-1 / self.alpha:.3g}: the energies have separated to about -/+1/(2 alpha) and the Langevin "
                "chains no longer reach the data (a too steep energy for step_size). Lower step_size or the "
                "learning rate, or build the energy with spectral_norm=True.")

    def negatives(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` negative samples: buffer starts (some fresh) run for ``langevin_steps`` steps; pushed back."""
        starts = self.buffer.sample(n, generator)
        x = langevin_sample(self.energy, starts, self.langevin_steps, self.step_size, self.noise_scale,
                            clamp=self.clamp, generator=generator, grad_clip=None)
        self.buffer.push(x)
        return x

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        data, _ = batch
        real = data * 2 - 1 if self.images else data  # images: [0, 1] -> [-1, 1]
        if self.data_noise > 0:
            real = real + self.data_noise * noise("randn", tuple(real.shape), generator, real.device)
            if self.clamp is not None:
                real = real.clamp(*self.clamp)
        with eval_mode(self.energy):  # no dropout/batch-norm updates while sampling
            fake = self.negatives(len(real), generator)
        energies = self.energy(torch.cat([real, fake]))  # (2B,)
        energy_real, energy_fake = energies.chunk(2)
        loss = contrastive_divergence_loss(energy_real, energy_fake, self.alpha)
        self.update("energy", loss, self.grad_clip)
        energy_real, energy_fake = energy_real.detach().mean(), energy_fake.detach().mean()
        return {"loss": loss.detach(), "energy_real": energy_real, "energy_fake": energy_fake,
                "contrast": energy_real - energy_fake}

    def sample(self, n: int, steps: int | None = None, from_buffer: bool = False,
               generator: torch.Generator | None = None, step_size: float | None = None,
               noise_scale: float | None = None) -> Tensor:
        """``n`` samples by Langevin dynamics on the trained energy: from fresh noise (default) or
        from the replay buffer's chains (``from_buffer=True``; the buffer is not changed), for
        ``steps`` steps (default: the training's ``langevin_steps``) with the training's step
        size and noise unless given. Images come back in [0, 1], points as they are.
        Seeded by ``generator``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        steps = self.langevin_steps if steps is None else steps
        if from_buffer:
            if len(self.buffer) == 0:
                raise ValueError("the replay buffer is empty (train first, or sample with from_buffer=False)")
            starts = self.buffer.sample(n, generator, reinit=0.0)
        else:
            starts = self.buffer.fresh(n, generator)
        with eval_mode(self.energy):
            x = langevin_sample(self.energy, starts, steps, self.step_size if step_size is None else step_size,
                                self.noise_scale if noise_scale is None else noise_scale, clamp=self.clamp,
                                generator=generator)
        return (x + 1) / 2 if self.images else x
