"""Figures for the book: image grids, training curves, 2-D samples and densities, latent maps.

Every function draws with matplotlib only, **returns the Figure** and never calls
``plt.show()`` (a notebook displays the returned figure; a script can ``savefig`` it).
Functions that draw a single panel accept ``ax=`` to draw into an existing axis.
Images are ``(B, 1, 28, 28)`` tensors; pass ``value_range=(-1, 1)`` for tanh generator
output, the default ``(0, 1)`` for VAE output and data.

See: book/04_practice/genlab_tour.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from torch import Tensor

from genlab.data.images import to_unit_range

__all__ = [
    "COLUMN_INCHES", "fit_column", "image_grid", "plot_2d_samples", "plot_density_2d", "plot_history",
    "plot_interpolation", "plot_label_histogram", "plot_latent_map", "plot_samples_over_time", "show_images",
]

CELL_INCHES = 0.55  # size of one 28x28 digit on screen: small figures keep notebooks small
MAX_WIDTH_INCHES = 9.0
# The book's text column is 688 px wide (368 px on a phone); figures are drawn at 100 dpi, so a
# figure at most 7 inches wide is shown (almost) unscaled and 7-point text is >= 9 px on screen.
COLUMN_INCHES = 7.0
MIN_FONT_POINTS = 7.0


# ----------------------------------------------------------------------------- helpers


def _as_image_batch(images: Tensor | np.ndarray, name: str = "images") -> Tensor:
    """(B, 1, H, W) / (B, H, W) / (H, W) -> float tensor (B, H, W) on the CPU, checked."""
    x = torch.as_tensor(images).detach().cpu().float()
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]  # (B, H, W)
    elif x.dim() == 2 and x.shape[1] != 784:  # (B, 784) is a flattened batch: refuse it below
        x = x.unsqueeze(0)  # one image (H, W) -> (1, H, W)
    elif x.dim() != 3:
        raise ValueError(f"expected {name} of shape (B, 1, H, W) or (B, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (batch size 0)")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contain NaN values (did training diverge?)")
    return x


def _as_points(points: Tensor | np.ndarray, name: str) -> np.ndarray:
    """Any (N, 2) array-like -> float64 NumPy array, checked."""
    array = torch.as_tensor(points).detach().cpu().double().numpy()
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"expected {name} of shape (N, 2), got {tuple(array.shape)}")
    if np.isnan(array).any():
        raise ValueError(f"{name} contain NaN values")
    return array


def _new_axis(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def fit_column(
    fig: Figure,
    ncols: int | None = None,
    width: float = COLUMN_INCHES,
    panel_height: float | None = None,
    transpose: bool = False,
    min_fontsize: float = MIN_FONT_POINTS,
) -> Figure:
    """Lay a multi-panel figure out for the book's column: legible at 688 px (and on a phone).

    A 10-inch figure with a row of small panels is shrunk to the column, and its 6-point
    titles end up 4-6 px tall. This moves the figure's grid of panels into ``ncols`` columns
    (row by row; ``transpose=True`` first swaps rows and columns, so a row per toy and a column
    per variant becomes a row per variant), sets the width to ``width`` inches, the height to
    ``panel_height`` inches per row (default: the panels keep their aspect ratio), raises every
    text smaller than ``min_fontsize`` points to it, and redoes the layout. Returns ``fig``.
    See: book/02_gan_math/mode_collapse.ipynb.
    """
    grid_axes = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    if not grid_axes:
        raise ValueError("fit_column needs a figure made with plt.subplots (its panels have no grid)")
    if ncols is not None and ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    if width <= 0 or (panel_height is not None and panel_height <= 0) or min_fontsize <= 0:
        raise ValueError(f"width, panel_height and min_fontsize must be positive, got {width}, "
                         f"{panel_height}, {min_fontsize}")
    rows, cols = grid_axes[0].get_subplotspec().get_gridspec().get_geometry()
    old_w, old_h = fig.get_size_inches()
    old_panel = (old_w / cols, old_h / rows)
    places = []
    for ax in grid_axes:
        spec = ax.get_subplotspec()
        r, c = spec.rowspan.start, spec.colspan.start
        places.append((c, r) if transpose else (r, c))
    if transpose:
        rows, cols = cols, rows
    new_cols = ncols or cols
    index = [r * cols + c for r, c in places]
    new_rows = max(i // new_cols for i in index) + 1
    gridspec = fig.add_gridspec(new_rows, new_cols)
    for ax, i in zip(grid_axes, index):
        ax.set_subplotspec(gridspec[i // new_cols, i % new_cols])
        # panels that shared a row or column may now be at an edge: show every tick label
        ax.tick_params(labelleft=True, labelbottom=True)
        for axis in (ax.xaxis, ax.yaxis):
            ticks = axis.get_ticklabels()
            if ticks and ticks[0].get_fontsize() < min_fontsize:
                axis.set_tick_params(labelsize=min_fontsize)
    height = panel_height if panel_height is not None else old_panel[1] * (width / new_cols) / old_panel[0]
    fig.set_size_inches(width, height * new_rows + (0.3 if fig.get_suptitle() else 0.0))
    for text in fig.findobj(lambda artist: hasattr(artist, "get_fontsize") and hasattr(artist, "set_fontsize")):
        if text.get_fontsize() < min_fontsize:
            text.set_fontsize(min_fontsize)
    if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        fig.tight_layout()  # a constrained layout redoes itself when drawn
    return fig


def _grid_shape(batch: int, nrow: int) -> tuple[int, int]:
    """(rows, columns) of a grid with ``nrow`` images per row (as torchvision's make_grid)."""
    columns = min(nrow, batch)
    return math.ceil(batch / columns), columns


# ----------------------------------------------------------------------------- image grids


def image_grid(
    images: Tensor | np.ndarray,
    nrow: int = 8,
    padding: int = 2,
    value_range: tuple[float, float] = (0.0, 1.0),
    *,
    pad_value: float = 0.5,
) -> Tensor:
    """Tile a batch of grey images into one (H, W) image in [0, 1].

    ``nrow`` images per row (the convention of ``torchvision.utils.make_grid``);
    image ``i`` goes to row ``i // nrow``, column ``i % nrow``, its top-left pixel at
    ``(padding + row * (h + padding), padding + col * (w + padding))``, so the grid is
    ``rows * (h + padding) + padding`` by ``cols * (w + padding) + padding`` pixels.
    Pixels are mapped from ``value_range`` to [0, 1] and clipped; the gaps are ``pad_value``
    (mid-grey, so black MNIST backgrounds stay visibly separate).
    See: book/04_practice/genlab_tour.ipynb.
    """
    if nrow < 1 or padding < 0:
        raise ValueError(f"need nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    x = to_unit_range(_as_image_batch(images), value_range)  # (B, h, w)
    batch, h, w = x.shape
    rows, cols = _grid_shape(batch, nrow)
    grid = torch.full((rows * (h + padding) + padding, cols * (w + padding) + padding), float(pad_value))
    for i in range(batch):
        top = padding + (i // cols) * (h + padding)
        left = padding + (i % cols) * (w + padding)
        grid[top : top + h, left : left + w] = x[i]
    return grid


def _draw_grid(ax: Axes, grid: Tensor, title: str | None) -> None:
    ax.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)


def show_images(
    images: Tensor | np.ndarray,
    nrow: int = 8,
    title: str | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    ax: Axes | None = None,
    labels: Sequence[Any] | Tensor | None = None,
) -> Figure:
    """Show a batch as one grey grid (one axis, no ticks), optionally writing a label on each image.

    ``labels`` (one per image: digits, class names, scores...) are printed in the
    top-left corner of each cell.
    See: book/00_front/first_example.ipynb.
    """
    batch = _as_image_batch(images)
    padding = 2
    grid = image_grid(batch, nrow=nrow, padding=padding, value_range=value_range)
    rows, cols = _grid_shape(len(batch), nrow)
    scale = min(CELL_INCHES, MAX_WIDTH_INCHES / cols)
    fig, ax = _new_axis(ax, (cols * scale + 0.2, rows * scale + (0.4 if title else 0.2)))
    _draw_grid(ax, grid, title)
    if labels is not None:
        labels = labels.tolist() if isinstance(labels, Tensor) else list(labels)
        if len(labels) != len(batch):
            raise ValueError(f"got {len(labels)} labels for {len(batch)} images")
        h, w = batch.shape[1:]
        for i, label in enumerate(labels):
            top = padding + (i // cols) * (h + padding)
            left = padding + (i % cols) * (w + padding)
            ax.text(left + 1, top + 1, str(label), color="yellow", fontsize=7, va="top", ha="left")
    return fig


def plot_samples_over_time(
    snapshots: Sequence[tuple[int, Tensor]],
    nrow: int = 8,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Figure:
    """One row of ``nrow`` samples per ``(step, images)`` snapshot, labelled with its step.

    Use the same latent codes at every snapshot so the rows show one set of
    samples evolving (e.g. a GAN from noise to digits).
    See: book/04_practice/mlp_gan.ipynb.
    """
    if len(snapshots) == 0:
        raise ValueError("plot_samples_over_time needs at least one (step, images) snapshot")
    cols = min(nrow, min(len(_as_image_batch(images)) for _, images in snapshots))
    scale = min(CELL_INCHES, MAX_WIDTH_INCHES / cols)
    fig, axes = plt.subplots(len(snapshots), 1, squeeze=False, layout="constrained",
                             figsize=(cols * scale + 0.8, len(snapshots) * scale + 0.2))
    for ax, (step, images) in zip(axes[:, 0], snapshots, strict=True):
        grid = image_grid(_as_image_batch(images)[:cols], nrow=cols, value_range=value_range)
        _draw_grid(ax, grid, None)
        ax.set_ylabel(f"step {step}", rotation=0, ha="right", va="center", fontsize=8)
    return fig


def plot_interpolation(
    images_row: Tensor | np.ndarray,
    value_range: tuple[float, float] = (0.0, 1.0),
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Show decoded interpolation points as one strip, from t = 0 (left) to t = 1 (right).

    See: book/03_vae/mnist_vae.ipynb.
    """
    batch = _as_image_batch(images_row, "images_row")
    n, _, w = batch.shape
    padding = 2
    scale = min(CELL_INCHES, MAX_WIDTH_INCHES / n)
    fig, ax = _new_axis(ax, (n * scale + 0.2, scale + 0.5))
    _draw_grid(ax, image_grid(batch, nrow=n, padding=padding, value_range=value_range), title)
    centres = [padding + i * (w + padding) + w / 2 for i in range(n)]
    if n > 1:
        ax.set_xticks([centres[0], centres[-1]], ["t = 0", "t = 1"], fontsize=8)
    return fig


# ----------------------------------------------------------------------------- curves


def _ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average: s_t = w s_{t-1} + (1 - w) v_t, divided by 1 - w^t."""
    out, running = np.empty_like(values), 0.0
    for t, v in enumerate(values, start=1):
        running = weight * running + (1 - weight) * v
        out[t - 1] = running / (1 - weight**t)
    return out


def _series(value: Any, default_steps: Sequence[float] | None, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Normalise one metric to (steps, values): accepts (steps, values), [(step, value), ...],
    {step: value}, or a plain list of values (aligned with ``default_steps`` or 0, 1, 2...)."""
    if isinstance(value, Mapping):
        steps, values = list(value.keys()), list(value.values())
    elif isinstance(value, tuple) and len(value) == 2 and all(np.ndim(v) == 1 for v in value):
        steps, values = value
    else:
        values = value.tolist() if isinstance(value, (Tensor, np.ndarray)) else list(value)
        if values and all(isinstance(v, (tuple, list)) and len(v) == 2 for v in values):
            steps, values = [s for s, _ in values], [v for _, v in values]
        elif default_steps is not None and len(default_steps) == len(values):
            steps = default_steps
        else:
            steps = range(len(values))
    steps = np.asarray([float(s) for s in steps])
    values = np.asarray([float(v) for v in values])
    if steps.shape != values.shape:
        raise ValueError(f"metric {name!r}: {len(steps)} steps but {len(values)} values")
    return steps, values


def _history_series(history: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A History (``steps``, ``metrics`` and optional ``evals``) or a dict -> {name: (steps, values)}."""
    if hasattr(history, "metrics") and hasattr(history, "steps"):
        steps, metrics = list(history.steps), history.metrics
        if isinstance(metrics, Sequence) and all(isinstance(m, Mapping) for m in metrics):
            # one record per step: [{"d_loss": ..., "g_loss": ...}, ...]
            if len(metrics) != len(steps):
                raise ValueError(f"history has {len(steps)} steps but {len(metrics)} metric records")
            names = list(dict.fromkeys(k for record in metrics for k in record))
            return {k: _series([(s, r[k]) for s, r in zip(steps, metrics, strict=True) if k in r], None, k)
                    for k in names}
        series = {k: _series(v, steps, k) for k, v in dict(metrics).items()}
        for k, rows in dict(getattr(history, "evals", None) or {}).items():  # {name: [(step, value)]}
            series[k if k not in series else f"{k} (eval)"] = _series(rows, None, k)
        return series
    if isinstance(history, Mapping):
        return {k: _series(v, None, k) for k, v in history.items()}
    raise TypeError(
        "plot_history expects a genlab.training.History (attributes .steps and .metrics) or a dict "
        f"name -> values / (steps, values); got {type(history).__name__}"
    )


def plot_history(
    history_or_dict: Any,
    keys: Sequence[str] | None = None,
    smooth: float = 0.0,
    ax: Axes | None = None,
    logy: bool = False,
) -> Figure:
    """Plot loss/metric curves against the training step, one line per metric.

    ``smooth`` in [0, 1) is the weight of a debiased exponential moving average
    (TensorBoard's slider): with ``smooth > 0`` the raw curve is drawn faintly
    behind the smoothed one. ``logy`` needs positive values. NaN entries (not logged at that
    step) are skipped. A History's ``evals`` (e.g. FID every 1,000 steps) are plotted too.
    See: book/04_practice/diagnostics.ipynb.
    """
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1) (an EMA weight), got {smooth}")
    series = _history_series(history_or_dict)
    if keys is None:
        keys = list(series)
    unknown = [k for k in keys if k not in series]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; available: {sorted(series)}")
    if not keys:
        raise ValueError("nothing to plot: the history has no metrics")
    fig, ax = _new_axis(ax, (5.5, 3.2))
    for key in keys:
        steps, values = series[key]
        logged = ~np.isnan(values)  # History pads a metric with NaN before its first entry
        steps, values = steps[logged], values[logged]
        if logy and (values <= 0).any():
            raise ValueError(f"logy=True but metric {key!r} has values <= 0")
        if smooth > 0 and len(values) > 1:
            (line,) = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
            ax.plot(steps, _ema(values, smooth), color=line.get_color(), label=key)
        else:
            ax.plot(steps, values, label=key)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------- 2-D plots


def plot_2d_samples(
    real: Tensor | np.ndarray,
    fake: Tensor | np.ndarray | None = None,
    modes: Tensor | np.ndarray | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Scatter real (and generated) 2-D points, with the mixture's mode centres as crosses.

    The picture of mode collapse: generated points piling onto a few modes.
    See: book/02_gan_math/mode_collapse.ipynb.
    """
    fig, ax = _new_axis(ax, (4.0, 4.0))
    real_xy = _as_points(real, "real")
    ax.scatter(real_xy[:, 0], real_xy[:, 1], s=4, alpha=0.4, color="tab:blue", label="real")
    if fake is not None:
        fake_xy = _as_points(fake, "fake")
        ax.scatter(fake_xy[:, 0], fake_xy[:, 1], s=4, alpha=0.4, color="tab:orange", label="generated")
    if modes is not None:
        modes_xy = _as_points(modes, "modes")
        ax.scatter(modes_xy[:, 0], modes_xy[:, 1], marker="x", s=40, color="black", label="modes")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=8, loc="upper right", markerscale=2)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_density_2d(
    log_prob_fn: Callable[[Tensor], Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    ax: Axes | None = None,
    resolution: int = 150,
    levels: int = 20,
) -> Figure:
    """Filled contours of the density p(x) = exp(log_prob_fn(x)) on a ``resolution``^2 grid.

    ``log_prob_fn`` maps points (M, 2) to log-densities (M,) (e.g. a KDE or a mixture's
    log-likelihood); it is called once, without gradients.
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    if not (xlim[0] < xlim[1] and ylim[0] < ylim[1]):
        raise ValueError(f"xlim and ylim must be (low, high) with low < high, got {xlim}, {ylim}")
    xs = torch.linspace(float(xlim[0]), float(xlim[1]), resolution)
    ys = torch.linspace(float(ylim[0]), float(ylim[1]), resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")  # (R, R) each
    with torch.no_grad():
        log_p = torch.as_tensor(log_prob_fn(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)))
    if log_p.numel() != resolution**2:
        raise ValueError(f"log_prob_fn must return one value per point ({resolution**2}), "
                         f"got shape {tuple(log_p.shape)}")
    if torch.isnan(log_p).any():
        raise ValueError("log_prob_fn returned NaN")
    density = log_p.detach().cpu().double().reshape(resolution, resolution).exp().numpy()
    fig, ax = _new_axis(ax, (4.0, 4.0))
    ax.contourf(gx.numpy(), gy.numpy(), density, levels=levels, cmap="viridis")
    ax.set_aspect("equal")
    return fig


def plot_latent_map(
    z_2d: Tensor | np.ndarray,
    labels: Tensor | np.ndarray | Sequence[int],
    ax: Axes | None = None,
    classes: Sequence[str] | None = None,
) -> Figure:
    """Scatter 2-D latent codes coloured by class (digit), with a legend.

    For a latent space with more than two dimensions, project first (e.g. PCA).
    See: book/03_vae/mnist_vae.ipynb.
    """
    points = torch.as_tensor(z_2d).detach().cpu()
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"plot_latent_map expects 2-D latents (N, 2), got {tuple(points.shape)}; "
                         "project higher-dimensional codes first (e.g. PCA)")
    xy = _as_points(points, "z_2d")
    labels = torch.as_tensor(labels).detach().cpu().long().reshape(-1).numpy()
    if len(labels) != len(xy):
        raise ValueError(f"got {len(labels)} labels for {len(xy)} latent codes")
    fig, ax = _new_axis(ax, (4.5, 4.0))
    cmap = plt.get_cmap("tab10")
    for k in np.unique(labels):
        chosen = labels == k
        name = classes[k] if classes is not None else str(k)
        ax.scatter(xy[chosen, 0], xy[chosen, 1], s=3, alpha=0.6, color=cmap(int(k) % 10), label=name)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def plot_label_histogram(
    counts: Tensor | np.ndarray | Sequence[float] | Mapping[Any, float],
    ax: Axes | None = None,
    classes: Sequence[str] | None = None,
) -> Figure:
    """Bar chart of how many samples the classifier assigns to each class.

    The dashed line is the uniform share total / K that a generator covering all
    classes equally would reach; missing bars are dropped modes.
    See: book/04_practice/evaluation.ipynb.
    """
    if isinstance(counts, Mapping):
        names, values = [str(k) for k in counts], [float(v) for v in counts.values()]
    else:
        values = torch.as_tensor(counts).detach().cpu().double().reshape(-1).tolist()
        names = list(classes) if classes is not None else [str(k) for k in range(len(values))]
    if len(names) != len(values):
        raise ValueError(f"got {len(names)} class names for {len(values)} counts")
    if not values or any(v < 0 or math.isnan(v) for v in values):
        raise ValueError(f"counts must be non-empty and non-negative, got {values}")
    fig, ax = _new_axis(ax, (4.5, 2.8))
    ax.bar(range(len(values)), values, color="tab:blue")
    ax.axhline(sum(values) / len(values), color="black", linestyle="--", linewidth=1, label="uniform")
    ax.set_xticks(range(len(values)), names, fontsize=8)
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    return fig
