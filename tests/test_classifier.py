"""Tests for genlab.classifier and the classifier training script."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from genlab.classifier import (
    CLASSIFIER_WEIGHTS,
    ClassifierWeightsError,
    MNISTClassifier,
    load_classifier,
    load_classifier_weights,
    save_classifier_weights,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_classifier.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_classifier", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MNISTClassifier().eval()


def test_shapes_and_forward_is_head_of_features(model):
    x = torch.rand(5, 1, 28, 28)
    features = model.features(x)
    assert features.shape == (5, 128) and (features >= 0).all()  # ReLU activations
    logits = model(x)
    assert logits.shape == (5, 10)
    torch.testing.assert_close(logits, model.head(features))


def test_bad_input_is_rejected_with_advice(model):
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\).*\(5, 784\)"):
        model(torch.rand(5, 784))
    with pytest.raises(ValueError, match="to_unit_range"):
        model(torch.rand(5, 1, 28, 28) * 2 - 1)  # tanh-range images
    with pytest.raises(ValueError, match="255"):
        model(torch.rand(5, 1, 28, 28) * 255)
    bad = torch.rand(5, 1, 28, 28)
    bad[2, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(bad)
    with pytest.raises(ValueError, match="dropout"):
        MNISTClassifier(dropout=1.0)


def test_initialisation_is_seeded_and_gradients_reach_every_parameter():
    torch.manual_seed(1)
    first = MNISTClassifier()
    torch.manual_seed(1)
    second = MNISTClassifier()
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    torch.nn.functional.cross_entropy(first.train()(x), y).backward()
    for name, parameter in first.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_float16_weights_round_trip(model, tmp_path):
    path = save_classifier_weights(model, tmp_path / "clf.pt", metadata={"seed": 0})
    assert path.stat().st_size < 1_000_000
    assert not list(tmp_path.glob("*.part"))  # the temporary file of the atomic write is gone
    loaded = load_classifier_weights(path)
    assert not loaded.training
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in loaded.parameters())
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    # float16 storage: relative error ~1e-3 per weight, far below any metric's sampling noise.
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=2e-2)
    assert torch.equal(loaded(x).argmax(1), model(x).argmax(1))


def test_missing_or_corrupt_weights_say_how_to_regenerate(model, tmp_path):
    with pytest.raises(ClassifierWeightsError, match="not found.*scripts/train_classifier.py"):
        load_classifier_weights(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ClassifierWeightsError, match="corrupt.*scripts/train_classifier.py"):
        load_classifier_weights(garbage)
    good = save_classifier_weights(model, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ClassifierWeightsError, match="scripts/train_classifier.py"):
        load_classifier_weights(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(ClassifierWeightsError, match="not a genlab classifier"):
        load_classifier_weights(foreign)
    payload = torch.load(good, weights_only=True)
    payload["config"]["feature_dim"] = 64  # weights no longer fit the architecture
    mismatched = tmp_path / "mismatched.pt"
    torch.save(payload, mismatched)
    with pytest.raises(ClassifierWeightsError, match="do not match"):
        load_classifier_weights(mismatched)


def test_load_classifier_validates_name():
    with pytest.raises(ValueError, match="unknown classifier 'cifar'"):
        load_classifier("cifar")


# --- the training script -------------------------------------------------------------------------


def test_affine_matrices_shift_and_rotate_as_documented(script):
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 10, 12] = 1.0
    zero, one = torch.zeros(1), torch.ones(1)
    identity = script.apply_affine(image, script.affine_matrices(zero, one, torch.zeros(1, 2)))
    torch.testing.assert_close(identity, image, rtol=0, atol=1e-6)
    shifted = script.apply_affine(image, script.affine_matrices(zero, one, torch.tensor([[2.0, -1.0]])))
    torch.testing.assert_close(shifted[0, 0, 9, 14], torch.tensor(1.0), rtol=0, atol=1e-5)  # 2 px right, 1 up
    torch.testing.assert_close(shifted.sum(), torch.tensor(1.0), rtol=0, atol=1e-5)
    quarter = script.apply_affine(image, script.affine_matrices(torch.tensor([math.pi / 2]), one, torch.zeros(1, 2)))
    torch.testing.assert_close(quarter, torch.rot90(image, 1, dims=(2, 3)), rtol=0, atol=1e-5)


def test_augmentation_and_training_are_deterministic_under_a_seed(script):
    images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    labels = torch.arange(32) % 10
    a = script.random_affine(images, torch.Generator().manual_seed(4))
    b = script.random_affine(images, torch.Generator().manual_seed(4))
    c = script.random_affine(images, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)

    def run() -> dict:
        torch.manual_seed(6)
        model = MNISTClassifier()
        script.train(model, images, labels, epochs=1, seed=7, batch_size=16, log=lambda _: None)
        return model.state_dict()

    first, second = run(), run()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


# --- the shipped weights -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    if not CLASSIFIER_WEIGHTS["mnist"].exists():
        pytest.skip("classifier weights not found: run python scripts/train_classifier.py")
    return load_classifier()


def test_shipped_weights_are_small_cached_and_carry_a_card(shipped):
    path = CLASSIFIER_WEIGHTS["mnist"]
    assert path.stat().st_size < 1_000_000
    assert load_classifier() is shipped and load_classifier("mnist", "cpu") is shipped
    card = json.loads(path.with_suffix(".json").read_text())
    for key in ("test_accuracy", "train_images", "train_source", "epochs", "seed", "torch_version", "date",
                "command"):
        assert key in card, key
    assert "t10k" not in card["train_source"]  # never trained on the test split


def test_shipped_classifier_accuracy_on_test_digits(shipped, mnist_test):
    images, labels = mnist_test.images[:2000], mnist_test.labels[:2000]
    with torch.no_grad():
        accuracy = (shipped(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.97
