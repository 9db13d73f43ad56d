"""Two-player games and small GAN experiments: the dynamics behind Part 2's last three chapters.

* :func:`gradient_play` runs gradient descent-ascent on ``min_x max_y f(x, y)`` (default the
  bilinear game ``f = x * y``) with simultaneous, alternating or extragradient updates;
  :func:`update_matrix` is the same update written as a 2x2 matrix, whose eigenvalues say
  whether the iterates spiral out, orbit or converge.
* :func:`wasserstein_1d` is the exact Wasserstein-1 distance between two 1-D samples and
  :func:`fit_critic` trains a critic (e.g. ``genlab.gan_theory.Discriminator1d``) to estimate it
  through Kantorovich-Rubinstein duality.
* :class:`ToyGANConfig`, :func:`train_toy_gan`, :func:`compare_toy_gans` and
  :func:`coverage_summary` / :func:`coverage_table`: the multi-seed mode-coverage
  experiments on the 2-D ring and grid (``genlab.metrics.mode_coverage``);
  :func:`plot_toy_runs` and :func:`plot_toy_snapshots` draw their samples.

See: book/02_gan_math/training_dynamics.ipynb, book/02_gan_math/mode_collapse.ipynb,
book/02_gan_math/wasserstein.ipynb.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from genlab.data.toy2d import ToyDistribution, toy_distribution
from genlab.losses import discriminator_loss, gradient_penalty
from genlab.metrics import mode_coverage
from genlab.models.gan import ToyDiscriminator, ToyGenerator
from genlab.runtime import progress_bar, seed_everything

__all__ = [
    "GAME_METHODS", "CriticFit", "ToyGANConfig", "ToyGANRun",
    "bilinear", "compare_toy_gans", "coverage_summary", "coverage_table", "fit_critic", "gradient_play",
    "plot_toy_runs", "plot_toy_snapshots", "train_toy_gan", "update_matrix", "wasserstein_1d",
]

GAME_METHODS = ("simultaneous", "alternating", "extragradient")


# ----------------------------------------------------------------------------- gradient play


def bilinear(x: Tensor, y: Tensor) -> Tensor:
    """The bilinear game ``f(x, y) = x * y``: its only equilibrium is ``(0, 0)``."""
    return x * y


def _check_method(method: str) -> None:
    if method not in GAME_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(GAME_METHODS)}")


def _gradients(value_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(df/dx, df/dy) at (x, y), by autograd."""
    x, y = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
    value = value_fn(x, y)
    if value.numel() != 1:
        raise ValueError(f"value_fn must return a scalar, got shape {tuple(value.shape)}")
    grad_x, grad_y = torch.autograd.grad(value, (x, y))
    return grad_x.detach(), grad_y.detach()


def gradient_play(x0: float, y0: float, lr: float, num_steps: int, method: str = "simultaneous",
                  value_fn: Callable[[Tensor, Tensor], Tensor] = bilinear) -> Tensor:
    """Gradient descent for ``x`` (the minimiser) and ascent for ``y`` (the maximiser); (num_steps + 1, 2).

    Row ``t`` is ``(x_t, y_t)`` (row 0 the start), in float64. Methods:

    * ``"simultaneous"``: both players use the old point,
      ``x' = x - lr df/dx(x, y)``, ``y' = y + lr df/dy(x, y)``;
    * ``"alternating"``: ``x`` moves first and ``y`` answers the new ``x``,
      ``y' = y + lr df/dy(x', y)`` (what GAN training loops do: D step, then G step);
    * ``"extragradient"`` (Korpelevich, 1976): a look-ahead step to ``(x_h, y_h)``, then the
      real step from ``(x, y)`` with the gradients taken at ``(x_h, y_h)``.

    On ``f = x y`` the simultaneous iterates grow by exactly ``sqrt(1 + lr^2)`` per step, the
    alternating ones stay on the ellipse ``x^2 + y^2 - lr x y = const`` and the extragradient
    ones shrink by ``sqrt(1 - lr^2 + lr^4)`` (see :func:`update_matrix`).
    See: book/02_gan_math/training_dynamics.ipynb.
    """
    _check_method(method)
    if lr <= 0 or not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"need lr > 0 and an int num_steps >= 0, got lr={lr}, num_steps={num_steps}")
    x, y = torch.tensor(float(x0), dtype=torch.float64), torch.tensor(float(y0), dtype=torch.float64)
    path = [torch.stack([x, y])]
    for _ in range(num_steps):
        if method == "simultaneous":
            grad_x, grad_y = _gradients(value_fn, x, y)
            x, y = x - lr * grad_x, y + lr * grad_y
        elif method == "alternating":
            grad_x, _ = _gradients(value_fn, x, y)
            x = x - lr * grad_x
            _, grad_y = _gradients(value_fn, x, y)
            y = y + lr * grad_y
        else:  # extragradient
            grad_x, grad_y = _gradients(value_fn, x, y)
            x_half, y_half = x - lr * grad_x, y + lr * grad_y
            grad_x, grad_y = _gradients(value_fn, x_half, y_half)
            x, y = x - lr * grad_x, y + lr * grad_y
        path.append(torch.stack([x, y]))
    return torch.stack(path)  # (num_steps + 1, 2)


def update_matrix(lr: float, method: str = "simultaneous") -> Tensor:
    """The linear map ``(x, y) -> (x', y')`` of one step of :func:`gradient_play` on ``f = x y``; (2, 2).

    * simultaneous: ``[[1, -lr], [lr, 1]]`` = ``sqrt(1 + lr^2)`` times a rotation;
    * alternating: ``[[1, -lr], [lr, 1 - lr^2]]``, determinant 1 (area-preserving), eigenvalues
      on the unit circle for ``lr <= 2``;
    * extragradient: ``[[1 - lr^2, -lr], [lr, 1 - lr^2]]``, modulus ``sqrt(1 - lr^2 + lr^4) < 1``
      for ``0 < lr < 1``.

    The largest eigenvalue modulus is the growth factor per step.
    See: book/02_gan_math/training_dynamics.ipynb.
    """
    _check_method(method)
    if method == "simultaneous":
        rows = [[1.0, -lr], [lr, 1.0]]
    elif method == "alternating":
        rows = [[1.0, -lr], [lr, 1.0 - lr**2]]
    else:
        rows = [[1.0 - lr**2, -lr], [lr, 1.0 - lr**2]]
    return torch.tensor(rows, dtype=torch.float64)


# ----------------------------------------------------------------------------- Wasserstein-1 in 1-D


def _as_1d(samples: Tensor, name: str) -> Tensor:
    values = torch.as_tensor(samples).detach().to("cpu", torch.float64)
    if values.dim() == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.dim() != 1 or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty (N,) or (N, 1) tensor of 1-D samples, got "
                         f"{tuple(values.shape)}")
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return values


def wasserstein_1d(samples_p: Tensor, samples_q: Tensor) -> float:
    """Exact Wasserstein-1 distance between two 1-D empirical distributions.

    ``W1 = integral |F_p(t) - F_q(t)| dt`` with ``F`` the empirical CDFs, evaluated exactly
    between consecutive points of the merged sample. For equal sizes it equals the mean
    absolute difference of the sorted samples, ``mean_i |p_(i) - q_(i)|`` (the optimal
    transport plan matches the i-th smallest with the i-th smallest).
    Inputs: (N,) or (N, 1) and (M,) or (M, 1). See: book/02_gan_math/wasserstein.ipynb.
    """
    p, q = _as_1d(samples_p, "samples_p"), _as_1d(samples_q, "samples_q")
    points = torch.sort(torch.cat([p, q])).values  # (N + M,)
    p_sorted, q_sorted = torch.sort(p).values, torch.sort(q).values
    cdf_p = torch.searchsorted(p_sorted, points[:-1], right=True).double() / len(p)  # F_p on each gap
    cdf_q = torch.searchsorted(q_sorted, points[:-1], right=True).double() / len(q)
    return float(((cdf_p - cdf_q).abs() * points.diff()).sum())


@dataclass
class CriticFit:
    """What :func:`fit_critic` returns: the critic's objective ``E_p f - E_q f`` after each step
    (on that step's minibatches) and, at the end, on the full samples (``final``)."""

    estimates: list[float]
    final: float


def fit_critic(critic: nn.Module, samples_p: Tensor, samples_q: Tensor, num_steps: int,
               constraint: str = "gradient_penalty", lr: float = 1e-3, gp_weight: float = 10.0,
               clip_value: float = 0.01, batch_size: int = 256, generator: torch.Generator | None = None,
               optimizer: str = "adam") -> CriticFit:
    """Train ``critic`` to maximise ``E_p f - E_q f`` (the Kantorovich-Rubinstein dual of W1).

    ``constraint`` keeps ``f`` (about) 1-Lipschitz:

    * ``"gradient_penalty"``: add ``gp_weight * E (||grad f(x_hat)|| - 1)^2`` (WGAN-GP,
      :func:`genlab.losses.gradient_penalty`);
    * ``"clip"``: clamp every weight to ``[-clip_value, clip_value]`` after each step
      (the original WGAN); the critic is then K-Lipschitz for some unknown K;
    * ``"none"``: no constraint, the supremum is infinite and the objective grows without bound.

    The loss is ``genlab.losses.discriminator_loss(f(p), f(q), "wasserstein")``; minibatches of
    ``batch_size`` are drawn from both samples with ``generator``.
    See: book/02_gan_math/wasserstein.ipynb.
    """
    if constraint not in ("gradient_penalty", "clip", "none"):
        raise ValueError(f"unknown constraint {constraint!r}; expected 'gradient_penalty', 'clip' or 'none'")
    if optimizer not in ("adam", "rmsprop"):
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'adam' or 'rmsprop'")
    if num_steps < 0 or batch_size < 1:
        raise ValueError(f"need num_steps >= 0 and batch_size >= 1, got {num_steps} and {batch_size}")
    p, q = samples_p.detach().float(), samples_q.detach().float()
    if p.dim() == 1:
        p, q = p[:, None], q[:, None]
    if p.shape[1:] != q.shape[1:]:
        raise ValueError(f"samples_p {tuple(p.shape)} and samples_q {tuple(q.shape)} differ in shape")
    opt = (torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9)) if optimizer == "adam"
           else torch.optim.RMSprop(critic.parameters(), lr=lr))
    estimates = []
    for _ in range(num_steps):
        real = p[torch.randint(len(p), (batch_size,), generator=generator)]
        fake = q[torch.randint(len(q), (batch_size,), generator=generator)]
        real_scores, fake_scores = critic(real), critic(fake)  # (B,) each
        loss = discriminator_loss(real_scores, fake_scores, kind="wasserstein")  # E_q f - E_p f
        total = loss
        if constraint == "gradient_penalty":
            total = loss + gp_weight * gradient_penalty(critic, real, fake, generator=generator)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if constraint == "clip":
            with torch.no_grad():
                for parameter in critic.parameters():
                    parameter.clamp_(-clip_value, clip_value)
        estimates.append(-loss.item())
    with torch.no_grad():
        final = (critic(p).mean() - critic(q).mean()).item()
    return CriticFit(estimates, final)


# ----------------------------------------------------------------------------- toy GAN experiments


@dataclass(frozen=True)
class ToyGANConfig:
    """One GAN variant for the 2-D toys: the models' sizes and :class:`genlab.training.GANTask` options.

    ``pack`` > 1 is PacGAN (Lin et al., 2018); ``minibatch_features`` > 0 adds minibatch
    discrimination (Salimans et al., 2016); ``loss="wasserstein"`` with ``gp_weight`` (WGAN-GP)
    or ``clip_weights`` (WGAN); ``loss="hinge"`` the hinge GAN.
    See: book/02_gan_math/mode_collapse.ipynb.
    """

    name: str
    loss: str = "non_saturating"
    pack: int = 1
    minibatch_features: int = 0
    gp_weight: float = 0.0
    clip_weights: float | None = None
    n_critic: int = 1
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    optimizer: str = "adam"
    hidden: int = 64
    depth: int = 3
    latent_dim: int = 2

    def build(self) -> tuple[ToyGenerator, ToyDiscriminator]:
        """A fresh generator and discriminator (initialised from the global RNG)."""
        generator = ToyGenerator(latent_dim=self.latent_dim, hidden=self.hidden, depth=self.depth)
        discriminator = ToyDiscriminator(hidden=self.hidden, depth=self.depth, pack=self.pack,
                                         minibatch_features=self.minibatch_features)
        return generator, discriminator


@dataclass
class ToyGANRun:
    """One trained toy GAN: its config, toy, seed, steps, ``coverage`` (``genlab.metrics.mode_coverage``),
    the evaluation ``samples`` (N, 2), the training ``seconds`` and the ``history`` of losses."""

    config: ToyGANConfig
    toy: str
    seed: int
    steps: int
    coverage: dict
    samples: Tensor
    seconds: float
    history: object = field(repr=False, default=None)


def _resolve_toy(toy: ToyDistribution | str) -> ToyDistribution:
    return toy_distribution(toy) if isinstance(toy, str) else toy


def train_toy_gan(toy: ToyDistribution | str, config: ToyGANConfig, steps: int, seed: int = 0,
                  batch_size: int = 128, num_data: int = 20_000, num_eval: int = 2_500,
                  callbacks: Iterable[Callable] = (), progress: bool = False) -> ToyGANRun:
    """Train one toy GAN with :class:`genlab.training.Trainer` and measure its mode coverage.

    ``seed`` fixes everything: the ``num_data`` training points, the initial weights, the
    batches and noise (``Trainer(seed=seed)``), and the ``num_eval`` evaluation samples
    (2,500 as in the PacGAN protocol). Runs in one CPU thread, so a result does not depend
    on the machine's thread count or on running in a worker process.
    See: book/02_gan_math/mode_collapse.ipynb.
    """
    from genlab.training import GANTask, Trainer  # avoid an import cycle at module load

    toy = _resolve_toy(toy)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = toy.sample(num_data, generator=torch.Generator().manual_seed(10_000 + seed))  # (num_data, 2)
        seed_everything(seed)
        generator, discriminator = config.build()
        task = GANTask(generator, discriminator, loss=config.loss, lr=config.lr, betas=config.betas,
                       n_critic=config.n_critic, gp_weight=config.gp_weight, clip_weights=config.clip_weights,
                       optimizer=config.optimizer)
        trainer = Trainer(task, data, batch_size=batch_size * config.n_critic, device="cpu", seed=seed,
                          progress=progress)
        start = time.perf_counter()
        history = trainer.fit(steps=steps, callbacks=callbacks, log_every=max(1, steps // 20))
        seconds = time.perf_counter() - start
        samples = task.sample(num_eval, generator=torch.Generator().manual_seed(20_000 + seed))  # (num_eval, 2)
    finally:
        torch.set_num_threads(threads)
    return ToyGANRun(config, toy.name, seed, steps, mode_coverage(samples, toy), samples, seconds, history)


def _train_job(job: tuple) -> ToyGANRun:
    toy, config, steps, seed, kwargs = job
    return train_toy_gan(toy, config, steps, seed, **kwargs)


def compare_toy_gans(toys: Sequence[ToyDistribution | str], configs: Sequence[ToyGANConfig],
                     seeds: Sequence[int], steps: int | dict[str, int], workers: int = 1,
                     progress: bool | None = None, **kwargs) -> list[ToyGANRun]:
    """Train every (toy, config, seed) combination with :func:`train_toy_gan`; a list of runs.

    ``steps`` may be a dict ``{config.name: steps}`` (costlier variants can get fewer steps).
    ``workers > 1`` trains in that many processes (each run uses one thread, so results are
    identical to ``workers=1``). Extra ``kwargs`` go to :func:`train_toy_gan`. ``progress=None``:
    a progress bar in Jupyter and terminals, none in logs (True: always; False: never).
    See: book/02_gan_math/mode_collapse.ipynb.
    """
    names = [config.name for config in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"config names must be unique, got {names}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")

    def steps_for(config: ToyGANConfig) -> int:
        if isinstance(steps, dict):
            if config.name not in steps:
                raise ValueError(f"steps has no entry for config {config.name!r}")
            return steps[config.name]
        return steps

    jobs = [(toy if isinstance(toy, str) else _resolve_toy(toy), config, steps_for(config), seed, kwargs)
            for toy in toys for config in configs for seed in seeds]
    bar = progress_bar(len(jobs), progress, "toy GANs")
    try:
        if workers == 1:
            runs = []
            for job in jobs:
                runs.append(_train_job(job))
                bar.update(1)
            return runs
        context = multiprocessing.get_context("spawn")  # fresh interpreters: safe with torch's thread pools
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_train_job, job) for job in jobs]
            runs = []
            for future in futures:
                runs.append(future.result())
                bar.update(1)
            return runs
    finally:
        bar.close()


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the non-NaN values (std NaN with fewer than two)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))


def coverage_summary(runs: Sequence[ToyGANRun]) -> list[dict]:
    """Mean and standard deviation over seeds for each (toy, config): one dict per group.

    Keys: ``toy``, ``variant``, ``seeds``, ``num_modes``, ``modes`` / ``modes_std``,
    ``high_quality`` / ``high_quality_std`` (percent), ``reverse_kl`` / ``reverse_kl_std``
    (runs with no high-quality sample have no KL and are left out of its mean; a standard deviation
    from fewer than two values is NaN and prints without ``±``), ``seconds`` (mean).
    Groups keep the order in which they first appear. See: book/02_gan_math/mode_collapse.ipynb.
    """
    groups: dict[tuple[str, str], list[ToyGANRun]] = {}
    for run in runs:
        groups.setdefault((run.toy, run.config.name), []).append(run)
    rows = []
    for (toy, name), members in groups.items():
        modes = _mean_std([float(r.coverage["modes_covered"]) for r in members])
        quality = _mean_std([100.0 * r.coverage["high_quality_fraction"] for r in members])
        kl = _mean_std([float(r.coverage["reverse_kl"]) for r in members])
        rows.append({"toy": toy, "variant": name, "seeds": len(members),
                     "num_modes": members[0].coverage["num_modes"],
                     "modes": modes[0], "modes_std": modes[1], "high_quality": quality[0],
                     "high_quality_std": quality[1], "reverse_kl": kl[0], "reverse_kl_std": kl[1],
                     "seconds": sum(r.seconds for r in members) / len(members)})
    return rows


def coverage_table(summary: Sequence[dict], reference: Sequence[dict] = (), fmt: str = "markdown") -> str:
    """A table of :func:`coverage_summary` rows (``mean ± std`` over seeds), as Markdown or HTML.

    ``reference`` rows (e.g. published numbers) are dicts with ``toy``, ``variant`` and any of
    ``modes``, ``num_modes``, ``high_quality``, ``reverse_kl`` (missing values print as a dash);
    they come after the measured rows. In a notebook, ``IPython.display.HTML(coverage_table(...,
    fmt="html"))`` renders everywhere (Jupyter Book renders Markdown output without tables).
    See: book/02_gan_math/mode_collapse.ipynb.
    """
    if fmt not in ("markdown", "html"):
        raise ValueError(f"fmt must be 'markdown' or 'html', got {fmt!r}")

    def cell(row: dict, key: str, digits: int) -> str:
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        spread = row.get(f"{key}_std")
        text = f"{value:.{digits}f}"
        return text if spread is None or math.isnan(spread) else f"{text} ± {spread:.{digits}f}"

    header = ["toy", "variant", "seeds", "modes covered", "high quality (%)", "reverse KL"]
    body = []
    for row in list(summary) + list(reference):
        modes = cell(row, "modes", 1)
        if row.get("num_modes") is not None and modes != "-":
            modes = f"{modes} / {row['num_modes']}"
        body.append([str(row["toy"]), str(row["variant"]), str(row.get("seeds", "-")), modes,
                     cell(row, "high_quality", 1), cell(row, "reverse_kl", 2)])
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    escape = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

    def html(text: str) -> str:
        return "".join(escape.get(ch, ch) for ch in text)

    head = "".join(f"<th>{html(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html(c)}</td>" for c in cells) + "</tr>" for cells in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


# ----------------------------------------------------------------------------- figures

_HALF_WIDTH = {"ring8": 1.6, "grid25": 5.5}  # plotted square for each toy


def _draw_toy_panel(ax, points: Tensor, toy: ToyDistribution, title: str, legend: bool) -> None:
    """Real points (blue), generated points (orange) and mode centres (crosses) on fixed axes."""
    from genlab.plots import plot_2d_samples

    real = toy.sample(500, generator=torch.Generator().manual_seed(7))  # the same background everywhere
    plot_2d_samples(real, fake=points, modes=toy.modes, ax=ax, title=title)
    if not legend and ax.get_legend() is not None:
        ax.get_legend().remove()
    elif legend:
        ax.legend(fontsize=6, loc="center" if toy.name == "ring8" else "upper right", markerscale=1.5)
    if toy.modes is not None:
        half = _HALF_WIDTH.get(toy.name, float(toy.modes.abs().max()) + 1.0)
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.title.set_fontsize(8)


def plot_toy_runs(runs: Sequence[ToyGANRun], seed: int | None = None, max_points: int = 1_000):
    """Final samples of one seed: a row per toy, a column per variant, titled with the coverage.

    ``seed`` defaults to the first run's seed. Returns the matplotlib figure.
    See: book/02_gan_math/mode_collapse.ipynb.
    """
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("no runs to plot")
    seed = runs[0].seed if seed is None else seed
    chosen = {(run.toy, run.config.name): run for run in runs if run.seed == seed}
    if not chosen:
        raise ValueError(f"no run with seed {seed}")
    toys = list(dict.fromkeys(run.toy for run in runs))
    names = list(dict.fromkeys(run.config.name for run in runs))
    fig, axes = plt.subplots(len(toys), len(names), figsize=(10, 3.0 * len(toys) + 0.4), squeeze=False)
    for row, toy_name in enumerate(toys):
        toy = toy_distribution(toy_name)
        for col, name in enumerate(names):
            ax = axes[row, col]
            run = chosen.get((toy_name, name))
            if run is None:
                ax.set_axis_off()
                continue
            result = run.coverage
            title = (f"{name}\n{result['modes_covered']}/{result['num_modes']} modes, "
                     f"{100 * result['high_quality_fraction']:.0f}% HQ")
            _draw_toy_panel(ax, run.samples[:max_points], toy, title, legend=(row, col) == (0, 0))
    fig.suptitle(f"Final samples, seed {seed}")
    fig.tight_layout()
    return fig


def plot_toy_snapshots(run: ToyGANRun, max_panels: int = 6):
    """The samples a :class:`genlab.training.SampleGrid` callback stored during ``run``, one panel each.

    Each panel is titled with its step and the modes covered at that step.
    See: book/02_gan_math/mode_collapse.ipynb.
    """
    import matplotlib.pyplot as plt

    snapshots = list(getattr(run.history, "samples", []))[:max_panels]
    if not snapshots:
        raise ValueError("this run has no snapshots: train it with callbacks=[SampleGrid(every=...)]")
    toy = toy_distribution(run.toy)
    fig, axes = plt.subplots(1, len(snapshots), figsize=(10, 10 / max(len(snapshots), 3) + 0.6), squeeze=False)
    for index, (ax, (step, points)) in enumerate(zip(axes[0], snapshots)):
        result = mode_coverage(points, toy)
        _draw_toy_panel(ax, points, toy, f"step {step}: {result['modes_covered']}/{result['num_modes']} modes",
                        legend=index == 0)
    fig.suptitle(f"{run.config.name} on {run.toy}, seed {run.seed}: samples during training")
    fig.tight_layout()
    return fig
