"""Flow matching with straight paths (rectified flow): the loss and two ODE samplers.

Noise x_0 ~ N(0, I) and data x_1 are joined by the straight line x_s = (1 - s) x_0 + s x_1,
s in [0, 1] (s = 0 noise, s = 1 data), travelled at the constant velocity x_1 - x_0. A network
v_theta(x_s, s) regresses that velocity (conditional flow matching with sigma_min = 0, Lipman et
al., 2023; rectified flow, Liu et al., 2023)::

    L = E_{s ~ U(0,1), x_0, x_1} || v_theta(x_s, s) - (x_1 - x_0) ||^2

Its minimiser is v(x, s) = E[x_1 - x_0 | x_s = x], the velocity of an ODE dx/ds = v(x, s) that
carries N(0, I) at s = 0 to the data distribution at s = 1. Sampling integrates that ODE.

Convention (book Part 7): samplers and the loss call ``velocity_fn(x, s)`` with s a float tensor (B,)
in [0, 1]; a network that shares DDPM's time embedding is wrapped as
``lambda x, s: model(x, s * 1000)``.

See: book/07_diffusion/diffusion_2d.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["euler_sample", "flow_matching_loss", "heun_sample", "interpolate"]

VelocityFn = Callable[[Tensor, Tensor], Tensor]


def _randn(shape, generator: torch.Generator | None, device, dtype=torch.float32) -> Tensor:
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where, dtype=dtype).to(device)


def interpolate(noise: Tensor, x1: Tensor, s: Tensor) -> Tensor:
    """x_s = (1 - s) noise + s x1, with s (B,) broadcast over the other dimensions."""
    if noise.shape != x1.shape:
        raise ValueError(f"noise and data shapes differ: {tuple(noise.shape)} and {tuple(x1.shape)}")
    if s.dim() != 1 or len(s) != len(x1):
        raise ValueError(f"need one time s per example, shape ({len(x1)},), got {tuple(s.shape)}")
    if float(s.min()) < 0 or float(s.max()) > 1:
        raise ValueError(f"flow-matching time s must lie in [0, 1], got [{float(s.min()):.3g}, {float(s.max()):.3g}]")
    s = s.to(x1.dtype).reshape(-1, *([1] * (x1.dim() - 1)))
    return (1 - s) * noise + s * x1


def flow_matching_loss(velocity_fn: VelocityFn, x1: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Conditional flow-matching loss on straight paths: mean of (v(x_s, s) - (x1 - x0))^2 over all entries.

    s ~ U(0, 1) and x0 ~ N(0, I) are drawn per example. See: book/07_diffusion/diffusion_2d.ipynb.
    """
    where = generator.device if generator is not None else "cpu"
    s = torch.rand(len(x1), generator=generator, device=where).to(x1.device, x1.dtype)  # (B,)
    noise = _randn(x1.shape, generator, x1.device, x1.dtype)
    x_s = interpolate(noise, x1, s)
    return (velocity_fn(x_s, s) - (x1 - noise)).pow(2).mean()


def _check_steps(num_steps: int) -> int:
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}")
    return int(num_steps)


@torch.no_grad()
def euler_sample(velocity_fn: VelocityFn, shape: tuple[int, ...], num_steps: int = 50,
                 generator: torch.Generator | None = None, device: torch.device | str | None = None,
                 noise: Tensor | None = None) -> Tensor:
    """Euler's method for dx/ds = v(x, s) from s = 0 (noise) to s = 1: ``num_steps`` network evaluations.

    x_{i+1} = x_i + h v(x_i, s_i), h = 1 / num_steps. ``noise`` overrides the starting point x_0.
    Returns x at s = 1 (``shape``). See: book/07_diffusion/diffusion_2d.ipynb.
    """
    num_steps, device = _check_steps(num_steps), device if device is not None else "cpu"
    x = _randn(shape, generator, device) if noise is None else noise.to(device)
    h = 1.0 / num_steps
    for i in range(num_steps):
        s = torch.full((shape[0],), i * h, device=device)
        x = x + h * velocity_fn(x, s)
    return x


@torch.no_grad()
def heun_sample(velocity_fn: VelocityFn, shape: tuple[int, ...], num_steps: int = 25,
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                noise: Tensor | None = None, final_euler: bool = True) -> Tensor:
    """Heun's method (explicit trapezoid, second order) for dx/ds = v(x, s) from s = 0 to s = 1.

    x' = x_i + h v(x_i, s_i);  x_{i+1} = x_i + h/2 (v(x_i, s_i) + v(x', s_i + h)): 2 network
    evaluations per step. With ``final_euler`` (the default) the last step is a plain Euler step,
    as in Karras et al. (2022, Algorithm 1), so 2 * num_steps - 1 evaluations in all: for sharp data
    the velocity changes abruptly just before s = 1 (its time scale is the data's own width), and
    averaging with v(x', 1) there undoes the Euler step's jump onto the denoised point
    (measured in book/07_diffusion/diffusion_2d.ipynb). Away from s = 1 the global error falls as
    h^2 rather than Euler's h. Returns x at s = 1 (``shape``).
    """
    num_steps, device = _check_steps(num_steps), device if device is not None else "cpu"
    x = _randn(shape, generator, device) if noise is None else noise.to(device)
    h = 1.0 / num_steps
    for i in range(num_steps):
        s = torch.full((shape[0],), i * h, device=device)
        v = velocity_fn(x, s)
        x_euler = x + h * v
        if final_euler and i == num_steps - 1:
            x = x_euler
        else:
            x = x + 0.5 * h * (v + velocity_fn(x_euler, s + h))
    return x
