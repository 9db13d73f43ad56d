"""Interactive widgets for the notebooks, each with a static figure for the rendered book.

A rendered (executed, static) book page cannot run sliders, so every widget here
comes with a function that draws the same idea as a plain matplotlib Figure:

===============================  ==========================================
static Figure                    interactive (ipywidgets)
===============================  ==========================================
:func:`latent_traversal`         :func:`interactive_latent`
:func:`interpolation_strip`      :func:`interpolation_widget`
:func:`optimal_discriminator_panel`  :func:`optimal_discriminator_explorer`
===============================  ==========================================

The interactive functions return an ``ipywidgets.VBox``; when ipywidgets is not
installed they return the static Figure instead. Pictures are sent to the browser
as PNG bytes in an ``ipywidgets.Image``, so they work with any matplotlib backend.

A ``decode_fn`` can be a VAE (images = its decoder mean in [0, 1]), a GAN generator
(its tanh output is mapped from [-1, 1]) or any callable ``z (N, D) -> images
(N, 1, 28, 28)`` in ``value_range``. Modules are run in eval mode without gradients
and their training flags restored afterwards.

See: book/03_vae/mnist_vae.ipynb, book/02_gan_math/optimal_discriminator.ipynb.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from genlab.data.images import to_unit_range
from genlab.plots import image_grid, plot_interpolation

__all__ = [
    "interactive_latent", "interpolate_latents", "interpolation_strip", "interpolation_widget",
    "latent_traversal", "optimal_discriminator_curves", "optimal_discriminator_explorer",
    "optimal_discriminator_panel", "plot_optimal_discriminator", "traversal_latents",
]

Decoder = Callable[..., Tensor] | nn.Module

# The explorer's picture fills the book's 688 px text column (and shrinks with it on a phone);
# drawn 6.8 x 3.2 inches, its 9-point title is ~12 px and its 7-point legend ~10 px on screen.
EXPLORER_INCHES = (6.8, 3.2)
EXPLORER_PX = 680


# ----------------------------------------------------------------------------- decoding helpers


def _ipywidgets() -> Any | None:
    """The ipywidgets module, or None when it is not installed (the static fallback is used)."""
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


@contextmanager
def _eval_mode(decoder: Any):
    """Run a module in eval mode (BatchNorm running stats, no dropout), then restore its flags."""
    if not isinstance(decoder, nn.Module):
        yield
        return
    flags = [m.training for m in decoder.modules()]
    decoder.eval()
    try:
        yield
    finally:
        for module, flag in zip(decoder.modules(), flags, strict=True):
            module.training = flag


def _decode(decoder: Decoder, z: Tensor, labels: int | None, value_range: tuple[float, float]) -> Tensor:
    """Decode latents (N, D) to CPU images (N, 1, 28, 28) in [0, 1]."""
    label_batch = None if labels is None else torch.full((len(z),), int(labels), dtype=torch.long)
    if isinstance(decoder, nn.Module):
        parameter = next(decoder.parameters(), None)
        if parameter is not None:
            z = z.to(parameter.device)
            label_batch = None if label_batch is None else label_batch.to(parameter.device)
    with torch.no_grad(), _eval_mode(decoder):
        if hasattr(decoder, "decode") and hasattr(decoder, "likelihood"):  # a VAE
            out = decoder.decode(z, label_batch)
            images = torch.sigmoid(out) if decoder.likelihood == "bernoulli" else out
        elif isinstance(decoder, nn.Module) and hasattr(decoder, "latent_dim"):  # a GAN generator
            images = to_unit_range(decoder(z, label_batch), (-1.0, 1.0))
        else:
            images = decoder(z) if label_batch is None else decoder(z, label_batch)
            images = to_unit_range(torch.as_tensor(images), value_range)
    images = images.detach().float().cpu()
    if images.dim() != 4 or images.shape[0] != len(z):
        raise ValueError(f"decode_fn must map {len(z)} latents to images (N, 1, H, W), "
                         f"got shape {tuple(images.shape)}")
    return images


def _as_latent(z: Tensor, name: str) -> Tensor:
    """(D,) or (1, D) -> float CPU tensor (D,)."""
    z = torch.as_tensor(z).detach().float().cpu()
    if z.dim() == 2 and z.shape[0] == 1:
        z = z[0]
    if z.dim() != 1:
        raise ValueError(f"{name} must be one latent code of shape (D,) or (1, D), got {tuple(z.shape)}")
    if torch.isnan(z).any():
        raise ValueError(f"{name} contains NaN")
    return z


def _png(grid: Tensor) -> bytes:
    """A (H, W) image in [0, 1] as grey PNG bytes."""
    buffer = io.BytesIO()
    plt.imsave(buffer, grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buffer.getvalue()


def _figure_png(fig: Figure, dpi: int = 150) -> bytes:
    """Render and close a figure (closing stops notebooks from also showing it inline).

    At 150 dpi a figure :data:`EXPLORER_INCHES` wide is 1,020 px: crisp when the page shows
    it :data:`EXPLORER_PX` px wide, also on high-density screens.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- latent traversal


def traversal_latents(z0: Tensor, dims: Sequence[int], span: float = 3.0, steps: int = 9) -> Tensor:
    """The latent codes of a traversal grid, shape (len(dims) * steps, D).

    Row ``r`` of the grid is ``z0`` with coordinate ``dims[r]`` replaced by each of
    ``linspace(-span, span, steps)`` (for a N(0, I) prior: -span to +span standard
    deviations); all other coordinates stay at ``z0``.
    See: book/03_vae/beta_vae.ipynb.
    """
    z0 = _as_latent(z0, "z0")
    dims = [int(d) for d in dims]
    if not dims or any(not 0 <= d < len(z0) for d in dims):
        raise ValueError(f"dims must be a non-empty list of indices in [0, {len(z0)}), got {dims}")
    if steps < 2 or not span > 0:
        raise ValueError(f"need steps >= 2 and span > 0, got steps={steps}, span={span}")
    values = torch.linspace(-span, span, steps)  # (steps,)
    z = z0.repeat(len(dims) * steps, 1)  # (rows * steps, D)
    for row, d in enumerate(dims):
        z[row * steps : (row + 1) * steps, d] = values
    return z


def latent_traversal(
    decode_fn: Decoder,
    z0: Tensor,
    dims: Sequence[int] | None = None,
    span: float = 3.0,
    steps: int = 9,
    *,
    labels: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Figure:
    """A static grid of decoded traversals: one row per latent dimension, ``steps`` columns.

    ``dims`` defaults to the first (up to) 8 dimensions. A disentangled
    dimension changes one property (slant, width...) along its row.
    ``labels`` conditions a conditional model on one class.
    See: book/03_vae/mnist_vae.ipynb.
    """
    z0 = _as_latent(z0, "z0")
    dims = list(range(min(len(z0), 8))) if dims is None else list(dims)
    images = _decode(decode_fn, traversal_latents(z0, dims, span, steps), labels, value_range)
    padding, h = 2, images.shape[-2]
    grid = image_grid(images, nrow=steps, padding=padding)
    fig, ax = plt.subplots(figsize=(0.5 * steps + 0.6, 0.5 * len(dims) + 0.4), layout="constrained")
    ax.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    centres = [padding + i * (h + padding) + h / 2 for i in range(max(len(dims), steps))]
    ax.set_yticks(centres[: len(dims)], [f"$z_{{{d}}}$" for d in dims], fontsize=8)
    ax.set_xticks([centres[0], centres[steps - 1]], [f"{-span:g}", f"{span:g}"], fontsize=8)
    return fig


def interactive_latent(
    decode_fn: Decoder,
    z0: Tensor,
    dims: Sequence[int] | None = None,
    span: float = 3.0,
    *,
    labels: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Any:
    """One slider per latent dimension in ``dims``; moving one redraws the decoded image.

    Returns an ``ipywidgets.VBox`` (or, without ipywidgets, :func:`latent_traversal`'s figure).
    See: book/03_vae/mnist_vae.ipynb.
    """
    z0 = _as_latent(z0, "z0")
    dims = list(range(min(len(z0), 8))) if dims is None else [int(d) for d in dims]
    traversal_latents(z0, dims, span)  # validates dims and span
    widgets = _ipywidgets()
    if widgets is None:
        return latent_traversal(decode_fn, z0, dims, span, labels=labels, value_range=value_range)
    image = widgets.Image(format="png", layout=widgets.Layout(width="168px", height="168px"))
    sliders = [widgets.FloatSlider(value=float(z0[d]), min=-span, max=span, step=span / 30,
                                   description=f"z[{d}]", continuous_update=True) for d in dims]

    def redraw(_change: Any = None) -> None:
        z = z0.clone()
        for d, slider in zip(dims, sliders, strict=True):
            z[d] = slider.value
        image.value = _png(image_grid(_decode(decode_fn, z[None], labels, value_range), nrow=1, padding=0))

    for slider in sliders:
        slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([image, widgets.VBox(sliders)])])


# ----------------------------------------------------------------------------- interpolation


def interpolate_latents(z_a: Tensor, z_b: Tensor, steps: int = 10, method: str = "linear") -> Tensor:
    """``steps`` points from ``z_a`` (t = 0) to ``z_b`` (t = 1), shape (steps, D).

    ``"linear"``: (1 - t) z_a + t z_b.  ``"slerp"`` (spherical):
    sin((1 - t) W) / sin W * z_a + sin(t W) / sin W * z_b with cos W = <z_a, z_b> / (|z_a| |z_b|),
    which keeps the norm near the shell where a high-dimensional N(0, I) puts its mass.
    See: book/03_vae/mnist_vae.ipynb.
    """
    z_a, z_b = _as_latent(z_a, "z_a"), _as_latent(z_b, "z_b")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b differ in shape: {tuple(z_a.shape)} vs {tuple(z_b.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    t = torch.linspace(0.0, 1.0, steps)[:, None]  # (steps, 1)
    if method == "linear":
        return (1 - t) * z_a + t * z_b
    if method != "slerp":
        raise ValueError(f"unknown interpolation method {method!r}; expected 'linear' or 'slerp'")
    cos = torch.dot(z_a, z_b) / (z_a.norm() * z_b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:  # (anti)parallel to numerical precision: slerp degenerates to lerp
        return (1 - t) * z_a + t * z_b
    return (torch.sin((1 - t) * omega) * z_a + torch.sin(t * omega) * z_b) / torch.sin(omega)


def interpolation_strip(
    decode_fn: Decoder, z_a: Tensor, z_b: Tensor, steps: int = 10, method: str = "linear", *,
    labels: int | None = None, value_range: tuple[float, float] = (0.0, 1.0),
) -> Figure:
    """The decoded images along :func:`interpolate_latents`, as one static strip.

    See: book/03_vae/mnist_vae.ipynb.
    """
    images = _decode(decode_fn, interpolate_latents(z_a, z_b, steps, method), labels, value_range)
    return plot_interpolation(images, title=f"{method} interpolation")


def interpolation_widget(
    decode_fn: Decoder, z_a: Tensor, z_b: Tensor, steps: int = 10, method: str = "linear", *,
    labels: int | None = None, value_range: tuple[float, float] = (0.0, 1.0),
) -> Any:
    """The static strip above a slider for t in [0, 1] that decodes the point at t.

    Returns an ``ipywidgets.VBox`` (or, without ipywidgets, :func:`interpolation_strip`'s figure).
    See: book/03_vae/mnist_vae.ipynb.
    """
    strip = _decode(decode_fn, interpolate_latents(z_a, z_b, steps, method), labels, value_range)
    widgets = _ipywidgets()
    if widgets is None:
        return plot_interpolation(strip, title=f"{method} interpolation")
    dense = interpolate_latents(z_a, z_b, 101, method)  # t = 0.00, 0.01, ..., 1.00
    strip_image = widgets.Image(value=_png(image_grid(strip, nrow=steps)), format="png",
                                layout=widgets.Layout(width=f"{min(60 * steps, 720)}px"))
    image = widgets.Image(format="png", layout=widgets.Layout(width="140px", height="140px"))
    slider = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.01, description="t")

    def redraw(_change: Any = None) -> None:
        z = dense[round(slider.value * 100)][None]  # (1, D)
        image.value = _png(image_grid(_decode(decode_fn, z, labels, value_range), nrow=1, padding=0))

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([strip_image, widgets.HBox([slider, image])])


# ----------------------------------------------------------------------------- optimal discriminator


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid rule (np.trapezoid is NumPy >= 2 only)."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


def _normal_log_pdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def optimal_discriminator_curves(
    mu_g: float,
    sigma_g: float,
    mu_data: float = 0.0,
    sigma_data: float = 1.0,
    grid: np.ndarray | None = None,
) -> dict[str, Any]:
    """D*, V(D*, G) and JS for 1-D Gaussians p_data = N(mu_data, sigma_data^2), p_g = N(mu_g, sigma_g^2).

    For a fixed generator the best discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x)),
    and plugging it in gives V(D*, G) = E_data log D* + E_g log(1 - D*) = -log 4 + 2 JS(p_data || p_g),
    with JS = KL(p_data || m) / 2 + KL(p_g || m) / 2, m = (p_data + p_g) / 2, in [0, log 2].
    ``value`` and ``js`` are integrated independently (trapezoid rule, in log space) on
    ``grid`` (default: 20,001 points spanning 10 standard deviations around both means).
    Returns ``dict(x, p_data, p_g, d_star, value, js)`` (arrays and floats).
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    params = {"mu_g": mu_g, "sigma_g": sigma_g, "mu_data": mu_data, "sigma_data": sigma_data}
    if any(not math.isfinite(float(v)) for v in params.values()):
        raise ValueError(f"parameters must be finite, got {params}")
    if sigma_g <= 0 or sigma_data <= 0:
        raise ValueError(f"standard deviations must be positive, got {params}")
    if grid is None:
        low = min(mu_data - 10 * sigma_data, mu_g - 10 * sigma_g)
        high = max(mu_data + 10 * sigma_data, mu_g + 10 * sigma_g)
        grid = np.linspace(low, high, 20_001)
    x = np.asarray(grid, dtype=np.float64)
    if x.ndim != 1 or len(x) < 3 or not (np.diff(x) > 0).all():
        raise ValueError("grid must be a 1-D increasing array of at least 3 points")
    log_p_data, log_p_g = _normal_log_pdf(x, mu_data, sigma_data), _normal_log_pdf(x, mu_g, sigma_g)
    log_sum = np.logaddexp(log_p_data, log_p_g)  # log(p_data + p_g), no 0 / 0 in the tails
    p_data, p_g = np.exp(log_p_data), np.exp(log_p_g)
    for name, density in (("p_data", p_data), ("p_g", p_g)):
        mass = _trapezoid(density, x)
        if abs(mass - 1.0) > 1e-6:
            raise ValueError(f"the grid holds {mass:.6f} of {name}'s mass; widen or refine it")
    # V(D*, G) = int p_data log D* + p_g log(1 - D*)
    value = _trapezoid(p_data * (log_p_data - log_sum) + p_g * (log_p_g - log_sum), x)
    log_m = log_sum - math.log(2.0)
    js = 0.5 * _trapezoid(p_data * (log_p_data - log_m), x) + 0.5 * _trapezoid(p_g * (log_p_g - log_m), x)
    return {"x": x, "p_data": p_data, "p_g": p_g, "d_star": np.exp(log_p_data - log_sum),
            "value": float(value), "js": float(js)}


def plot_optimal_discriminator(curves: dict[str, Any], ax: Any = None) -> Figure:
    """Draw p_data, p_g and D* from :func:`optimal_discriminator_curves`, with V and JS in the title.

    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 3.0), layout="constrained")
    else:
        fig = ax.figure
    every = max(1, len(curves["x"]) // 1000)  # ~1,000 points are plenty on screen and fast to redraw
    x = curves["x"][::every]
    ax.plot(x, curves["p_data"][::every], color="tab:blue", label="$p_{data}$")
    ax.plot(x, curves["p_g"][::every], color="tab:orange", label="$p_g$")
    ax.plot(x, curves["d_star"][::every], color="black", linestyle="--", label="$D^*$")
    ax.axhline(0.5, color="grey", linewidth=0.5)
    ax.set_ylim(0.0, max(1.05, 1.05 * max(curves["p_data"].max(), curves["p_g"].max())))
    ax.set_title(f"V(D*, G) = {curves['value']:.3f},  JS = {curves['js']:.3f}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig


def optimal_discriminator_panel(
    settings: Sequence[tuple[float, float]] = ((3.0, 1.0), (1.0, 0.6), (0.0, 1.0)),
    mu_data: float = 0.0,
    sigma_data: float = 1.0,
) -> Figure:
    """The static version of the explorer: one panel per ``(mu_g, sigma_g)`` setting.

    The default runs from a far generator (D* near 0 or 1, JS near log 2) to p_g = p_data
    (D* = 1/2 everywhere, V = -log 4).
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    # at most 7 inches wide: shown unscaled in the book's 688 px column, so 7-point text stays >= 9 px
    fig, axes = plt.subplots(1, len(settings), figsize=(min(7.0, 2.4 * len(settings)), 3.0), squeeze=False,
                             sharey=True, layout="constrained")
    window = np.linspace(-5.0, 5.0, 2001)
    for ax, (mu_g, sigma_g) in zip(axes[0], settings, strict=True):
        curves = optimal_discriminator_curves(mu_g, sigma_g, mu_data, sigma_data)
        shown = {**curves, "x": window}  # draw on a fixed window so the panels line up
        for key in ("p_data", "p_g", "d_star"):
            shown[key] = np.interp(window, curves["x"], curves[key])
        plot_optimal_discriminator(shown, ax=ax)
        ax.set_title(f"V(D*, G) = {curves['value']:.3f}\nJS = {curves['js']:.3f}", fontsize=9)  # fits a narrow panel
        ax.set_xlabel(f"$\\mu_g$ = {mu_g:g}, $\\sigma_g$ = {sigma_g:g}", fontsize=8)
    return fig


def optimal_discriminator_explorer(
    mu_g: float = 2.0, sigma_g: float = 1.0, mu_data: float = 0.0, sigma_data: float = 1.0
) -> Any:
    """Sliders for p_g's mean and width; redraws p_data, p_g, D* and prints V(D*, G) and JS.

    Watch V(D*, G) + log 4 track 2 JS, and D* flatten to 1/2 as p_g reaches p_data.
    Returns an ``ipywidgets.VBox`` (or, without ipywidgets, :func:`optimal_discriminator_panel`).
    See: book/02_gan_math/optimal_discriminator.ipynb.
    """
    optimal_discriminator_curves(mu_g, sigma_g, mu_data, sigma_data)  # validates the parameters
    widgets = _ipywidgets()
    if widgets is None:
        return optimal_discriminator_panel(mu_data=mu_data, sigma_data=sigma_data)
    # Short labels shown in full; each slider takes half a row and wraps to its own row on a phone
    slider_layout = {"flex": "1 1 240px", "min_width": "200px", "max_width": "420px"}
    style = {"description_width": "initial"}
    mean = widgets.FloatSlider(value=mu_g, min=-5.0, max=5.0, step=0.1, description="p_g mean",
                               style=style, layout=widgets.Layout(**slider_layout))
    width = widgets.FloatSlider(value=sigma_g, min=0.2, max=3.0, step=0.05, description="p_g std",
                                style=style, layout=widgets.Layout(**slider_layout))
    image = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width=f"{EXPLORER_PX}px",
                                                              height="auto"))
    readout = widgets.HTML()

    def redraw(_change: Any = None) -> None:
        curves = optimal_discriminator_curves(mean.value, width.value, mu_data, sigma_data)
        fig, ax = plt.subplots(figsize=EXPLORER_INCHES, layout="constrained")
        image.value = _figure_png(plot_optimal_discriminator(curves, ax=ax))
        readout.value = (f"V(D*, G) = {curves['value']:.4f} &nbsp; JS = {curves['js']:.4f} "
                         f"&nbsp; -log 4 + 2 JS = {-math.log(4) + 2 * curves['js']:.4f}")

    mean.observe(redraw, names="value")
    width.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([mean, width], layout=widgets.Layout(flex_flow="row wrap", width="100%")),
                         readout, image], layout=widgets.Layout(width="100%"))
