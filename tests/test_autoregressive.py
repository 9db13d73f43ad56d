"""PixelCNN (genlab.models.pixelcnn), the autoregressive helpers (genlab.autoregressive) and PixelCNNTask."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from genlab.autoregressive import (
    bernoulli_nll,
    dependency_map,
    exact_nll,
    raster_predecessors,
    sample_autoregressive,
)
from genlab.models.pixelcnn import MaskedConv2d, PixelCNN, causal_mask
from genlab.tasks import PixelCNNTask
from genlab.training import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards


def small(seed: int = 0, **kwargs) -> PixelCNN:
    torch.manual_seed(seed)
    kwargs.setdefault("channels", 4)
    kwargs.setdefault("num_blocks", 2)
    kwargs.setdefault("output_channels", 8)
    return PixelCNN(**kwargs)


def input_gradient(layer, position, shape=(1, 1, 10, 10), seed=0):
    """|d layer(x)[..., position] / d x| summed over channels: (H, W)."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), requires_grad=True)
    layer(x)[0, :, position[0], position[1]].sum().backward()
    return x.grad[0].abs().sum(0)


def test_masks_are_the_drawn_ones():
    a, b = causal_mask(3, "A"), causal_mask(3, "B")
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert int(causal_mask(7, "A").sum()) == 24 and int(causal_mask(7, "B").sum()) == 25  # half of 49, +- centre


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_single_masked_layer_is_causal_by_gradients(mask_type):
    torch.manual_seed(0)
    layer = MaskedConv2d(1, 3, 5, mask_type)
    for position in [(0, 0), (4, 4), (5, 9), (9, 0)]:
        grad = input_gradient(layer, position)
        allowed = raster_predecessors(position, 10, 10)
        if mask_type == "B":
            allowed[position] = True  # mask B may read its own position
        assert float(grad[~allowed].abs().max()) == 0.0  # nothing at or after i (A), after i (B)
        if mask_type == "B":
            assert float(grad[position]) > 0
        if position == (4, 4):
            assert float(grad[3, 4]) > 0 and float(grad[4, 3]) > 0  # the neighbours above and left are read


def test_pixelcnn_output_never_sees_pixels_at_or_after_it():
    model = small(num_blocks=3)
    for position in itertools.product([0, 5, 13, 27], [0, 6, 27]):
        grad = dependency_map(model, position)
        assert float(grad[~raster_predecessors(position)].max()) == 0.0, position
    assert float(dependency_map(model, (0, 0)).max()) == 0.0  # the first pixel depends on nothing


def test_blind_spot_exists_and_nearby_context_is_seen():
    model = small(num_blocks=4)
    grad = dependency_map(model, (14, 14))
    assert float(grad[13, 14]) > 0 and float(grad[14, 13]) > 0 and float(grad[11, 11]) > 0
    # above and to the right, within the receptive field's rows, some preceding pixels are never read
    assert float(grad[13, 20]) == 0.0 and bool(raster_predecessors((14, 14))[13, 20])


def test_nll_of_an_all_half_model_is_d_log_2():
    x = (torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    nll = bernoulli_nll(torch.zeros_like(x), x)
    torch.testing.assert_close(nll, torch.full((5,), 784 * math.log(2.0)))
    assert abs(784 * math.log(2.0) - 543.4273) < 1e-3


def test_exact_nll_is_the_sum_of_per_pixel_bce():
    model = small()
    x = (torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    with torch.no_grad():
        logits = model(x)
        by_hand = F.binary_cross_entropy_with_logits(logits, x, reduction="sum").item() / 6
    result = exact_nll(model, x, batch_size=4)
    assert result["nats"] == pytest.approx(by_hand, rel=1e-6)
    assert result["bits_per_dim"] == pytest.approx(by_hand / (784 * math.log(2.0)), rel=1e-6)


def test_chain_rule_normalises_on_tiny_images():
    """Summed over all 2^9 binary 3x3 images, p(x) = prod_i p(x_i | x_<i) is exactly 1."""
    model = small(image_shape=(1, 3, 3))
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).reshape(-1, 1, 3, 3)  # (512, 1, 3, 3)
    with torch.no_grad():
        log_p = -bernoulli_nll(model(every), every)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-5)


def test_sampler_shapes_seeded_binary_and_crop_is_exact():
    model = small(image_shape=(1, 8, 8))
    torch.nn.init.normal_(model.head[-1].weight, std=0.5)
    a = sample_autoregressive(model, 5, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    b = sample_autoregressive(model, 5, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    c = sample_autoregressive(model, 5, (1, 8, 8), generator=torch.Generator().manual_seed(1))
    full = sample_autoregressive(model, 5, (1, 8, 8), generator=torch.Generator().manual_seed(0), crop_rows=False)
    assert a.shape == (5, 1, 8, 8) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(a, full)
    assert model.training  # the mode is restored


def test_task_trains_samples_and_round_trips(tmp_path):
    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 0.5  # grey: binarized per batch
    task = PixelCNNTask(small(), lr=3e-3)
    trainer = Trainer(task, images, batch_size=16, progress=False)
    trainer.fit(steps=20, log_every=5)
    losses = trainer.history.metrics["loss"]
    assert losses[-1] < losses[0]
    assert trainer.history.metrics["bits_per_dim"][-1] == pytest.approx(losses[-1] / (784 * math.log(2)), rel=1e-5)
    path = trainer.save(tmp_path / "pixelcnn.pt")
    fresh = Trainer(PixelCNNTask(small(seed=1), lr=3e-3), images, batch_size=16, progress=False).load(path)
    for p, q in zip(task.model.parameters(), fresh.task.model.parameters()):
        assert torch.equal(p, q)
    x = (images > 0.25).float()
    assert exact_nll(task.model, x)["nats"] == exact_nll(fresh.task.model, x)["nats"]
    task.model.image_shape = (1, 6, 6)  # keep the sampler cheap: the network is fully convolutional
    s = task.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 6, 6) and set(s.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="unconditional"):
        task.sample(2, labels=1)


def test_clear_errors():
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        causal_mask(4, "A")
    grey = torch.full((2, 1, 28, 28), 0.5)
    with pytest.raises(ValueError, match="binarize"):
        bernoulli_nll(torch.zeros_like(grey), grey)
    with pytest.raises(ValueError, match="binarize"):
        exact_nll(small(), grey)
    with pytest.raises(ValueError, match="same shape"):
        bernoulli_nll(torch.zeros(2, 784), torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Trainer(PixelCNNTask(small()), grey * 3, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="binarize"):
        Trainer(PixelCNNTask(small(), binarize=False), grey, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="outside"):
        dependency_map(small(), (28, 0))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        small()(torch.zeros(2, 3, 28, 28))
