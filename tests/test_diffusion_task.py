"""DiffusionTask and FlowMatchingTask (genlab.tasks): training, EMA, guidance, sampling, checkpoints."""

import pytest
import torch

from genlab.diffusion import NoiseSchedule
from genlab.models.unet import UNet
from genlab.tasks import DiffusionTask, FlowMatchingTask
from genlab.training import Trainer

TASKS = [DiffusionTask, FlowMatchingTask]



pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards

def data(n: int = 64):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def make(task_cls, conditional=True, **kwargs):
    torch.manual_seed(0)
    model = UNet(base_channels=8, num_classes=10 if conditional else None)
    if task_cls is DiffusionTask:
        kwargs.setdefault("schedule", NoiseSchedule(100))
    return task_cls(model, **kwargs)


@pytest.mark.parametrize("task_cls", TASKS)
def test_training_lowers_the_loss_and_moves_the_ema(task_cls):
    task = make(task_cls, warmup_steps=0, lr=3e-3)
    trainer = Trainer(task, data(), batch_size=16, progress=False)
    trainer.fit(steps=30, log_every=10)
    losses = trainer.history.metrics["loss"]
    assert losses[-1] < losses[0]
    model, ema = task.models["model"], task.models["ema"]
    assert not any(p.requires_grad for p in ema.parameters())
    diff = [float((a - b).detach().abs().max()) for a, b in zip(model.parameters(), ema.parameters())]
    assert max(diff) > 0  # the average lags the weights
    assert float((ema.out.weight).abs().max()) > 0  # ... but has moved away from the zero init


def test_ema_update_is_the_stated_average():
    task = make(FlowMatchingTask, ema_decay=0.5, warmup_steps=0)
    before = [p.detach().clone() for p in task.ema.parameters()]
    task.training_step(data(8), step=100, generator=torch.Generator().manual_seed(0))
    for old, p_ema, p in zip(before, task.ema.parameters(), task.model.parameters()):
        torch.testing.assert_close(p_ema, 0.5 * old + 0.5 * p.detach())  # decay = min(0.5, 101/110)


def test_label_dropout_rate():
    task = make(FlowMatchingTask, label_dropout=0.25)
    labels = torch.zeros(20_000, dtype=torch.long)
    out = task._train_labels(labels, torch.Generator().manual_seed(0))
    assert abs(float((out == 10).float().mean()) - 0.25) < 0.01
    assert set(out.unique().tolist()) == {0, 10}
    assert make(FlowMatchingTask, conditional=False)._train_labels(labels, None) is None


@pytest.mark.parametrize("task_cls", TASKS)
def test_sampling_is_seeded_and_in_range(task_cls):
    task = make(task_cls)
    torch.nn.init.normal_(task.ema.out.weight, std=0.05)
    a = task.sample(4, labels=3, steps=4, guidance=1.5, generator=torch.Generator().manual_seed(1))
    b = task.sample(4, labels=3, steps=4, guidance=1.5, generator=torch.Generator().manual_seed(1))
    c = task.sample(4, labels=3, steps=4, guidance=1.5, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    # use_ema=False samples with the (zero-initialised, untouched) raw network instead
    assert not torch.equal(a, task.sample(4, labels=3, steps=4, guidance=1.5, use_ema=False,
                                          generator=torch.Generator().manual_seed(1)))


def test_guidance_zero_is_the_conditional_model_and_w_mixes():
    task = make(FlowMatchingTask)
    net = task.network()
    torch.nn.init.normal_(net.out.weight, std=0.05)
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([0.1, 0.5, 0.9]), torch.tensor([1, 2, 3])
    cond, uncond = net(x, t * 1000, y), net(x, t * 1000)
    torch.testing.assert_close(task.guided(net, y, 0.0, time_scale=1000)(x, t), cond)
    torch.testing.assert_close(task.guided(net, y, 2.0, time_scale=1000)(x, t), 3 * cond - 2 * uncond,
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("task_cls", TASKS)
def test_checkpoint_round_trip_resumes_bit_identically(task_cls, tmp_path):
    images, labels = data()
    straight = Trainer(make(task_cls), (images, labels), batch_size=16, progress=False)
    straight.fit(steps=6)
    first = Trainer(make(task_cls), (images, labels), batch_size=16, progress=False)
    first.fit(steps=3)
    first.save(tmp_path / "run.pt")
    resumed = Trainer(make(task_cls), (images, labels), batch_size=16, progress=False).load(tmp_path / "run.pt")
    resumed.fit(steps=3)
    for name in ("model", "ema"):
        for a, b in zip(straight.task.models[name].parameters(), resumed.task.models[name].parameters()):
            assert torch.equal(a, b)


def test_clear_errors():
    images, labels = data()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Trainer(make(DiffusionTask), (images * 2 - 1, labels), batch_size=16)
    with pytest.raises(ValueError, match="no labels"):
        Trainer(make(FlowMatchingTask), images, batch_size=16)
    task = make(DiffusionTask)
    with pytest.raises(ValueError, match="unknown sampler"):
        task.sample(2, sampler="euler")
    with pytest.raises(ValueError, match="unknown sampler"):
        make(FlowMatchingTask).sample(2, sampler="ddim")
    with pytest.raises(ValueError, match="guidance needs a class-conditional"):
        make(FlowMatchingTask, conditional=False).sample(2, steps=2, guidance=1.0)
    with pytest.raises(ValueError, match="unconditional"):
        make(FlowMatchingTask, conditional=False).sample(2, labels=1, steps=2)
    with pytest.raises(ValueError, match="ema_decay"):
        make(FlowMatchingTask, ema_decay=1.0)
    with pytest.raises(ValueError, match="label_dropout"):
        make(FlowMatchingTask, label_dropout=1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        make(DiffusionTask, schedule=NoiseSchedule(10, kind="quadratic"))


def test_training_script_writes_weights_and_card(tmp_path, mnist_test):
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_diffusion.py"
    spec = importlib.util.spec_from_file_location("train_diffusion", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "unet.pt"
    try:
        module.main(["--steps", "2", "--batch-size", "8", "--base-channels", "8", "--checkpoint",
                     str(tmp_path / "ck.pt"), "--checkpoint-every", "1", "--sample-steps", "1", "--guidance", "0,1",
                     "--out", str(out)])
    finally:
        torch.set_flush_denormal(False)  # the script turns it on for the whole process
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 2 and [r["guidance"] for r in card["evaluation"]["rows"]] == [0.0, 1.0]
    assert card["command"].startswith("python scripts/train_diffusion.py --steps 2 ")
    assert out.with_suffix(".md").exists() and (tmp_path / "ck.pt").exists()
