"""Tests for genlab.plots: grid arithmetic, what each figure draws, and clear errors."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from genlab import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    """Library code must never call plt.show(); close every figure after each test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("genlab.plots called plt.show()")

    monkeypatch.setattr(plt, "show", forbidden)
    yield
    plt.close("all")


def _constant_images(batch: int, h: int = 28, w: int = 28) -> torch.Tensor:
    """Image i is filled with the value (i + 1) / (batch + 1): every cell is recognisable."""
    values = (torch.arange(batch, dtype=torch.float32) + 1) / (batch + 1)
    return values[:, None, None, None].expand(batch, 1, h, w).clone()


# ----------------------------------------------------------------------------- image_grid


@pytest.mark.parametrize(("batch", "nrow", "padding", "expected_rows", "expected_cols"), [
    (10, 4, 2, 3, 4),   # 10 images, 4 per row -> 3 rows (last one partly empty)
    (3, 8, 2, 1, 3),    # fewer images than nrow -> one row of 3
    (16, 8, 0, 2, 8),   # no padding
    (1, 8, 5, 1, 1),
])
def test_image_grid_shape_arithmetic(batch, nrow, padding, expected_rows, expected_cols):
    grid = plots.image_grid(torch.rand(batch, 1, 28, 28), nrow=nrow, padding=padding)
    assert grid.shape == (expected_rows * (28 + padding) + padding, expected_cols * (28 + padding) + padding)


def test_image_grid_places_each_image_row_major_and_pads_between():
    images = _constant_images(7, h=5, w=3)  # non-square: catches swapped height/width
    grid = plots.image_grid(images, nrow=3, padding=2, pad_value=-1.0)
    assert grid.shape == (3 * (5 + 2) + 2, 3 * (3 + 2) + 2)
    for i in range(7):
        top, left = 2 + (i // 3) * 7, 2 + (i % 3) * 5
        cell = grid[top : top + 5, left : left + 3]
        assert torch.allclose(cell, images[i, 0]), f"image {i} not at row {i // 3}, column {i % 3}"
    assert (grid[:2] == -1.0).all() and (grid[:, :2] == -1.0).all()  # the border is padding
    empty = grid[2 + 2 * 7 : 2 + 2 * 7 + 5, 2 + 1 * 5 : 2 + 1 * 5 + 3]  # cell 8 does not exist
    assert (empty == -1.0).all()
    assert (grid != -1.0).sum() == 7 * 5 * 3  # exactly the image pixels are non-padding


def test_image_grid_maps_value_range_to_unit_interval_and_clips():
    tanh_images = torch.tensor([-1.0, 0.0, 1.0, 3.0])[:, None, None, None].expand(4, 1, 2, 2)
    grid = plots.image_grid(tanh_images, nrow=4, padding=0, value_range=(-1, 1))
    assert grid[0, ::2].tolist() == [0.0, 0.5, 1.0, 1.0]


def test_image_grid_accepts_batch_without_channel_axis_and_single_image():
    images = torch.rand(4, 28, 28)
    assert torch.equal(plots.image_grid(images), plots.image_grid(images[:, None]))
    assert plots.image_grid(torch.rand(28, 28), padding=0).shape == (28, 28)


@pytest.mark.parametrize(("bad", "message"), [
    (torch.rand(64, 784), r"\(64, 784\)"),
    (torch.rand(2, 3, 28, 28), r"\(2, 3, 28, 28\)"),
    (torch.full((2, 1, 28, 28), float("nan")), "NaN"),
])
def test_image_grid_rejects_bad_input_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        plots.image_grid(bad)


# ----------------------------------------------------------------------------- show_images and friends


def test_show_images_draws_one_grey_image_without_ticks_and_with_labels():
    images = _constant_images(6)
    fig = plots.show_images(images, nrow=3, title="digits", labels=list("abcdef"))
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    (shown,) = ax.images
    assert np.allclose(shown.get_array(), plots.image_grid(images, nrow=3).numpy())
    assert shown.get_cmap().name == "gray"
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []
    assert [t.get_text() for t in ax.texts] == list("abcdef")
    assert ax.get_title() == "digits"
    width, height = fig.get_size_inches()
    assert width <= 10 and height <= 10  # notebooks stay small


def test_show_images_draws_into_a_given_axis_and_checks_label_count():
    fig, (left, right) = plt.subplots(1, 2)
    assert plots.show_images(torch.rand(4, 1, 28, 28), ax=right) is fig
    assert len(right.images) == 1 and len(left.images) == 0
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        plots.show_images(torch.rand(4, 1, 28, 28), labels=[0, 1, 2])


def test_plot_samples_over_time_one_row_per_snapshot():
    snapshots = [(0, torch.rand(16, 1, 28, 28)), (500, torch.rand(16, 1, 28, 28)), (1000, torch.rand(16, 1, 28, 28))]
    fig = plots.plot_samples_over_time(snapshots, nrow=5)
    assert len(fig.axes) == 3
    assert [ax.get_ylabel() for ax in fig.axes] == ["step 0", "step 500", "step 1000"]
    for ax, (_, images) in zip(fig.axes, snapshots, strict=True):
        assert np.allclose(ax.images[0].get_array(), plots.image_grid(images[:5], nrow=5).numpy())
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_samples_over_time([])


def test_plot_interpolation_is_one_strip():
    fig = plots.plot_interpolation(torch.rand(7, 1, 28, 28), value_range=(-1, 1))
    assert fig.axes[0].images[0].get_array().shape == (2 * 2 + 28, 7 * 30 + 2)


# ----------------------------------------------------------------------------- plot_history


def _lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_plot_history_accepts_a_dict_of_lists_and_of_step_value_pairs():
    fig = plots.plot_history({"d_loss": [3.0, 2.0, 1.0], "fid": ([0, 100], [50.0, 20.0])})
    lines = _lines_by_label(fig.axes[0])
    assert list(lines["d_loss"].get_xdata()) == [0, 1, 2]
    assert list(lines["d_loss"].get_ydata()) == [3.0, 2.0, 1.0]
    assert list(lines["fid"].get_xdata()) == [0, 100] and list(lines["fid"].get_ydata()) == [50.0, 20.0]


def test_plot_history_accepts_a_history_object_and_selects_keys():
    history = SimpleNamespace(steps=[10, 20, 30], metrics={"g_loss": [1.0, 0.5, 0.25], "d_loss": [0.7, 0.6, 0.5]})
    fig = plots.plot_history(history, keys=["g_loss"], logy=True)
    lines = _lines_by_label(fig.axes[0])
    assert set(lines) == {"g_loss"}
    assert list(lines["g_loss"].get_xdata()) == [10, 20, 30]  # x is the step, not the index
    assert fig.axes[0].get_yscale() == "log"
    nan = float("nan")
    padded = SimpleNamespace(steps=[1, 2, 3], metrics={"gp": [nan, 4.0, 2.0]}, evals={"fid": [(3, 30.0)]})
    lines = _lines_by_label(plots.plot_history(padded, smooth=0.5).axes[0])
    assert list(lines["gp"].get_xdata()) == [2, 3]  # the NaN padding is not drawn ...
    assert np.isfinite(lines["gp"].get_ydata()).all()  # ... and does not poison the moving average
    assert list(lines["fid"].get_xdata()) == [3] and list(lines["fid"].get_ydata()) == [30.0]
    records = SimpleNamespace(steps=[1, 2], metrics=[{"loss": 2.0}, {"loss": 1.0, "fid": 9.0}])
    lines = _lines_by_label(plots.plot_history(records).axes[0])
    assert list(lines["fid"].get_xdata()) == [2] and list(lines["loss"].get_ydata()) == [2.0, 1.0]


def test_plot_history_smoothing_is_a_debiased_moving_average():
    fig = plots.plot_history({"flat": [4.0] * 5, "step": [0.0, 2.0]}, smooth=0.5)
    lines = _lines_by_label(fig.axes[0])
    assert np.allclose(lines["flat"].get_ydata(), 4.0)  # weights sum to 1: no bias towards 0
    # t=2: (0.5 * 0.5 * 0 + 0.5 * 2) / (1 - 0.5^2) = 4/3
    assert np.allclose(lines["step"].get_ydata(), [0.0, 4.0 / 3.0])
    assert len(fig.axes[0].get_lines()) == 4  # raw curves drawn faintly behind


def test_plot_history_errors_name_the_problem():
    with pytest.raises(KeyError, match="unknown metric"):
        plots.plot_history({"loss": [1.0]}, keys=["fid"])
    with pytest.raises(ValueError, match="critic"):
        plots.plot_history({"critic": [1.0, -2.0]}, logy=True)
    with pytest.raises(ValueError, match="smooth"):
        plots.plot_history({"loss": [1.0]}, smooth=1.0)
    with pytest.raises(TypeError, match="History"):
        plots.plot_history([1.0, 2.0])


# ----------------------------------------------------------------------------- 2-D plots, latent maps, histograms


def test_plot_2d_samples_scatters_real_fake_and_modes():
    real, fake, modes = torch.randn(50, 2), np.random.randn(30, 2), torch.zeros(8, 2)
    fig = plots.plot_2d_samples(real, fake, modes, title="ring")
    collections = fig.axes[0].collections
    assert [len(c.get_offsets()) for c in collections] == [50, 30, 8]
    assert np.allclose(collections[0].get_offsets(), real.numpy())
    with pytest.raises(ValueError, match=r"fake of shape \(N, 2\), got \(30, 3\)"):
        plots.plot_2d_samples(real, torch.randn(30, 3))


def test_plot_density_2d_peaks_where_the_density_does():
    def log_prob(points):
        assert points.shape[1] == 2
        return -0.5 * ((points - torch.tensor([1.0, -1.0])) ** 2).sum(dim=1)

    fig = plots.plot_density_2d(log_prob, (-3, 3), (-3, 3), resolution=61)
    contour = fig.axes[0].collections[0]
    assert contour.levels.min() >= 0.0 and contour.levels.max() <= 1.0 + 1e-9  # a density, not its log
    top_region = np.concatenate(contour.allsegs[-1])  # vertices of the highest filled level
    assert np.allclose(top_region.mean(axis=0), [1.0, -1.0], atol=0.2)  # x and y not swapped
    with pytest.raises(ValueError, match="one value per point"):
        plots.plot_density_2d(lambda p: p, (-1, 1), (-1, 1), resolution=5)
    with pytest.raises(ValueError, match="low < high"):
        plots.plot_density_2d(log_prob, (1, -1), (-1, 1))


def test_plot_latent_map_one_colour_per_class_with_legend():
    z = torch.randn(40, 2)
    labels = torch.arange(40) % 4
    fig = plots.plot_latent_map(z, labels)
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.collections] == ["0", "1", "2", "3"]
    assert np.allclose(ax.collections[2].get_offsets(), z[labels == 2].numpy())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match="PCA"):
        plots.plot_latent_map(torch.randn(40, 16), labels)


def test_plot_label_histogram_bars_and_uniform_line():
    counts = torch.tensor([10, 0, 30, 20])
    fig = plots.plot_label_histogram(counts)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [10, 0, 30, 20]
    (uniform,) = [line for line in ax.get_lines() if line.get_label() == "uniform"]
    assert np.allclose(uniform.get_ydata(), 15.0)
    with pytest.raises(ValueError, match="non-negative"):
        plots.plot_label_histogram([1, -1])


def test_plot_history_reads_the_real_training_history():
    training = pytest.importorskip("genlab.training")
    history = training.History()
    history.record(10, {"d_loss": 1.0})
    history.record(20, {"d_loss": 0.5, "g_loss": 2.0})  # g_loss is NaN-padded at step 10
    history.evals["fid"] = [(20, 12.5)]
    lines = _lines_by_label(plots.plot_history(history).axes[0])
    assert list(lines["d_loss"].get_xdata()) == [10, 20]
    assert list(lines["g_loss"].get_xdata()) == [20] and list(lines["fid"].get_ydata()) == [12.5]


def test_fit_column_reflows_panels_and_raises_small_text():
    fig, axes = plt.subplots(1, 6, figsize=(10, 2.2))
    for i, ax in enumerate(axes):
        ax.plot([0, 1], [0, i])
        ax.set_title(f"step {i}", fontsize=6)
    axes[0].legend(["fake"], fontsize=4)
    assert plots.fit_column(fig, ncols=3) is fig
    places = [(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in fig.axes]
    assert places == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert fig.get_size_inches()[0] == pytest.approx(plots.COLUMN_INCHES)
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
    assert min(t.get_fontsize() for t in texts) >= 7.0


def test_fit_column_transposes_a_toy_by_variant_grid():
    fig, axes = plt.subplots(2, 5, figsize=(10, 6))  # a row per toy, a column per variant
    for r in range(2):
        for c in range(5):
            axes[r, c].set_title(f"toy {r}, variant {c}")
    plots.fit_column(fig, transpose=True, panel_height=2.5)
    spec = axes[1, 3].get_subplotspec()  # toy 1, variant 3 -> row 3, column 1
    assert (spec.rowspan.start, spec.colspan.start) == (3, 1)
    assert fig.get_size_inches() == pytest.approx((7.0, 12.5))
    with pytest.raises(ValueError, match="ncols"):
        plots.fit_column(fig, ncols=0)
