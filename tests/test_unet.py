"""The diffusion U-Net (genlab.models.unet): shapes, conditioning, errors, weights files."""

import pytest
import torch

from genlab.models.unet import UNet, load_unet_weights, save_unet_weights, timestep_embedding

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards

def small(**kwargs) -> UNet:
    torch.manual_seed(0)
    return UNet(base_channels=8, **kwargs)


def test_timestep_embedding_shape_and_values():
    emb = timestep_embedding(torch.tensor([0.0, 1.0, 500.0]), 8)
    assert emb.shape == (3, 8)
    assert torch.allclose(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos 0 = 1, sin 0 = 0
    assert torch.allclose(emb[1, 0], torch.cos(torch.tensor(1.0)))  # the first frequency is 1
    with pytest.raises(ValueError, match="even"):
        timestep_embedding(torch.zeros(2), 7)
    with pytest.raises(ValueError, match="1-D"):
        timestep_embedding(torch.zeros(2, 1), 8)


@pytest.mark.parametrize("kwargs", [{}, {"pixel_unshuffle": False, "channel_mults": (1, 2, 2)},
                                    {"num_res_blocks": 2, "attention": False}, {"num_classes": 10}])
def test_output_shape_and_zero_init(kwargs):
    model = small(**kwargs)
    x = torch.randn(3, 1, 28, 28)
    out = model(x, torch.tensor([1.0, 500.0, 1000.0]))
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # the output convolution starts at zero
    torch.nn.init.normal_(model.out.weight, std=0.1)
    out = model(x, torch.tensor([1.0, 500.0, 1000.0]))
    assert out.abs().sum() > 0 and torch.isfinite(out).all()


def test_time_and_labels_change_the_output():
    model = small(num_classes=10)
    torch.nn.init.normal_(model.out.weight, std=0.1)
    x = torch.randn(2, 1, 28, 28)
    t = torch.tensor([10.0, 10.0])
    base = model(x, t, torch.tensor([3, 3]))
    assert not torch.allclose(base, model(x, t + 400, torch.tensor([3, 3])))
    assert not torch.allclose(base, model(x, t, torch.tensor([4, 4])))
    # labels=None is the null label (index num_classes)
    assert torch.equal(model(x, t), model(x, t, torch.tensor([10, 10])))
    # a scalar time is broadcast over the batch
    assert torch.equal(model(x, 10.0, torch.tensor([3, 3])), base)


def test_clear_errors():
    model = small(num_classes=10)
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match="labels must lie in"):
        model(x, torch.ones(2), torch.tensor([0, 11]))
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        model(x, torch.ones(2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="one time per image"):
        model(x, torch.ones(3))
    with pytest.raises(ValueError, match="expected x of shape"):
        model(torch.randn(2, 28, 28), torch.ones(2))
    with pytest.raises(ValueError, match="unconditional"):
        small()(x, torch.ones(2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="divisible"):
        UNet(base_channels=8, channel_mults=(1, 2, 2))  # 28 -> 14 -> 7 -> 3.5
    with pytest.raises(ValueError, match="num_classes"):
        UNet(num_classes=1)


def test_weights_round_trip(tmp_path):
    model = small(num_classes=10)
    torch.nn.init.normal_(model.out.weight, std=0.1)
    path = save_unet_weights(model, tmp_path / "unet.pt", metadata={"steps": 7})
    loaded, metadata = load_unet_weights(path, device="cpu")
    assert metadata == {"steps": 7} and loaded.config == model.config and not loaded.training
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([5.0, 900.0]), torch.tensor([1, 2])
    torch.testing.assert_close(loaded(x, t, y), model(x, t, y), atol=2e-2, rtol=2e-2)  # float16 storage
    with pytest.raises(RuntimeError, match="not found"):
        load_unet_weights(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt"):
        load_unet_weights(tmp_path / "junk.pt")


def test_shipped_weights_match_their_card():
    import hashlib
    import json

    from genlab.models.unet import PRETRAINED_UNETS

    path = PRETRAINED_UNETS["mnist_flow"]
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["size_bytes"] == path.stat().st_size <= 3_000_000
    model, metadata = load_unet_weights(path, device="cpu")
    assert model.num_classes == 10 and metadata["steps"] == card["steps"]
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    assert all(p.dtype == torch.float32 for p in model.parameters())
