import pytest
import torch

import genlab
from genlab.runtime import Profile, get_device, get_profile, seed_everything


def test_profile_pick_and_validation():
    assert Profile("quick").pick(quick=1, standard=2, full=3) == 1
    assert Profile("full").pick(quick=1, standard=2, full=3) == 3
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        Profile("fast")


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("GENLAB_PROFILE", "standard")
    assert get_profile().name == "standard"
    monkeypatch.setenv("GENLAB_PROFILE", "Quick")
    assert get_profile().name == "quick"
    monkeypatch.delenv("GENLAB_PROFILE")
    expected = "full" if torch.cuda.is_available() else "standard"
    assert get_profile().name == expected
    assert get_profile("full").name == "full"


def test_device_choice(monkeypatch):
    monkeypatch.delenv("GENLAB_DEVICE", raising=False)
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("GENLAB_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_request_without_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        get_device("cuda")


def test_seed_everything_is_reproducible():
    seed_everything(123)
    a = torch.randn(5)
    g = seed_everything(123)
    b = torch.randn(5)
    assert torch.equal(a, b)
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=torch.Generator().manual_seed(123)))
    with pytest.raises(ValueError):
        seed_everything(-1)


def test_top_level_api():
    assert genlab.__version__
    assert callable(genlab.get_device) and callable(genlab.seed_everything)


def test_eval_mode_restores_the_previous_mode_even_after_an_error():
    from genlab.runtime import eval_mode
    model = torch.nn.Sequential(torch.nn.Dropout(0.5))
    with eval_mode(model):
        assert not model.training and not model[0].training
    assert model.training and model[0].training
    model.eval()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert not model.training  # it was in eval mode before, and stays there
    model.train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert model.training


def test_warn_points_at_the_callers_line_and_hides_notebook_temp_files(tmp_path):
    import warnings

    from genlab.runtime import _is_notebook_cell, warn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn("a message", RuntimeWarning)
    assert caught[0].filename == __file__ and caught[0].category is RuntimeWarning
    # a cell that IPython ran from its temporary file
    cell = tmp_path / "ipykernel_4242" / "123456.py"
    cell.parent.mkdir()
    cell.write_text("from genlab.runtime import warn\nwarn('from a cell', UserWarning)\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(cell.read_text(), str(cell), "exec"), {"__name__": "__main__"})
    assert caught[0].filename == "notebook cell" and caught[0].lineno == 2
    assert _is_notebook_cell("<ipython-input-3-abc>") and not _is_notebook_cell("/home/me/train.py")
