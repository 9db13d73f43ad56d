"""Tests for genlab.checkpoint: atomic writes, weights_only contents, RNG round trips, clear errors."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import genlab
from genlab.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    load_model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def small_model(width: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 1))


def test_round_trip_loads_with_weights_only(tmp_path):
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.ones(4, 2)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "sub" / "ckpt.pt", models={"m": model.state_dict()},
                           optimizers={"m": optimizer.state_dict()}, step=7, history={"loss": [1.0, 0.5]})
    raw = torch.load(path, weights_only=True)  # plain contents: no pickled classes
    assert raw["format_version"] == FORMAT_VERSION and raw["genlab_version"] == genlab.__version__
    state = load_checkpoint(path)
    assert state["step"] == 7 and state["history"] == {"loss": [1.0, 0.5]}
    fresh = small_model(3)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    load_model_state(fresh, state["models"]["m"])
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    again = torch.optim.Adam(fresh.parameters())
    again.load_state_dict(state["optimizers"]["m"])
    assert int(again.state_dict()["state"][0]["step"]) == 1


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, step=1)
    real_save = torch.save

    def crash_midway(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)
        file.seek(0)
        file.truncate(40)  # half a file on disk, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, step=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def test_corrupt_or_foreign_files_raise_checkpoint_error(tmp_path):
    path = save_checkpoint(tmp_path / "good.pt", models={"m": small_model().state_dict()})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=rf"{truncated.name} is a damaged genlab checkpoint.*delete"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match=rf"{garbage.name} is not a genlab checkpoint") as info:
        load_checkpoint(garbage)
    assert "delete" not in str(info.value) and "another path" in str(info.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a genlab checkpoint"):
        load_checkpoint(foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "genlab-checkpoint", "model": small_model()}, pickled)  # a whole module: code
    with pytest.raises(CheckpointError, match="Unsupported global"):
        load_checkpoint(pickled)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format": "genlab-checkpoint", "format_version": FORMAT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(path)


def test_mismatched_model_names_the_parameter(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", models={"m": small_model(3).state_dict()})
    state = load_checkpoint(path)["models"]["m"]
    with pytest.raises(CheckpointError, match=r"0\.weight: checkpoint \(3, 2\) vs model \(5, 2\)") as info:
        load_model_state(small_model(5), state, name="generator")
    assert "generator" in str(info.value) and "2.weight" in str(info.value)
    with pytest.raises(CheckpointError, match=r"missing keys \['3.bias', '3.weight'\]"):
        load_model_state(nn.Sequential(*small_model(3), nn.Linear(1, 1)), state)


def test_unsafe_values_are_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match=r"state\['history'\]\['x'\] is a numpy.ndarray"):
        save_checkpoint(tmp_path / "a.pt", history={"x": np.zeros(3)})
    with pytest.raises(ValueError, match="format_version"):
        save_checkpoint(tmp_path / "a.pt", format_version=3)
    assert not list(tmp_path.iterdir())


def test_rng_state_round_trip_through_a_file(tmp_path):
    generator = torch.Generator().manual_seed(3)
    random.gauss(0, 1)  # leave a cached Gaussian in Python's state
    save_checkpoint(tmp_path / "rng.pt", rng=rng_state({"trainer": generator}))

    def draw():
        return (torch.rand(3), np.random.rand(3), random.random(), random.gauss(0, 1),
                torch.rand(3, generator=generator))

    first = draw()
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"], {"trainer": generator})
    second = draw()
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2:4] == second[2:4] and torch.equal(first[4], second[4])
    with pytest.raises(CheckpointError, match="'other'"):
        set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"], {"other": generator})


def test_errors_keep_pytorchs_whole_reason_and_advise_deleting_only_genlab_files(tmp_path):
    path = save_checkpoint(tmp_path / "good.pt", models={"m": small_model().state_dict()})
    tenth = tmp_path / "tenth.pt"  # PyTorch's reason here is three sentences long
    tenth.write_bytes(path.read_bytes()[: path.stat().st_size // 10])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tenth)
    message = str(info.value)
    reason = message.split("PyTorch's reason: ", 1)[1]
    assert "delete the file and train again" in message and reason.startswith("RuntimeError: ")
    assert reason.endswith(("after saving", "central directory"))  # not cut mid-sentence
    pickled = tmp_path / "pickled.pt"
    torch.save({"model": small_model()}, pickled)
    with pytest.raises(CheckpointError, match=r"not a genlab checkpoint: it stores Python objects") as info:
        load_checkpoint(pickled)
    message = str(info.value)
    assert "was not an allowed global by default" in message and "delete" not in message
    assert "add_safe_globals" not in message and "\x1b" not in message  # no advice to allowlist, no colours
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt is not a genlab checkpoint \(0 bytes"):
        load_checkpoint(empty)
