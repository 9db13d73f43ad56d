"""Tests for genlab.training with tiny models that satisfy the engine contract (CPU, a few seconds)."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch
from torch import nn

from genlab.checkpoint import CheckpointError
from genlab.data import ring8
from genlab.training import (
    Evaluate,
    GANTask,
    History,
    LanguageModelTask,
    SampleGrid,
    Trainer,
    TrainingDivergedError,
    VAETask,
    cuda_options,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(autouse=True)
def on_cpu(monkeypatch):
    """Trainers default to CUDA when there is one; these tests compare with CPU tensors (the CUDA
    test at the end asks for its device explicitly)."""
    monkeypatch.setenv("GENLAB_DEVICE", "cpu")

# --------------------------------------------------------------------------- tiny contract models


class ToyGenerator(nn.Module):
    """z (B, 4) [+ label] -> a 2-D point."""

    def __init__(self, latent_dim: int = 4, num_classes: int | None = None, width: int = 16) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.embed = nn.Embedding(num_classes, 4) if num_classes else None
        self.net = nn.Sequential(nn.Linear(latent_dim + (4 if num_classes else 0), width), nn.ReLU(),
                                 nn.Linear(width, 2))

    def forward(self, z, labels=None):
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z)  # (B, 2)


class ToyDiscriminator(nn.Module):
    """A 2-D point [+ label] -> one raw logit per example, (B,)."""

    def __init__(self, num_classes: int | None = None, width: int = 16) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, 4) if num_classes else None
        self.net = nn.Sequential(nn.Linear(2 + (4 if num_classes else 0), width), nn.LeakyReLU(0.2),
                                 nn.Linear(width, 1))
        self.seen_labels: list = []

    def forward(self, x, labels=None):
        if self.embed is not None:
            self.seen_labels.append(labels)
            x = torch.cat([x, self.embed(labels)], dim=1)
        return self.net(x).view(-1)


class TinyVAE(nn.Module):
    """An MLP VAE on (B, 1, 4, 4) images with a Bernoulli decoder."""

    def __init__(self, latent_dim: int = 2, width: int = 16) -> None:
        super().__init__()
        self.latent_dim, self.likelihood, self.num_classes = latent_dim, "bernoulli", None
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(16, width), nn.ReLU(), nn.Linear(width, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, 16))

    def encode(self, x, labels=None):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z, labels=None):
        return self.decoder(z).view(-1, 1, 4, 4)  # Bernoulli logits

    def sample(self, n, labels=None, generator=None):
        z = torch.randn(n, self.latent_dim, generator=generator)
        return torch.sigmoid(self.decode(z))


class Bigram(nn.Module):
    """Embedding + linear: logits for the next token from the current one."""

    block_size = None

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 8)
        self.head = nn.Linear(8, vocab_size)

    def forward(self, idx):
        return self.head(self.embed(idx))  # (B, T, V)


def toy_points(n: int = 64) -> torch.Tensor:
    return ring8().sample(n, generator=torch.Generator().manual_seed(1))


def gan_task(seed: int = 0, **kwargs) -> GANTask:
    torch.manual_seed(seed)
    num_classes = kwargs.pop("num_classes", None)
    return GANTask(ToyGenerator(num_classes=num_classes), ToyDiscriminator(num_classes=num_classes), **kwargs)


def vae_task(seed: int = 0, **kwargs) -> VAETask:
    torch.manual_seed(seed)
    return VAETask(TinyVAE(), **kwargs)


def vae_images(n: int = 48) -> torch.Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(2))


def params(task) -> list[torch.Tensor]:
    return [p.detach().clone() for m in task.models.values() for p in m.parameters()]


def assert_same_run(a: Trainer, b: Trainer) -> None:
    assert a.step == b.step
    for pa, pb in zip(params(a.task), params(b.task)):
        assert torch.equal(pa, pb)
    assert a.history.steps == b.history.steps
    assert a.history.metrics == b.history.metrics


# --------------------------------------------------------------------------- resuming


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_resume_is_bit_identical(kind, tmp_path):
    """2N steps in one go == N steps, save, a brand-new Trainer and task, load, N more steps."""
    if kind == "gan":
        make, data = (lambda: gan_task(n_critic=2)), toy_points(80)
    else:
        make, data = (lambda: vae_task(binarize=True, kl_warmup_steps=8)), vae_images(80)
    n = 6  # a multiple of log_every, so the history rows coincide; 80 examples: N steps end mid-epoch
    straight = Trainer(make(), data, batch_size=16, progress=False)
    straight.fit(steps=2 * n, log_every=3)

    first = Trainer(make(), data, batch_size=16, progress=False)
    first.fit(steps=n, log_every=3)
    first.save(tmp_path / "run.pt")
    torch.manual_seed(123)  # the global RNG is part of the checkpoint, disturbing it must not matter
    resumed = Trainer(make(), data, batch_size=16, progress=False).load(tmp_path / "run.pt")
    assert resumed.step == n
    resumed.fit(steps=n, log_every=3)
    assert_same_run(straight, resumed)


def test_fit_with_checkpoint_path_finishes_an_interrupted_run(tmp_path):
    path = tmp_path / "gan.pt"
    straight = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    straight.fit(steps=8, log_every=2)

    interrupted = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    interrupted.fit(steps=3, log_every=2, checkpoint_path=path, checkpoint_every=3)  # a row at step 3 too
    rerun = Trainer(gan_task(seed=5), toy_points(), batch_size=16, progress=False)
    rerun.fit(steps=8, log_every=2, checkpoint_path=path)  # "re-running the cell": 5 more steps
    assert rerun.step == 8
    for pa, pb in zip(params(straight.task), params(rerun.task)):
        assert torch.equal(pa, pb)
    assert rerun.history.steps == [2, 3, 4, 6, 8]
    assert rerun.history.metrics["loss_g"][-1] == straight.history.metrics["loss_g"][-1]
    done = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    done.fit(steps=8, checkpoint_path=path)  # already complete: nothing to do
    assert done.step == 8


def test_fit_or_load_trains_once_then_loads_the_same_model(tmp_path, capsys):
    path = tmp_path / "gan.pt"
    first = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    assert first.fit_or_load(6, path) is False and first.step == 6 and path.exists()
    second = Trainer(gan_task(seed=5), toy_points(), batch_size=16, progress=False)
    assert second.fit_or_load(6, path) is True and second.step == 6
    for pa, pb in zip(params(first.task), params(second.task)):
        assert torch.equal(pa, pb)
    assert second.history.steps == first.history.steps
    other_budget = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    assert other_budget.fit_or_load(4, path) is False and other_budget.step == 4  # 6 != 4: retrained
    assert "holds 6 steps, not 4" in capsys.readouterr().out
    wide = Trainer(GANTask(ToyGenerator(width=32), ToyDiscriminator()), toy_points(), batch_size=16, progress=False)
    with pytest.raises(CheckpointError, match="net.0.weight.*holds another run.*delete"):  # not overwritten
        wide.fit_or_load(4, path)
    with pytest.raises(ValueError, match="fresh Trainer"):
        first.fit_or_load(6, path)


def test_checkpoint_dir_follows_the_environment(tmp_path, monkeypatch):
    from genlab.checkpoint import checkpoint_dir
    monkeypatch.setenv("GENLAB_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    assert checkpoint_dir() == tmp_path / "ckpt" and (tmp_path / "ckpt").is_dir()


def test_load_rejects_another_task_or_other_data(tmp_path):
    trainer = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    trainer.fit(steps=1)
    trainer.save(tmp_path / "gan.pt")
    with pytest.raises(CheckpointError, match="GANTask"):
        Trainer(vae_task(), vae_images(), batch_size=16, progress=False).load(tmp_path / "gan.pt")
    with pytest.raises(CheckpointError, match="net.0.weight"):
        wide = GANTask(ToyGenerator(width=32), ToyDiscriminator())
        Trainer(wide, toy_points(), batch_size=16, progress=False).load(tmp_path / "gan.pt")
    with pytest.raises(CheckpointError, match="64 examples"):
        Trainer(gan_task(), toy_points(32), batch_size=16, progress=False).load(tmp_path / "gan.pt")


# --------------------------------------------------------------------------- the loop


def test_same_seed_same_run_other_seed_other_batches():
    a, b, c = (Trainer(gan_task(), toy_points(), batch_size=16, seed=s, progress=False) for s in (0, 0, 1))
    for t in (a, b, c):
        t.fit(steps=3, log_every=1)
    assert_same_run(a, b)
    assert a.history.metrics["loss_d"] != c.history.metrics["loss_d"]


def test_epoch_sampler_visits_every_example_once_per_epoch():
    data = torch.arange(12, dtype=torch.float32).view(12, 1)
    trainer = Trainer(gan_task(), (data, torch.zeros(12, dtype=torch.long)), batch_size=4, progress=False)
    for _ in range(2):  # two epochs of 3 batches
        seen = torch.cat([trainer.sampler.next()[0] for _ in range(3)]).view(-1)
        assert sorted(seen.tolist()) == list(range(12))


def test_history_logs_means_every_log_every_and_the_last_step():
    trainer = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    steps = []
    trainer.fit(steps=7, log_every=3, callbacks=[lambda t, s: steps.append(s)])
    assert steps == list(range(1, 8))
    assert trainer.history.steps == [3, 6, 7]
    assert set(trainer.history.metrics) == {"loss_d", "loss_g", "d_real", "d_fake"}
    assert all(0 < v < 1 for v in trainer.history.metrics["d_real"])  # sigmoid(logit) for BCE losses
    assert trainer.history.last("loss_g") == trainer.history.metrics["loss_g"][-1]
    with pytest.raises(KeyError, match="gp"):
        trainer.history.last("gp")
    trainer.fit(steps=2, log_every=3)  # continues the step counter
    assert trainer.step == 9 and trainer.history.steps[-1] == 9


def test_history_record_pads_and_roundtrips():
    history = History()
    history.record(1, {"a": 1.0})
    history.record(2, {"a": 2.0, "b": 5.0})
    assert math.isnan(history.metrics["b"][0]) and history.metrics["b"][1] == 5.0
    history.samples.append((2, torch.zeros(2, 2)))
    history.evals["fid"] = [(2, 3.5)]
    again = History.from_dict(history.as_dict())
    assert again.steps == [1, 2] and again.evals == {"fid": [(2, 3.5)]}
    assert torch.equal(again.samples[0][1], history.samples[0][1])


def test_nan_loss_raises_naming_metric_and_step():
    class NanAfter(ToyDiscriminator):
        calls = 0

        def forward(self, x, labels=None):
            self.calls += 1  # 3 calls per step: real and fake for D, fake for G
            out = super().forward(x, labels)
            return out * math.nan if self.calls > 6 else out

    torch.manual_seed(0)
    trainer = Trainer(GANTask(ToyGenerator(), NanAfter()), toy_points(), batch_size=16, progress=False)
    with pytest.raises(TrainingDivergedError, match="loss_d became nan at step 3") as info:
        trainer.fit(steps=10, log_every=5)
    assert isinstance(info.value, RuntimeError) and info.value.step == 3 and info.value.metric == "loss_d"


def test_seconds_budget_stops_at_the_first_step_past_it():
    trainer = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    start = time.perf_counter()
    trainer.fit(seconds=0.3, log_every=10_000)
    assert 0.3 <= trainer.train_seconds < 0.3 + 2.0
    assert time.perf_counter() - start < 3.0 and trainer.step >= 1
    assert trainer.history.steps == [trainer.step]  # the final step is always logged
    with pytest.raises(ValueError, match="budget"):
        trainer.fit()


# --------------------------------------------------------------------------- GAN variants


def test_wgan_gp_and_hinge_report_raw_scores():
    trainer = Trainer(gan_task(loss="wasserstein", gp_weight=10.0, n_critic=3, betas=(0.0, 0.9)), toy_points(),
                      batch_size=16, progress=False)
    trainer.fit(steps=2, log_every=1)
    metrics = trainer.history.metrics
    assert metrics["gp"][0] >= 0 and all(math.isfinite(v) for v in metrics["gp"])
    optimizers = trainer.task.optimizers
    d_steps = optimizers["discriminator"].state[next(iter(trainer.task.discriminator.parameters()))]["step"]
    g_steps = optimizers["generator"].state[next(iter(trainer.task.generator.parameters()))]["step"]
    assert (int(d_steps), int(g_steps)) == (6, 2)  # n_critic critic updates per generator update
    assert trainer.sampler.position == 6 * 16 % 64  # and one fresh batch for each critic update

    hinge = Trainer(gan_task(loss="hinge", lr=0.5), toy_points(), batch_size=16, progress=False)
    hinge.fit(steps=3, log_every=1)
    assert "gp" not in hinge.history.metrics
    scores = hinge.history.metrics["d_real"] + hinge.history.metrics["d_fake"]
    assert any(not 0 < v < 1 for v in scores)  # raw critic scores, not probabilities


def test_wgan_weight_clipping_bounds_the_critic():
    trainer = Trainer(gan_task(loss="wasserstein", clip_weights=0.01, optimizer="rmsprop", lr=0.1),
                      toy_points(), batch_size=16, progress=False)
    trainer.fit(steps=2)
    assert max(p.abs().max().item() for p in trainer.task.discriminator.parameters()) <= 0.01


def test_conditional_gan_uses_labels():
    labels = torch.arange(64) % 3
    task = gan_task(num_classes=3)
    assert task.conditional
    trainer = Trainer(task, (toy_points(), labels), batch_size=16, progress=False)
    trainer.fit(steps=2)
    seen = task.discriminator.seen_labels
    assert len(seen) == 6 and all(lab.dtype == torch.long and lab.shape == (16,) for lab in seen)
    assert torch.cat(seen).max() < 3 and task.sample(6).shape == (6, 2)
    wgan = gan_task(num_classes=3, loss="wasserstein", gp_weight=10.0)
    Trainer(wgan, (toy_points(), labels), batch_size=16, progress=False).fit(steps=1)
    real, fake, interpolates, _ = wgan.discriminator.seen_labels  # with a penalty: one class per pair
    assert torch.equal(real, fake) and torch.equal(real, interpolates)
    with pytest.raises(ValueError, match="no labels"):
        Trainer(gan_task(num_classes=3), toy_points(), batch_size=16, progress=False)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        Trainer(gan_task(num_classes=3), (toy_points(), labels + 1), batch_size=16, progress=False)


def test_gan_task_rejects_bad_configurations():
    with pytest.raises(ValueError, match="unknown GAN loss 'lsgan'"):
        gan_task(loss="lsgan")
    with pytest.raises(ValueError, match="one Lipschitz constraint"):
        gan_task(loss="wasserstein", gp_weight=10.0, clip_weights=0.01)
    with pytest.warns(UserWarning, match="unconstrained"):
        gan_task(loss="wasserstein")


def test_reuse_fakes_runs_the_generator_once_per_step_and_scores_the_same_fakes():
    """pytorch/examples' loop: the generator's step reuses the discriminator step's fakes."""
    calls = {True: 0, False: 0}
    for reuse in (True, False):
        task = gan_task(reuse_fakes=reuse)
        task.generator.register_forward_hook(lambda module, inputs, output, reuse=reuse: calls.__setitem__(
            reuse, calls[reuse] + 1))
        Trainer(task, toy_points(), batch_size=16, progress=False).fit(steps=3)
    assert calls == {True: 3, False: 6}
    # the generator's loss is computed on the fakes the discriminator just saw (after its update)
    task = gan_task(reuse_fakes=True)
    seen = []
    task.discriminator.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    Trainer(task, toy_points(), batch_size=16, progress=False).fit(steps=1)
    real, fake_for_d, fake_for_g = seen
    assert torch.equal(fake_for_d, fake_for_g)
    with pytest.raises(ValueError, match="reuse_fakes=True needs n_critic=1"):
        gan_task(reuse_fakes=True, n_critic=2)


# --------------------------------------------------------------------------- VAE and language model


def test_vae_task_warmup_and_metrics():
    task = vae_task(beta=2.0, kl_warmup_steps=4)
    assert [task.beta_at(s) for s in (1, 2, 4, 10)] == [0.5, 1.0, 2.0, 2.0]
    trainer = Trainer(task, vae_images(), batch_size=16, progress=False)
    trainer.fit(steps=4, log_every=1)
    m = trainer.history.metrics
    assert m["beta"] == [0.5, 1.0, 1.5, 2.0]
    for loss, rec, kl, beta in zip(m["loss"], m["reconstruction"], m["kl"], m["beta"]):
        assert loss == pytest.approx(-(rec - beta * kl), rel=1e-5)  # no free bits: -ELBO exactly
    assert task.sample(5).min() >= 0 and task.sample(5).max() <= 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Trainer(vae_task(), vae_images() * 2 - 1, batch_size=16, progress=False)


def test_vae_task_iwae_objective_is_the_importance_weighted_bound():
    from genlab.losses import elbo, iwae_bound

    task = vae_task(binarize=False, iwae_samples=8)
    x = vae_images(16)
    generator = torch.Generator().manual_seed(3)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    metrics = task.training_step((x, None), step=1, generator=generator)
    # the loss it reports is -mean L_8 of the same draws, computed before the update
    task.model.load_state_dict(before)
    expected = -iwae_bound(task.model, x, 8, generator=torch.Generator().manual_seed(3)).mean()
    assert metrics["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    # and L_8 is tighter than the ELBO on average (Burda et al. 2016)
    gen = torch.Generator().manual_seed(4)
    elbos = torch.stack([elbo(task.model, x, generator=gen).elbo for _ in range(64)]).mean()
    bounds = torch.stack([iwae_bound(task.model, x, 8, generator=gen) for _ in range(64)]).mean()
    assert bounds > elbos
    for bad in (dict(iwae_samples=0), dict(iwae_samples=4, beta=2.0), dict(iwae_samples=4, free_bits=0.1)):
        with pytest.raises(ValueError, match="iwae"):
            vae_task(**bad)


def test_language_model_loss_decreases_on_repetitive_text():
    ids = torch.tensor([0, 1, 2, 3] * 100)
    torch.manual_seed(0)
    trainer = Trainer(LanguageModelTask(Bigram(4), lr=3e-2, block_size=8), ids, batch_size=8, progress=False)
    trainer.fit(steps=60, log_every=10)
    losses = trainer.history.metrics["loss"]
    assert losses[0] > 0.5 * math.log(4)
    assert losses[-1] < 0.1  # the next character is determined by the current one
    x, y = trainer.sampler.next()
    assert x.shape == y.shape == (8, 8) and torch.equal(y, (x + 1) % 4)  # y is x shifted by one
    with pytest.raises(ValueError, match="1-D int64"):
        Trainer(LanguageModelTask(Bigram(4)), ids.view(4, 100), progress=False)


# --------------------------------------------------------------------------- callbacks and options


def test_sample_grid_uses_fixed_noise_and_leaves_training_alone():
    frozen = gan_task(lr=0.0)
    trainer = Trainer(frozen, toy_points(), batch_size=16, progress=False)
    trainer.fit(steps=4, callbacks=[SampleGrid(every=2, num_samples=8)])
    (s1, first), (s2, second) = trainer.history.samples
    assert (s1, s2) == (2, 4) and first.shape == (8, 2)
    assert torch.equal(first, second)  # same z, same (frozen) generator
    assert not torch.equal(first, frozen.sample(8, generator=torch.Generator().manual_seed(1)))

    plain, watched = (Trainer(gan_task(), toy_points(), batch_size=16, progress=False) for _ in range(2))
    plain.fit(steps=4)
    watched.fit(steps=4, callbacks=[SampleGrid(every=1, num_samples=4)])
    assert_same_run(plain, watched)


def test_evaluate_records_values_at_its_steps():
    trainer = Trainer(gan_task(), toy_points(), batch_size=16, progress=False)
    trainer.fit(steps=5, callbacks=[Evaluate(every=2, name="step_twice", fn=lambda t: 2 * t.step)])
    assert trainer.history.evals["step_twice"] == [(2, 4.0), (4, 8.0)]
    with pytest.raises(ValueError, match="positive"):
        Evaluate(every=0, name="x", fn=lambda t: 0.0)


def test_cuda_options_are_off_on_cpu():
    options = cuda_options(torch.device("cpu"))
    assert options.amp_dtype is None and not options.channels_last
    with pytest.raises(ValueError, match="need a CUDA device"):
        cuda_options(torch.device("cpu"), amp=True)
    with pytest.raises(ValueError, match="'auto', True or False"):
        cuda_options(torch.device("cpu"), amp="fp16")


@pytest.mark.cuda
def test_cuda_step_with_amp_and_channels_last(tmp_path):
    class ConvCritic(nn.Module):
        num_classes = None

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 4, stride=2)

        def forward(self, x, labels=None):
            return self.conv(x).mean(dim=(1, 2, 3))

    class ConvGenerator(nn.Module):
        latent_dim, num_classes = 4, None

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 64)

        def forward(self, z, labels=None):
            return torch.tanh(self.fc(z)).view(-1, 1, 8, 8)

    images = torch.rand(64, 1, 8, 8) * 2 - 1
    trainer = Trainer(GANTask(ConvGenerator(), ConvCritic(), loss="wasserstein", gp_weight=10.0), images,
                      batch_size=16, device="cuda", progress=False)
    assert trainer.options.amp_dtype == torch.bfloat16 and trainer.options.channels_last
    trainer.fit(steps=4, log_every=2, checkpoint_path=tmp_path / "c.pt")
    assert trainer.history.steps == [2, 4] and all(math.isfinite(v) for v in trainer.history.metrics["loss_d"])


# --------------------------------------------------------------------------- the API's edges (issue 13)


def gan_images(low: float, high: float, n: int = 32) -> torch.Tensor:
    return torch.linspace(low, high, n * 16).view(n, 1, 4, 4)  # spans [low, high] exactly


@pytest.mark.parametrize("low, high, advice", [(0.0, 255.0, "x / 127.5 - 1"), (-0.4242, 2.8215, "Normalize")])
def test_gan_task_refuses_images_outside_tanh_range(low, high, advice):
    with pytest.raises(ValueError, match=rf"\[-1, 1\], got \[{low:.3g}, {high:.3g}\].*{advice}"):
        Trainer(gan_task(), gan_images(low, high), batch_size=16, progress=False)
    Trainer(gan_task(), gan_images(-1.0, 1.0), batch_size=16, progress=False)  # in range: accepted
    Trainer(gan_task(), toy_points() * 3, batch_size=16, progress=False)  # 2-D toy points: not pixels


def test_sample_accepts_int_list_or_tensor_labels():
    from genlab.models.gan import MLPDiscriminator, MLPGenerator
    from genlab.models.vae import MLPVAE

    torch.manual_seed(0)
    tasks = [GANTask(MLPGenerator(latent_dim=8, hidden=(16, 32), num_classes=10),
                     MLPDiscriminator(hidden=(32, 16), num_classes=10)),
             VAETask(MLPVAE(hidden=16, latent_dim=4, num_classes=10))]
    for task in tasks:
        noise = torch.Generator().manual_seed(0)
        as_int = task.sample(3, labels=7, generator=noise)
        as_list = task.sample(3, labels=[7, 7, 7], generator=noise.manual_seed(0))
        as_tensor = task.sample(3, labels=torch.tensor([7, 7, 7]), generator=noise.manual_seed(0))
        assert as_int.shape == (3, 1, 28, 28)
        assert torch.equal(as_int, as_list) and torch.equal(as_int, as_tensor)
        assert task.sample(2, labels=torch.tensor(3)).shape == (2, 1, 28, 28)
        with pytest.raises(ValueError, match="one label or 3 labels"):
            task.sample(3, labels=[1, 2])
    with pytest.raises(ValueError, match="unconditional"):
        gan_task().sample(3, labels=1)


def test_diverged_error_carries_the_value_and_the_task_hint():
    error = TrainingDivergedError("loss", 7, math.inf, hint=LanguageModelTask.divergence_hint)
    assert error.value == math.inf and error.step == 7 and "grad_clip" in str(error)
    assert "[-1, 1]" not in str(error) and "pixel" not in str(error)  # no image advice for a language model
    assert "[-1, 1]" in GANTask.divergence_hint and "[0, 1]" in VAETask.divergence_hint

    class Exploding(Bigram):
        def forward(self, idx):
            return super().forward(idx) * math.inf

    ids = torch.tensor([0, 1, 2, 3] * 50)
    trainer = Trainer(LanguageModelTask(Exploding(4), block_size=8), ids, batch_size=4, progress=False)
    with pytest.raises(TrainingDivergedError, match="grad_clip") as info:
        trainer.fit(steps=2)
    assert math.isnan(info.value.value) and info.value.metric == "loss"


def test_saturated_discriminator_warns_once_naming_the_learning_rate():
    from genlab.training import TrainingWarning

    with pytest.warns(TrainingWarning, match=r"stuck at 0 or 1.*lr=100.*lower it") as record:
        Trainer(gan_task(lr=100.0), toy_points(), batch_size=16, progress=False).fit(steps=40, log_every=1)
    assert len([w for w in record if issubclass(w.category, TrainingWarning)]) == 1
    assert record[0].filename == __file__  # points at the caller's line, not inside genlab
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        Trainer(gan_task(lr=2e-4), toy_points(), batch_size=16, progress=False).fit(steps=40, log_every=1)


def test_progress_bar_follows_tqdm_disable_none(capsys):
    from genlab.runtime import progress_bar

    assert progress_bar(3).disable  # pytest captures stderr: not a terminal, so no bar (tqdm's disable=None)
    assert not progress_bar(3, progress=True).disable and progress_bar(3, progress=False).disable
    trainer = Trainer(gan_task(), toy_points(), batch_size=16)  # progress=None by default
    trainer.fit(steps=3)
    assert "GANTask" not in capsys.readouterr().err  # nothing floods a non-interactive log
