"""Tests for genlab.widgets: the optimal-discriminator maths, traversal/interpolation latents,
the static figures and the ipywidgets (driven without a browser: observers run synchronously)."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from genlab import widgets  # noqa: E402

try:
    import ipywidgets
except ImportError:  # a dependency of genlab, but the maths tests do not need it
    ipywidgets = None
needs_ipywidgets = pytest.mark.skipif(ipywidgets is None, reason="ipywidgets is not installed")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def brightness_decoder(z: torch.Tensor) -> torch.Tensor:
    """Image i is uniformly (z[i, 0] + 3) / 6: a traversal of z_0 from -3 to 3 goes black -> white."""
    return ((z[:, 0] + 3) / 6)[:, None, None, None].expand(len(z), 1, 28, 28)


class TinyVAE(nn.Module):
    """Duck-typed VAE: Bernoulli logits = z_0 everywhere; records its mode while decoding."""

    likelihood = "bernoulli"
    latent_dim = 3
    num_classes = None

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.modes_seen: list[bool] = []

    def decode(self, z, labels=None):
        self.modes_seen.append(self.training)
        return (self.scale * z[:, 0])[:, None, None, None].expand(len(z), 1, 28, 28)


# ----------------------------------------------------------------------------- optimal discriminator


@pytest.mark.parametrize(("mu_g", "sigma_g"), [(0.5, 1.0), (2.0, 0.5), (-3.0, 2.0), (1.0, 1.0)])
def test_value_of_optimal_discriminator_is_minus_log4_plus_twice_js(mu_g, sigma_g):
    curves = widgets.optimal_discriminator_curves(mu_g, sigma_g)
    assert curves["value"] == pytest.approx(-math.log(4) + 2 * curves["js"], abs=1e-6)
    assert 0.0 <= curves["js"] <= math.log(2)
    assert ((curves["d_star"] >= 0) & (curves["d_star"] <= 1)).all()


def test_equal_distributions_give_d_star_one_half_and_the_global_minimum():
    curves = widgets.optimal_discriminator_curves(0.0, 1.0)
    assert np.allclose(curves["d_star"], 0.5, atol=1e-12)
    assert curves["js"] == pytest.approx(0.0, abs=1e-9)
    assert curves["value"] == pytest.approx(-math.log(4), abs=1e-6)


def test_disjoint_distributions_saturate_js_at_log2():
    curves = widgets.optimal_discriminator_curves(40.0, 1.0)
    assert curves["js"] == pytest.approx(math.log(2), abs=1e-6)
    assert curves["value"] == pytest.approx(0.0, abs=1e-6)


def test_js_is_symmetric_and_d_star_is_the_density_ratio():
    forward = widgets.optimal_discriminator_curves(1.5, 0.7, mu_data=-0.5, sigma_data=1.2)
    backward = widgets.optimal_discriminator_curves(-0.5, 1.2, mu_data=1.5, sigma_data=0.7)
    assert forward["js"] == pytest.approx(backward["js"], abs=1e-9)
    index = np.argmin(np.abs(forward["x"] - 0.3))
    p_d, p_g = forward["p_data"][index], forward["p_g"][index]
    assert forward["d_star"][index] == pytest.approx(p_d / (p_d + p_g))
    # p_data is N(-0.5, 1.2^2), not a swapped N(1.5, 0.7^2)
    x = forward["x"][index]
    assert p_d == pytest.approx(math.exp(-0.5 * ((x + 0.5) / 1.2) ** 2) / (1.2 * math.sqrt(2 * math.pi)))


def test_value_matches_a_monte_carlo_estimate_and_beats_other_discriminators():
    mu_g, sigma_g = 1.0, 0.8
    curves = widgets.optimal_discriminator_curves(mu_g, sigma_g)
    gen = torch.Generator().manual_seed(0)
    n = 100_000
    x_data = torch.randn(n, generator=gen, dtype=torch.float64)
    x_g = mu_g + sigma_g * torch.randn(n, generator=gen, dtype=torch.float64)
    data_dist, g_dist = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(mu_g, sigma_g)

    def log_d_star(x):
        return data_dist.log_prob(x) - torch.logaddexp(data_dist.log_prob(x), g_dist.log_prob(x))

    def log_one_minus_d_star(x):
        return g_dist.log_prob(x) - torch.logaddexp(data_dist.log_prob(x), g_dist.log_prob(x))

    monte_carlo = (log_d_star(x_data).mean() + log_one_minus_d_star(x_g).mean()).item()
    assert curves["value"] == pytest.approx(monte_carlo, abs=0.01)
    # any other discriminator D scores lower: V(D, G) < V(D*, G)
    x, p_data, p_g = curves["x"], curves["p_data"], curves["p_g"]
    for other in (np.full_like(x, 0.5), np.clip(curves["d_star"] * 0.9 + 0.05, 1e-9, 1 - 1e-9)):
        integrand = p_data * np.log(other) + p_g * np.log(1 - other)
        value = np.sum((integrand[1:] + integrand[:-1]) * np.diff(x)) / 2  # trapezoid rule
        assert value < curves["value"]


def test_optimal_discriminator_curves_reject_bad_parameters():
    with pytest.raises(ValueError, match="positive"):
        widgets.optimal_discriminator_curves(0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        widgets.optimal_discriminator_curves(float("nan"), 1.0)
    with pytest.raises(ValueError, match="mass"):
        widgets.optimal_discriminator_curves(0.0, 1.0, grid=np.linspace(-1, 1, 101))


@needs_ipywidgets
def test_optimal_discriminator_panel_and_explorer():
    fig = widgets.optimal_discriminator_panel()
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    box = widgets.optimal_discriminator_explorer(mu_g=2.0, sigma_g=1.0)
    assert isinstance(box, ipywidgets.VBox)
    (mean, width), readout, image = box.children[0].children, box.children[1], box.children[2]
    first_png = image.value
    mean.value, width.value = 0.0, 1.0  # p_g = p_data
    assert "JS = 0.0000" in readout.value and f"{-math.log(4):.4f}" in readout.value
    assert image.value != first_png and bytes(image.value).startswith(b"\x89PNG")
    # crisp at the book's column width: the PNG is at least as wide as the width it is shown at
    png_width = int.from_bytes(bytes(image.value)[16:20], "big")
    assert png_width >= widgets.EXPLORER_PX and image.layout.width == "100%"
    # labels shown in full, sliders that wrap to their own row on a phone instead of shrinking
    assert [s.description for s in (mean, width)] == ["p_g mean", "p_g std"]
    assert all(s.style.description_width == "initial" and s.layout.min_width for s in (mean, width))
    assert box.children[0].layout.flex_flow == "row wrap"
    assert fig.get_size_inches()[0] <= 7.0  # not shrunk in a 688 px column


# ----------------------------------------------------------------------------- latent traversal


def test_traversal_latents_change_exactly_one_coordinate_per_row():
    z0 = torch.tensor([0.1, 0.2, 0.3, 0.4])
    z = widgets.traversal_latents(z0, dims=[2, 0], span=2.0, steps=5)
    assert z.shape == (10, 4)
    values = torch.linspace(-2.0, 2.0, 5)
    for row, d in enumerate([2, 0]):
        block = z[row * 5 : (row + 1) * 5]
        assert torch.equal(block[:, d], values)
        others = [k for k in range(4) if k != d]
        assert torch.equal(block[:, others], z0[others].expand(5, 3))
    with pytest.raises(ValueError, match="dims"):
        widgets.traversal_latents(z0, dims=[4])
    with pytest.raises(ValueError, match=r"shape \(D,\) or \(1, D\)"):
        widgets.traversal_latents(torch.zeros(2, 4), dims=[0])


def test_latent_traversal_figure_has_one_row_per_dim_and_one_column_per_step():
    fig = widgets.latent_traversal(brightness_decoder, torch.zeros(6), dims=[0, 3, 5], steps=7)
    assert isinstance(fig, Figure)
    grid = fig.axes[0].images[0].get_array()
    assert grid.shape == (3 * 30 + 2, 7 * 30 + 2)
    first_row = [grid[2 + 14, 2 + c * 30 + 14] for c in range(7)]  # z_0 from -3 to 3: black -> white
    assert np.allclose(first_row, np.linspace(0.0, 1.0, 7))
    assert np.allclose(grid[2 + 30 + 14, 2 + 14 :: 30], 0.5)  # other dims leave z_0 = 0: mid-grey
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["$z_{0}$", "$z_{3}$", "$z_{5}$"]


def test_vae_is_decoded_to_probabilities_in_eval_mode_and_its_mode_restored():
    vae = TinyVAE().train()
    fig = widgets.latent_traversal(vae, torch.zeros(3), dims=[0], span=2.0, steps=3)
    assert vae.modes_seen == [False] and vae.training  # eval while decoding, train again afterwards
    cells = fig.axes[0].images[0].get_array()[16, 16::30]
    assert np.allclose(cells, torch.sigmoid(torch.tensor([-2.0, 0.0, 2.0])).numpy())


def test_gan_generator_output_is_mapped_from_tanh_range():
    class TinyGenerator(nn.Module):
        latent_dim, num_classes = 2, None

        def forward(self, z, labels=None):
            return torch.tanh(z[:, 0])[:, None, None, None].expand(len(z), 1, 28, 28)

    fig = widgets.latent_traversal(TinyGenerator(), torch.zeros(2), dims=[0], span=50.0, steps=3)
    assert np.allclose(fig.axes[0].images[0].get_array()[16, 16::30], [0.0, 0.5, 1.0], atol=1e-6)


@needs_ipywidgets
def test_interactive_latent_sliders_redraw_the_decoded_image():
    calls = []

    def decoder(z):
        calls.append(z.clone())
        return brightness_decoder(z)

    box = widgets.interactive_latent(decoder, torch.zeros(4), dims=[0, 2])
    assert isinstance(box, ipywidgets.VBox)
    image, slider_box = box.children[0].children
    sliders = slider_box.children
    assert [s.description for s in sliders] == ["z[0]", "z[2]"]
    first_png = image.value
    sliders[0].value = 1.5
    assert torch.equal(calls[-1], torch.tensor([[1.5, 0.0, 0.0, 0.0]]))
    assert image.value != first_png
    sliders[1].value = -1.0
    assert torch.equal(calls[-1], torch.tensor([[1.5, 0.0, -1.0, 0.0]]))


def test_widgets_fall_back_to_static_figures_without_ipywidgets(monkeypatch):
    monkeypatch.setattr(widgets, "_ipywidgets", lambda: None)
    assert isinstance(widgets.interactive_latent(brightness_decoder, torch.zeros(3)), Figure)
    assert isinstance(widgets.interpolation_widget(brightness_decoder, torch.zeros(3), torch.ones(3)), Figure)
    assert isinstance(widgets.optimal_discriminator_explorer(), Figure)


# ----------------------------------------------------------------------------- interpolation


def test_interpolate_latents_linear_and_slerp():
    z_a, z_b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    linear = widgets.interpolate_latents(z_a, z_b, steps=5)
    assert torch.equal(linear[0], z_a) and torch.equal(linear[-1], z_b)
    assert torch.allclose(linear[2], (z_a + z_b) / 2)
    slerp = widgets.interpolate_latents(z_a, z_b, steps=5, method="slerp")
    assert torch.allclose(slerp[0], z_a) and torch.allclose(slerp[-1], z_b, atol=1e-6)
    assert torch.allclose(slerp.norm(dim=1), torch.full((5,), 3.0))  # stays on the circle
    assert torch.allclose(slerp[2], torch.tensor([3.0, 3.0]) / math.sqrt(2))  # half the angle
    with pytest.raises(ValueError, match="unknown interpolation method"):
        widgets.interpolate_latents(z_a, z_b, method="cubic")


@needs_ipywidgets
def test_interpolation_strip_and_widget():
    z_a, z_b = torch.full((3,), -3.0), torch.full((3,), 3.0)
    fig = widgets.interpolation_strip(brightness_decoder, z_a, z_b, steps=4)
    assert np.allclose(fig.axes[0].images[0].get_array()[16, 16::30], np.linspace(0, 1, 4))
    calls = []

    def decoder(z):
        calls.append(z.clone())
        return brightness_decoder(z)

    box = widgets.interpolation_widget(decoder, z_a, z_b, steps=4)
    assert isinstance(box, ipywidgets.VBox)
    slider, image = box.children[1].children
    assert torch.allclose(calls[-1], z_a[None])  # starts at t = 0
    slider.value = 1.0
    assert torch.allclose(calls[-1], z_b[None])
    slider.value = 0.25
    assert torch.allclose(calls[-1], torch.full((1, 3), -1.5))


def test_traversal_of_a_real_vae_and_generator_gives_unit_range_images():
    vae_module = pytest.importorskip("genlab.models.vae")
    gan_module = pytest.importorskip("genlab.models.gan")
    torch.manual_seed(0)
    vae = vae_module.MLPVAE(hidden=8, latent_dim=2)
    generator = gan_module.MLPGenerator(latent_dim=4, hidden=(8,))
    for model in (vae, generator):
        fig = widgets.latent_traversal(model, torch.zeros(model.latent_dim), dims=[0, 1], steps=3)
        grid = fig.axes[0].images[0].get_array()
        assert grid.shape == (2 * 30 + 2, 3 * 30 + 2)
        assert grid.min() >= 0.0 and grid.max() <= 1.0
        assert model.training  # the mode is restored after decoding in eval mode
