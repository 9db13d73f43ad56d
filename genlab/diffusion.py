"""Denoising diffusion (DDPM / DDIM): the noise schedule, the loss, the samplers and the bound.

The forward process adds Gaussian noise in T small steps, with t = 1..T and x_0 the data::

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I),       alpha_t = 1 - beta_t
    q(x_t | x_0)     = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),  alpha_bar_t = prod_{s<=t} alpha_s

so x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps in one draw (``q_sample``). A network
eps_theta(x_t, t) learns to predict eps (the "simple" loss of Ho, Jain & Abbeel, 2020); since
E[eps | x_t] = -sqrt(1 - alpha_bar_t) grad log q_t(x_t), it is a scaled estimate of the *score* of
the noised data (denoising score matching, Vincent 2011; Song & Ermon 2019).

Conventions (book Part 7): t is an integer in 1..T (t = 0 is the clean data, alpha_bar_0 = 1);
samplers take a plain callable ``eps_fn(x_t, t) -> eps`` where t is a float tensor (B,) holding the
integer step, so a network, an exact analytic denoiser or a guided combination all plug in.
Images live in [-1, 1].

See: book/07_diffusion/diffusion_2d.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from genlab.models.mixture import GaussianMixture

__all__ = [
    "SCHEDULES",
    "NoiseSchedule",
    "classifier_free_guidance",
    "ddim_sample",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_sample",
    "ddpm_step",
    "diffusion_loss",
    "diffusion_vlb",
    "mixture_denoiser",
    "mixture_from_toy",
    "mixture_score",
    "noised_mixture",
    "to_model_range",
    "vlb_bits_per_dim",
]

SCHEDULES = ("linear", "cosine")
EpsFn = Callable[[Tensor, Tensor], Tensor]


class NoiseSchedule:
    """The variances beta_1..beta_T of the forward process and the quantities derived from them.

    ``betas``, ``alphas``, ``alpha_bars`` are float64 tensors of length T + 1 indexed by t = 0..T,
    with beta_0 = 0 and alpha_bar_0 = 1 (index 0 is the clean data).

    - ``"linear"``: beta_t from ``beta_start`` to ``beta_end`` (Ho et al., 2020: 1e-4 to 0.02 for
      T = 1000; for other T scale both by 1000 / T to keep alpha_bar_T about the same).
    - ``"cosine"``: alpha_bar_t = f(t) / f(0), f(t) = cos^2(pi/2 (t/T + s) / (1 + s)), s = 0.008,
      betas clipped at 0.999 (Nichol & Dhariwal, 2021); ``beta_start``/``beta_end`` are ignored.

    See: book/07_diffusion/diffusion_2d.ipynb.
    """

    def __init__(self, num_steps: int = 1000, kind: str = "linear", beta_start: float = 1e-4,
                 beta_end: float = 0.02) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; expected one of {SCHEDULES}")
        if int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps}")
        num_steps = int(num_steps)
        if kind == "linear":
            if not 0 < beta_start <= beta_end < 1:
                raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start} and {beta_end}")
            betas = torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
        else:
            s = 0.008
            steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        self.num_steps = num_steps
        self.kind = kind
        self.beta_start, self.beta_end = beta_start, beta_end
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])  # (T+1,)
        self.alphas = 1 - self.betas  # (T+1,)
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)  # (T+1,), alpha_bar_0 = 1

    def __repr__(self) -> str:
        return (f"NoiseSchedule(num_steps={self.num_steps}, kind={self.kind!r}, "
                f"alpha_bar_T={float(self.alpha_bars[-1]):.3g})")

    def to(self, device: torch.device | str) -> NoiseSchedule:
        """Move the tables to ``device`` (in place; returns self). They stay float64 where supported."""
        dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        for name in ("betas", "alphas", "alpha_bars"):
            setattr(self, name, getattr(self, name).to(device, dtype))
        return self

    @property
    def posterior_variances(self) -> Tensor:
        """tilde beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t for t = 1..T; index 0 holds 0."""
        ab_prev = torch.cat([self.alpha_bars[:1], self.alpha_bars[:-1]])
        out = (1 - ab_prev) / (1 - self.alpha_bars).clamp(min=1e-300) * self.betas
        out[0] = 0.0
        return out

    def check_timesteps(self, t: Tensor | int, batch: int | None = None, low: int = 0) -> Tensor:
        """t as a long tensor (B,) after checking low <= t <= T (ValueError otherwise)."""
        t = torch.as_tensor(t, device=self.betas.device)
        if t.is_floating_point():
            if not torch.equal(t, t.round()):
                raise ValueError("diffusion timesteps are integers 1..T; got non-integer values "
                                 "(flow matching uses a float time s in [0, 1] instead)")
            t = t.round()
        t = t.long().reshape(-1)
        if batch is not None and len(t) == 1:
            t = t.expand(batch)
        if batch is not None and len(t) != batch:
            raise ValueError(f"need one timestep per example: got {len(t)} for a batch of {batch}")
        if len(t) and (int(t.min()) < low or int(t.max()) > self.num_steps):
            raise ValueError(f"timesteps must lie in [{low}, {self.num_steps}] (T = num_steps), got values in "
                             f"[{int(t.min())}, {int(t.max())}]")
        return t

    def _at(self, table: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """table[t] reshaped to (B, 1, ..., 1) to broadcast against ``like`` (B, ...), in its dtype."""
        values = table.to(like.device)[t.to(like.device)]
        return values.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)

    def q_mean_var(self, x0: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """The closed-form marginal q(x_t | x_0): (mean sqrt(alpha_bar_t) x_0, variance 1 - alpha_bar_t).

        x0 (B, ...); the variance is returned as (B, 1, ..., 1) (the same for every dimension).
        """
        t = self.check_timesteps(t, len(x0))
        alpha_bar = self._at(self.alpha_bars, t, x0)
        return alpha_bar.sqrt() * x0, 1 - alpha_bar

    def q_sample(self, x0: Tensor, t: Tensor | int, noise: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise; same shape as x0."""
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
        mean, var = self.q_mean_var(x0, t)
        return mean + var.sqrt() * noise

    def posterior(self, x_t: Tensor, x0: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """q(x_{t-1} | x_t, x_0) = N(mean, tilde beta_t I) for t in 1..T (Ho et al., 2020, eq. 7).

        mean = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
               + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t.
        Returns (mean (B, ...), variance (B, 1, ..., 1)); at t = 1 the variance is 0 and the mean x_0.
        """
        t = self.check_timesteps(t, len(x0), low=1)
        beta, alpha = self._at(self.betas, t, x0), self._at(self.alphas, t, x0)
        ab, ab_prev = self._at(self.alpha_bars, t, x0), self._at(self.alpha_bars, t - 1, x0)
        mean = (ab_prev.sqrt() * beta * x0 + alpha.sqrt() * (1 - ab_prev) * x_t) / (1 - ab)
        return mean, (1 - ab_prev) / (1 - ab) * beta

    def predict_x0(self, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        """The denoised estimate x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        t = self.check_timesteps(t, len(x_t))
        ab = self._at(self.alpha_bars, t, x_t)
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    def score_from_eps(self, eps: Tensor, t: Tensor | int) -> Tensor:
        """grad log q_t(x_t) = -eps / sqrt(1 - alpha_bar_t) (for the exact E[eps | x_t]); t in 1..T."""
        t = self.check_timesteps(t, len(eps), low=1)
        return -eps / (1 - self._at(self.alpha_bars, t, eps)).sqrt()


def to_model_range(images: Tensor) -> Tensor:
    """Pixels in [0, 1] mapped to the [-1, 1] that diffusion works in (x * 2 - 1), after checking the range."""
    low, high = float(images.min()), float(images.max())
    if low < -1e-6 or high > 1 + 1e-6:
        from genlab.data.images import value_range_hint
        raise ValueError(f"to_model_range needs pixels in [0, 1], got [{low:.3g}, {high:.3g}]: "
                         + value_range_hint(low, high, (0.0, 1.0)))
    return images * 2 - 1


def _randn(shape, generator: torch.Generator | None, device, dtype=torch.float32) -> Tensor:
    """Standard normal noise drawn with ``generator`` (on its device) and moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where, dtype=dtype).to(device)


def _time(t: int | Tensor, batch: int, device) -> Tensor:
    return torch.full((batch,), float(t), device=device) if not torch.is_tensor(t) else t.float().to(device)


def diffusion_loss(eps_fn: EpsFn, schedule: NoiseSchedule, x0: Tensor,
                   generator: torch.Generator | None = None) -> Tensor:
    """The simple loss of Ho et al. (2020): E_{t, eps} || eps - eps_theta(x_t, t) ||^2 (mean over all entries).

    t ~ Uniform{1..T} and eps ~ N(0, I) are drawn per example; eps_fn receives t as a float (B,).
    (For class labels pass ``lambda x, t: model(x, t, labels)``.)
    See: book/07_diffusion/diffusion_2d.ipynb.
    """
    batch = len(x0)
    t = torch.randint(1, schedule.num_steps + 1, (batch,), generator=generator,
                      device=generator.device if generator is not None else "cpu").to(x0.device)  # (B,)
    noise = _randn(x0.shape, generator, x0.device, x0.dtype)
    x_t = schedule.q_sample(x0, t, noise)
    return (eps_fn(x_t, t.to(x0.dtype)) - noise).pow(2).mean()


def ddpm_step(schedule: NoiseSchedule, x_t: Tensor, eps: Tensor, t: int, noise: Tensor | None,
              variance: str = "beta") -> Tensor:
    """One ancestral step x_t -> x_{t-1} (Ho et al., 2020, Algorithm 2).

    mean = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t), plus sigma_t * noise with
    sigma_t^2 = beta_t (``"beta"``) or tilde beta_t (``"posterior"``); no noise at t = 1.
    """
    if variance not in ("beta", "posterior"):
        raise ValueError(f"unknown variance {variance!r}; expected 'beta' or 'posterior'")
    t = int(schedule.check_timesteps(t, low=1)[0])
    beta, alpha, ab = (float(v[t]) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
    mean = (x_t - beta / math.sqrt(1 - ab) * eps) / math.sqrt(alpha)
    if t == 1 or noise is None:
        return mean
    var = beta if variance == "beta" else float(schedule.posterior_variances[t])
    return mean + math.sqrt(var) * noise


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape: tuple[int, ...],
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                variance: str = "beta", return_trajectory: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
    """DDPM ancestral sampling: x_T ~ N(0, I), then T steps of :func:`ddpm_step`; T network evaluations.

    Returns x_0 (``shape``, unclipped); with ``return_trajectory`` also the list [x_T, ..., x_0].
    See: book/07_diffusion/diffusion_2d.ipynb.
    """
    device = device if device is not None else "cpu"
    x = _randn(shape, generator, device)
    trajectory = [x] if return_trajectory else None
    for t in range(schedule.num_steps, 0, -1):
        eps = eps_fn(x, _time(t, shape[0], device))
        noise = _randn(shape, generator, device) if t > 1 else None
        x = ddpm_step(schedule, x, eps, t, noise, variance)
        if return_trajectory:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def ddim_timesteps(schedule: NoiseSchedule, num_steps: int) -> list[int]:
    """``num_steps + 1`` evenly spaced integer times from T down to 0 (the DDIM sub-sequence)."""
    if int(num_steps) != num_steps or not 1 <= num_steps <= schedule.num_steps:
        raise ValueError(f"DDIM needs 1 <= num_steps <= T = {schedule.num_steps}, got {num_steps}")
    return torch.linspace(schedule.num_steps, 0, int(num_steps) + 1, dtype=torch.float64).round().long().tolist()


def ddim_step(schedule: NoiseSchedule, x_t: Tensor, eps: Tensor, t: int, t_prev: int, eta: float = 0.0,
              noise: Tensor | None = None) -> Tensor:
    """One DDIM step x_t -> x_{t_prev} (Song, Meng & Ermon, 2021, eq. 12), t_prev < t.

    x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps + sigma * noise, with
    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev). eta = 0 is deterministic;
    eta = 1 with t_prev = t - 1 is DDPM's step with variance tilde beta_t.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if not 0 <= t_prev < t <= schedule.num_steps:
        raise ValueError(f"need 0 <= t_prev < t <= T = {schedule.num_steps}, got t={t}, t_prev={t_prev}")
    ab, ab_prev = float(schedule.alpha_bars[t]), float(schedule.alpha_bars[t_prev])
    x0_hat = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    x_prev = math.sqrt(ab_prev) * x0_hat + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    if sigma > 0:
        if noise is None:
            raise ValueError("eta > 0 needs noise")
        x_prev = x_prev + sigma * noise
    return x_prev


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, schedule: NoiseSchedule, shape: tuple[int, ...], num_steps: int = 50,
                eta: float = 0.0, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """DDIM sampling with ``num_steps`` network evaluations on an evenly spaced sub-sequence of 1..T.

    eta = 0: the deterministic DDIM sampler (an ODE discretisation); eta = 1 with num_steps = T: DDPM.
    Returns x_0 (``shape``, unclipped). See: book/07_diffusion/diffusion_2d.ipynb.
    """
    device = device if device is not None else "cpu"
    times = ddim_timesteps(schedule, num_steps)
    x = _randn(shape, generator, device)
    for t, t_prev in zip(times[:-1], times[1:]):
        eps = eps_fn(x, _time(t, shape[0], device))
        noise = _randn(shape, generator, device) if eta > 0 and t_prev > 0 else None
        x = ddim_step(schedule, x, eps, t, t_prev, eta if t_prev > 0 else 0.0, noise)
    return x


def classifier_free_guidance(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    """Classifier-free guidance (Ho & Salimans, 2022): (1 + w) eps_cond - w eps_uncond.

    w = 0 is the conditional model; w > 0 pushes samples towards what the label adds.
    """
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(f"shapes differ: {tuple(eps_cond.shape)} and {tuple(eps_uncond.shape)}")
    return eps_cond + w * (eps_cond - eps_uncond)


def _gaussian_kl(mean_q: Tensor, var_q: Tensor, mean_p: Tensor, var_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q I) || N(mean_p, var_p I)) per example, summed over dimensions: (B,)."""
    dims = mean_q[0].numel()
    mean_term = (mean_q - mean_p).pow(2).flatten(1).sum(1) / var_p.flatten()
    return 0.5 * (dims * (var_q / var_p + (var_p / var_q).log() - 1).flatten() + mean_term)


def diffusion_vlb(eps_fn: EpsFn, schedule: NoiseSchedule, x0: Tensor, variance: str = "beta",
                  num_terms: int | None = None, generator: torch.Generator | None = None,
                  exact_terms: int = 20) -> Tensor:
    """The variational bound -log p(x_0) <= L (Ho et al., 2020, eq. 5) per example, in nats: (B,).

    L = KL(q(x_T|x_0) || N(0, I)) + sum_{t=2}^T E_q KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))
        + E_q[-log p(x_0|x_1)],
    with the reverse model p(x_{t-1}|x_t) = N(mean of :func:`ddpm_step`, sigma_t^2 I) and a
    *Gaussian* decoder p(x_0|x_1) = N(that mean at t = 1, beta_1 I) for continuous (e.g. dequantized)
    data, in place of Ho et al.'s discretised decoder. Each term uses one draw of x_t; with
    ``num_terms = k`` the first ``exact_terms`` terms (t = 1, 2, ...) are always included and k
    random t from the rest estimate their sum as (T - exact_terms) * mean (unbiased). The small-t
    terms must not be sampled: on MNIST the t = 1 decoder term is about -2,600 nats and the next
    ones +200, +100, ..., so a subset that draws t = 1 for a few digits moves the mean by bits.
    The bound is exact when the reverse model is the true reverse process: for data N(0, I) and
    eps(x_t, t) = sqrt(1 - alpha_bar_t) x_t with variance ``"beta"``, L = -log N(x_0; 0, I).
    See: book/07_diffusion/diffusion_2d.ipynb.
    """
    if variance not in ("beta", "posterior"):
        raise ValueError(f"unknown variance {variance!r}; expected 'beta' or 'posterior'")
    batch, dims, T = len(x0), x0[0].numel(), schedule.num_steps
    input_dtype = x0.dtype
    x0 = x0.double() if x0.device.type != "mps" else x0
    ab_T = float(schedule.alpha_bars[T])
    prior = 0.5 * (dims * (1 - ab_T - math.log(1 - ab_T) - 1) + ab_T * x0.pow(2).flatten(1).sum(1))
    if num_terms is None:
        times = [torch.full((batch,), t, dtype=torch.long) for t in range(1, T + 1)]
        scales = [1.0] * T
    else:
        if int(num_terms) != num_terms or num_terms < 1:
            raise ValueError(f"num_terms must be a positive integer or None, got {num_terms}")
        if int(exact_terms) != exact_terms or exact_terms < 0:
            raise ValueError(f"exact_terms must be an integer >= 0, got {exact_terms}")
        exact = min(int(exact_terms), T)
        times = [torch.full((batch,), t, dtype=torch.long) for t in range(1, exact + 1)]
        scales = [1.0] * exact
        if exact < T:
            draw = torch.randint(exact + 1, T + 1, (int(num_terms), batch), generator=generator,
                                 device=generator.device if generator is not None else "cpu")
            times += list(draw.cpu())
            scales += [(T - exact) / num_terms] * int(num_terms)
    total = prior
    for t, scale in zip(times, scales):
        t = t.to(x0.device)
        noise = _randn(x0.shape, generator, x0.device, x0.dtype)
        x_t = schedule.q_sample(x0, t, noise)
        eps = eps_fn(x_t.to(input_dtype), t.to(input_dtype)).to(x0.dtype)
        beta, alpha, ab = (schedule._at(v, t, x0) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
        model_mean = (x_t - beta / (1 - ab).sqrt() * eps) / alpha.sqrt()
        model_var = beta if variance == "beta" else schedule._at(schedule.posterior_variances, t, x0)
        first = t == 1
        model_var = torch.where(first.reshape(model_var.shape), beta, model_var)
        post_mean, post_var = schedule.posterior(x_t, x0, t.clamp(min=1))
        kl = _gaussian_kl(post_mean, post_var.clamp(min=1e-300), model_mean, model_var)
        decoder = 0.5 * ((x0 - model_mean).pow(2).flatten(1).sum(1) / model_var.flatten()
                         + dims * (model_var.flatten().log() + math.log(2 * math.pi)))
        total = total + scale * torch.where(first, decoder, kl)
    return total


def vlb_bits_per_dim(eps_fn: EpsFn, schedule: NoiseSchedule, x0: Tensor, bins: int | None = 256,
                     **kwargs) -> float:
    """The mean of :func:`diffusion_vlb` in bits per dimension.

    With ``bins`` (default 256) x0 holds dequantized pixels mapped to [-1, 1] (x = 2 y / bins - 1 for
    y = integer + uniform noise in [0, bins)); the bound is converted to the density of y, so that
    a uniform model scores log2(bins) = 8 bits/dim, comparable with published bits/dim.
    ``bins=None`` reports the bound on x itself. kwargs go to :func:`diffusion_vlb`.
    """
    nats = diffusion_vlb(eps_fn, schedule, x0, **kwargs).mean()
    dims = x0[0].numel()
    if bins is not None:
        nats = nats + dims * math.log(bins / 2)  # log |dx/dy| = log(2 / bins) per dimension
    return float(nats / (dims * math.log(2)))


# --- Gaussian mixtures: the exact score, denoiser and velocity of noised mixture data ---

def mixture_from_toy(toy) -> GaussianMixture:
    """A 2-D toy mixture (``genlab.data.ring8()``, ``grid25()``) as a float64 GaussianMixture."""
    if getattr(toy, "modes", None) is None:
        raise ValueError(f"{getattr(toy, 'name', toy)!r} is not a Gaussian mixture with known modes")
    k, d = toy.modes.shape
    return GaussianMixture(torch.full((k,), 1.0 / k, dtype=torch.float64), toy.modes.double(),
                           torch.full((k, d), toy.sigma**2, dtype=torch.float64), "diag")


def _full_covariances(mixture: GaussianMixture) -> Tensor:
    covs = mixture.covariances
    return torch.diag_embed(covs) if mixture.covariance == "diag" else covs  # (K, D, D)


def noised_mixture(mixture: GaussianMixture, scale: float, noise_var: float) -> GaussianMixture:
    """The law of scale * x + sqrt(noise_var) * z, x ~ mixture, z ~ N(0, I): another Gaussian mixture.

    Diffusion at step t: scale = sqrt(alpha_bar_t), noise_var = 1 - alpha_bar_t.
    Flow matching at time s: scale = s, noise_var = (1 - s)^2.
    """
    if mixture.covariance == "diag":
        covs = scale**2 * mixture.covariances + noise_var
    else:
        covs = scale**2 * mixture.covariances + noise_var * torch.eye(mixture.dim, dtype=torch.float64)
    return GaussianMixture(mixture.weights, scale * mixture.means, covs, mixture.covariance)


def _component_terms(mixture: GaussianMixture, x: Tensor, scale: float | Tensor, noise_var: float | Tensor):
    """Responsibilities (N, K) and C_k^{-1}(x - scale mu_k) (N, K, D) under the noised mixture.

    scale and noise_var are floats or (N,) tensors (one time per point); C_k = scale^2 Sigma_k + noise_var I.
    """
    x = x.detach().to("cpu", torch.float64)  # (N, D)
    scale = torch.as_tensor(scale, dtype=torch.float64).reshape(-1, 1, 1, 1)  # (N or 1, 1, 1, 1)
    noise_var = torch.as_tensor(noise_var, dtype=torch.float64).reshape(-1, 1, 1, 1)
    if bool((scale == scale.flatten()[0]).all()) and bool((noise_var == noise_var.flatten()[0]).all()):
        scale, noise_var = scale[:1], noise_var[:1]  # one time for the batch: one set of K covariances
    eye = torch.eye(mixture.dim, dtype=torch.float64)
    covs = scale**2 * _full_covariances(mixture)[None] + noise_var * eye  # (N or 1, K, D, D)
    cholesky = torch.linalg.cholesky(covs)
    diff = (x[:, None, :] - scale[..., 0] * mixture.means[None]).unsqueeze(-1)  # (N, K, D, 1)
    white = torch.linalg.solve_triangular(cholesky, diff, upper=False)  # L^{-1}(x - m): (N, K, D, 1)
    whitened = torch.linalg.solve_triangular(cholesky.transpose(-1, -2), white, upper=True).squeeze(-1)
    log_det = 2 * cholesky.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (N or 1, K)
    log_comp = mixture.weights.log() - 0.5 * (mixture.dim * math.log(2 * math.pi) + log_det
                                              + white.squeeze(-1).pow(2).sum(-1))  # (N, K)
    return torch.softmax(log_comp, dim=1), whitened


def mixture_score(mixture: GaussianMixture, x: Tensor, alpha_bar: float | Tensor = 1.0) -> Tensor:
    """grad_x log q_t(x) for mixture data noised to alpha_bar: -sum_k r_k(x) C_k^{-1}(x - sqrt(ab) mu_k).

    C_k = alpha_bar Sigma_k + (1 - alpha_bar) I; alpha_bar is a float or one value per point (N,).
    Returns float64 (N, D). See: book/07_diffusion/diffusion_2d.ipynb.
    """
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
    resp, whitened = _component_terms(mixture, x, alpha_bar.sqrt(), 1 - alpha_bar)
    return -(resp.unsqueeze(-1) * whitened).sum(1)


def mixture_denoiser(mixture: GaussianMixture, schedule: NoiseSchedule | None = None,
                     kind: str = "eps") -> Callable[[Tensor, Tensor], Tensor]:
    """The exact (Bayes-optimal) network for mixture data, as a plain function for the samplers.

    ``kind="eps"``: eps(x_t, t) = E[eps | x_t] = -sqrt(1 - alpha_bar_t) score (needs ``schedule``).
    ``kind="velocity"``: v(x_s, s) = E[x_1 - x_0 | x_s] for the straight path
    x_s = (1 - s) x_0 + s x_1, x_0 ~ N(0, I) noise, x_1 ~ mixture (s a float tensor in [0, 1]).
    Inputs and outputs keep the caller's dtype and device; t and s may differ between examples.
    """
    if kind not in ("eps", "velocity"):
        raise ValueError(f"unknown kind {kind!r}; expected 'eps' or 'velocity'")
    if kind == "eps" and schedule is None:
        raise ValueError("kind='eps' needs the noise schedule")

    def eps_fn(x: Tensor, t: Tensor) -> Tensor:
        steps = schedule.check_timesteps(t.reshape(-1).cpu(), len(x), low=1)
        ab = schedule.alpha_bars.cpu()[steps]  # (N,)
        score = mixture_score(mixture, x, ab)
        return (-(1 - ab).sqrt()[:, None] * score).to(x.dtype).to(x.device)

    def velocity_fn(x: Tensor, s: Tensor) -> Tensor:
        s = s.detach().to("cpu", torch.float64).reshape(-1).expand(len(x))  # (N,)
        resp, whitened = _component_terms(mixture, x, s, (1 - s) ** 2)  # whitened: C_k^{-1}(x - s mu_k)
        sigma_white = (_full_covariances(mixture)[None] @ whitened.unsqueeze(-1)).squeeze(-1)  # (N, K, D)
        data_mean = mixture.means[None] + s[:, None, None] * sigma_white  # E[x_1 | x_s, k]
        noise_mean = (1 - s)[:, None, None] * whitened  # E[x_0 | x_s, k]
        v = (resp.unsqueeze(-1) * (data_mean - noise_mean)).sum(1)
        return v.to(x.dtype).to(x.device)

    return eps_fn if kind == "eps" else velocity_fn
