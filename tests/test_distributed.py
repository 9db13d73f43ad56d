"""Tests for data-parallel training (genlab.distributed, the Trainer under torchrun, genlab.train).

The process tests launch real processes with ``python -m torch.distributed.run --nproc_per_node=2``
(gloo on CPU, a free MASTER_PORT): the ``genlab.train`` command, and this file run as a script
(``worker``), whose results the tests compare with one process. See: book/04_practice/distributed.ipynb.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from genlab.checkpoint import CheckpointError, load_checkpoint
from genlab.distributed import ShardedNoise, shard_slice
from genlab.tasks import GANTask, LanguageModelTask, VAETask
from genlab.training import Trainer, _Sampler

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- tiny models and runs


class ToyGenerator(nn.Module):
    """z (B, 4) [+ label] -> a 2-D point."""

    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = 4, num_classes
        self.embed = nn.Embedding(num_classes, 4) if num_classes else None
        self.net = nn.Sequential(nn.Linear(8 if num_classes else 4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, z, labels=None):
        return self.net(z if self.embed is None else torch.cat([z, self.embed(labels)], dim=1))


class ToyDiscriminator(nn.Module):
    """A 2-D point [+ label] -> one logit per example (B,)."""

    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, 4) if num_classes else None
        self.net = nn.Sequential(nn.Linear(6 if num_classes else 2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, x, labels=None):
        return self.net(x if self.embed is None else torch.cat([x, self.embed(labels)], dim=1)).view(-1)


class TinyVAE(nn.Module):
    """An MLP VAE on (B, 1, 4, 4) images: encode / decode / likelihood, as genlab.losses.elbo calls them."""

    likelihood = "bernoulli"

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = 2, None
        self.enc, self.dec = nn.Linear(16, 4), nn.Linear(2, 16)

    def encode(self, x, labels=None):
        mu, logvar = self.enc(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z, labels=None):
        return self.dec(z).view(-1, 1, 4, 4)


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.block_size, self.emb, self.out = 8, nn.Embedding(vocab, 8), nn.Linear(8, vocab)

    def forward(self, idx):
        return self.out(torch.tanh(self.emb(idx)))  # (B, T, V)


def _points(n: int = 256, labels: bool = False):
    g = torch.Generator().manual_seed(1)
    angle = torch.randint(8, (n,), generator=g)
    x = torch.stack([torch.cos(angle * 0.785), torch.sin(angle * 0.785)], 1) + 0.02 * torch.randn(n, 2, generator=g)
    return (x, angle % 3) if labels else x


def build_run(kind: str):
    """(task, data, global batch) of a small run, built identically in every process."""
    torch.manual_seed(0)
    if kind == "gan":
        return GANTask(ToyGenerator(), ToyDiscriminator(), lr=1e-3), _points(), 32
    if kind == "wgan_gp":
        task = GANTask(ToyGenerator(3), ToyDiscriminator(3), loss="wasserstein", gp_weight=10.0, n_critic=2,
                       lr=1e-3, betas=(0.5, 0.9))
        return task, _points(labels=True), 32
    if kind == "vae":
        images = torch.rand(200, 1, 4, 4, generator=torch.Generator().manual_seed(2))
        return VAETask(TinyVAE(), lr=1e-2, binarize=True), images, 32
    if kind == "lm":
        ids = torch.randint(11, (500,), generator=torch.Generator().manual_seed(3))
        return LanguageModelTask(TinyLM(), lr=1e-2, block_size=8), ids, 16
    if kind == "diffusion":
        from genlab.models.unet import UNet
        from genlab.tasks import DiffusionTask

        images = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(4))
        # 16 channels: with 8, each GroupNorm group is one channel and erases the per-channel time
        # conditioning, whose gradient is then 0 up to rounding, which Adam turns into full-size steps
        model = UNet(base_channels=16, channel_mults=(1,), num_res_blocks=1, attention=False, num_classes=3,
                     image_size=8)
        return DiffusionTask(model, warmup_steps=5), (images, torch.arange(64) % 3), 16
    raise ValueError(kind)


def _diffusion_available() -> bool:
    import genlab.tasks

    try:
        import genlab.models.unet  # noqa: F401
    except ImportError:
        return False
    return hasattr(genlab.tasks, "DiffusionTask")


KINDS = ["gan", "wgan_gp", "vae", "lm"] + (["diffusion"] if _diffusion_available() else [])


def train_run(kind: str, steps: int = 20, **kwargs) -> Trainer:
    task, data, batch = build_run(kind)
    trainer = Trainer(task, data=data, batch_size=batch, seed=0, device="cpu", **{"progress": False, **kwargs})
    trainer.fit(steps=steps, log_every=5)
    return trainer


def max_difference(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENLAB_DEVICE": "cpu", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


# --------------------------------------------------------------------------- in one process


def test_shard_slice_splits_the_global_batch_and_names_the_fix():
    assert [shard_slice(128, r, 2) for r in (0, 1)] == [slice(0, 64), slice(64, 128)]
    with pytest.raises(ValueError, match=r"batch_size=63 is the global batch.*world size 2.*batch_size=62"):
        shard_slice(63, 0, 2)


def test_sharded_noise_is_each_ranks_slice_of_the_global_draw():
    def draws(generator):
        return [torch.randn((4, 3), generator=generator), torch.rand(4, generator=generator),
                torch.randint(10, (4, 2), generator=generator), torch.randn(4, 5, generator=generator),
                torch.bernoulli(torch.full((4, 6), 0.5), generator=generator),
                torch.randn(7, generator=generator)]  # not per-example: the same on every rank

    g = torch.Generator().manual_seed(0)  # one process with the global batch of 8
    expected = [torch.randn((8, 3), generator=g), torch.rand(8, generator=g), torch.randint(10, (8, 2), generator=g),
                torch.randn(8, 5, generator=g), torch.bernoulli(torch.full((8, 6), 0.5), generator=g),
                torch.randn(7, generator=g)]
    final_state = g.get_state()
    shards = []
    for rank in (0, 1):
        g = torch.Generator().manual_seed(0)
        with ShardedNoise(g, rank, 2, local_batch=4):
            shards.append(draws(g))
        assert torch.equal(g.get_state(), final_state)  # every rank consumes the generator as one process does
    for i, full in enumerate(expected[:-1]):
        assert torch.equal(torch.cat([shards[0][i], shards[1][i]]), full), i
    assert torch.equal(shards[0][-1], expected[-1]) and torch.equal(shards[1][-1], expected[-1])


@pytest.mark.parametrize("tokens", [False, True])
def test_sampler_shards_concatenate_to_the_one_process_batch(tokens):
    data = (torch.arange(300), None) if tokens else (torch.arange(100.0).view(100, 1), torch.arange(100))

    def batches(rank, world):
        sampler = _Sampler(data, 8, torch.Generator().manual_seed(0), 5 if tokens else None, False, rank, world)
        return [sampler.next(2)[0] for _ in range(20)]  # 2 minibatches per step, across several epochs

    one, (r0, r1) = batches(0, 1), (batches(0, 2), batches(1, 2))
    for full, a, b in zip(one, r0, r1):
        merged = torch.stack([torch.cat([x, y]) for x, y in zip(a.chunk(2), b.chunk(2))])  # per minibatch
        assert torch.equal(merged.flatten(0, 1), full)


def test_models_replaced_swaps_the_attributes_and_restores_them():
    task, _, _ = build_run("gan")
    generator, sentinel = task.generator, object()
    assert set(task.trainable_models()) == {"generator", "discriminator"}
    with task.models_replaced({"generator": sentinel}):
        assert task.generator is sentinel and task.models["generator"] is generator
    assert task.generator is generator
    del task.generator
    with pytest.raises(ValueError, match="keeps its model 'generator' in no attribute"):
        with task.models_replaced({"generator": sentinel}):
            pass


# --------------------------------------------------------------------------- with processes


def test_train_command_two_processes_match_one_for_a_vae(tmp_path):
    """The issue's check: 2 x 64 examples per step = 1 x 128, after 20 steps, to 1e-5."""
    from genlab.train import main

    common = ["vae", "--steps", "20", "--batch-size", "128", "--profile", "quick", "--log-every", "10"]
    result = torchrun("-m", "genlab.train", *common, "--out", str(tmp_path / "two" / "vae.pt"))
    with contextlib.redirect_stdout(None):
        assert main([*common, "--out", str(tmp_path / "one" / "vae.pt")]) == 0
    two, one = (load_checkpoint(tmp_path / d / "vae.pt") for d in ("two", "one"))
    assert (two["world_size"], one["world_size"], two["step"]) == (2, 1, 20)
    difference = max_difference(two["models"]["vae"], one["models"]["vae"])
    print(f"VAE, 20 steps: max |2 processes - 1 process| = {difference:.2e}")
    assert difference < 1e-5
    assert two["sampler"]["position"] == one["sampler"]["position"] == 20 * 128
    assert two["history"]["metrics"]["loss"] == pytest.approx(one["history"]["metrics"]["loss"], rel=1e-5)
    assert result.stdout.count("genlab.train vae: step 20") == 1  # rank 0 prints, rank 1 does not
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["vae.pt"]  # no temporary file left behind


@pytest.fixture(scope="module")
def worker_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    torchrun(str(Path(__file__)), "worker", str(folder), timeout=180)
    return folder, json.loads((folder / "results.json").read_text())


def test_gan_under_two_processes_checkpoints_on_rank_0_and_resumes_bit_identically(worker_results):
    folder, results = worker_results
    assert results["saves_per_rank"] == [4, 0]  # checkpoint_every=5 up to 10, the end, the resumed end
    assert results["resumed_equals_straight"] is True
    assert results["ranks_agree"] is True
    out0, out1 = ((folder / f"rank{r}.out").read_text() for r in (0, 1))
    assert "resumed from" in out0 and out1 == ""  # messages and progress bars on rank 0 only
    assert "GANTask" in (folder / "rank0.err").read_text() and "GANTask" not in (folder / "rank1.err").read_text()


def test_batch_not_divisible_by_the_world_size_is_a_clear_error(worker_results):
    _, results = worker_results
    assert "batch_size=31 is the global batch and must be divisible by the world size 2" in results["error"]
    assert results["sync_batchnorm_error"].startswith("sync_batchnorm=True needs CUDA devices")


@pytest.mark.parametrize("kind", KINDS)
def test_every_task_under_two_processes_matches_one_process(worker_results, kind):
    folder, _ = worker_results
    two = load_checkpoint(folder / f"{kind}.pt")
    one = train_run(kind)
    for name, state in two["models"].items():
        difference = max_difference(state, one.task.models[name].state_dict())
        assert difference < 1e-5, (kind, name, difference)
    assert two["history"]["metrics"].keys() == one.history.metrics.keys()


def test_a_two_process_run_loads_in_one_process_but_resumes_only_at_its_world_size(worker_results):
    folder, _ = worker_results
    task, data, batch = build_run("gan")
    trainer = Trainer(task, data=data, batch_size=batch, seed=0, device="cpu", progress=False)
    with contextlib.redirect_stdout(None):
        assert trainer.fit_or_load(20, folder / "gan.pt") is True  # a finished run: loaded for reading
    assert trainer.resumed_world_size == 2
    with pytest.raises(CheckpointError, match=r"trained by 2 process\(es\) up to step 20.*runs in 1"):
        trainer.fit(steps=1)
    trainer.resumed_world_size = None  # the documented way to continue anyway
    trainer.fit(steps=1)
    assert trainer.step == 21


def test_the_command_writes_what_a_chapters_train_or_load_loads(tmp_path, monkeypatch, capsys):
    from genlab import book_runs
    from genlab.runtime import get_profile
    from genlab.train import main

    monkeypatch.setenv("GENLAB_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("GENLAB_DEVICE", "cpu")
    assert main(["dcgan", "--profile", "quick", "--log-every", "10"]) == 0  # default --out: dcgan-quick.pt
    written = load_checkpoint(tmp_path / "dcgan-quick.pt")
    trainer = book_runs.dcgan(profile=get_profile("quick"))
    assert "genlab: loaded dcgan-quick.pt" in capsys.readouterr().out  # loaded, not trained again
    assert trainer.step == written["step"] == book_runs.dcgan_steps(get_profile("quick"))
    assert trainer.train_seconds == written["train_seconds"]


def test_train_help_documents_every_recipe():
    from genlab.train import RECIPES, _parser

    text = _parser().format_help()
    for name in ["vae", "conv_vae", "dcgan", "cgan", "wgan_gp", "char_transformer", *RECIPES]:
        assert f"  {name} " in text, name
    for option in ["--steps", "--batch-size", "--profile", "--out", "--seed", "--resume"]:
        assert option in text


# --------------------------------------------------------------------------- the worker (torchrun runs this file)


def _worker(folder: Path) -> None:
    import torch.distributed as dist

    import genlab.training

    rank = int(os.environ["RANK"])
    saves = []
    real_save = genlab.training.save_checkpoint
    genlab.training.save_checkpoint = lambda *a, **k: (saves.append(1), real_save(*a, **k))[1]
    results = {}
    out = open(folder / f"rank{rank}.out", "w")  # noqa: SIM115
    err = open(folder / f"rank{rank}.err", "w")  # noqa: SIM115
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        straight = train_run("gan", progress=True)
        straight.save(folder / "gan.pt")
        saves.clear()
        task, data, batch = build_run("gan")
        first = Trainer(task, data=data, batch_size=batch, seed=0, progress=True)
        first.fit(steps=10, log_every=5, checkpoint_path=folder / "resume.pt", checkpoint_every=5)
        task, data, batch = build_run("gan")
        resumed = Trainer(task, data=data, batch_size=batch, seed=0, progress=True)
        resumed.fit(steps=20, log_every=5, checkpoint_path=folder / "resume.pt")
    counts = [torch.zeros(2, dtype=torch.long) for _ in range(2)]
    dist.all_gather(counts, torch.tensor([rank, len(saves)]))
    results["saves_per_rank"] = [int(c[1]) for c in sorted(counts, key=lambda c: int(c[0]))]
    results["resumed_equals_straight"] = all(
        torch.equal(a, b) for name in ("generator", "discriminator")
        for a, b in zip(straight.task.models[name].state_dict().values(),
                        resumed.task.models[name].state_dict().values()))
    flat = torch.cat([p.detach().flatten() for p in straight.task.models["discriminator"].parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(2)]
    dist.all_gather(gathered, flat)
    results["ranks_agree"] = torch.equal(gathered[0], gathered[1])
    try:
        task, data, _ = build_run("gan")
        Trainer(task, data=data, batch_size=31, seed=0, progress=False)
        results["error"] = "no error"
    except ValueError as error:
        results["error"] = str(error)
    try:
        task, data, batch = build_run("gan")
        Trainer(task, data=data, batch_size=batch, seed=0, progress=False, sync_batchnorm=True)
        results["sync_batchnorm_error"] = "no error"
    except ValueError as error:
        results["sync_batchnorm_error"] = str(error)
    for kind in KINDS:
        if kind != "gan":
            train_run(kind).save(folder / f"{kind}.pt")
    if rank == 0:
        (folder / "results.json").write_text(json.dumps(results))


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    torch.set_num_threads(1)
    _worker(Path(sys.argv[2]))
