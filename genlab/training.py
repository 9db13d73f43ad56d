"""Training: *tasks* own models, optimisers and one step of maths; the :class:`Trainer` owns the loop.

In a notebook::

    from genlab.training import Trainer, GANTask, SampleGrid            # tasks live in genlab.tasks
    task = GANTask(generator, discriminator, loss="non_saturating")      # or VAETask(vae), LanguageModelTask(lm)
    trainer = Trainer(task, data=(images, labels), batch_size=128)       # LM: data=token_ids (1-D int64)
    history = trainer.fit(steps=2_000, callbacks=[SampleGrid(every=500)])
    images = task.sample(64)                                             # GAN: [-1, 1]; VAE: [0, 1]
    trainer.save("gan.pt");  Trainer(GANTask(G2, D2), data).load("gan.pt")  # resume later
    trainer.fit_or_load(2_000, "gan.pt")                                 # train once, load afterwards

How the pieces fit
    * A task has ``models`` and ``optimizers`` (dicts by name), ``training_step(batch, step,
      generator)`` returning a dict of detached scalar tensors (its metrics), and ``sample``.
    * The Trainer keeps the data in memory on its device and draws every batch from ONE
      ``torch.Generator`` it owns (image tasks: a new random permutation each epoch, the
      position in it tracked; language models: random windows). The tasks draw their noise
      (``z``, ``eps``, binarisation) from the same generator. All sampler state lives in the
      Trainer, so a checkpoint captures it and resuming on CPU is bit-identical to never stopping.
    * ``fit(steps=..., seconds=...)`` runs more steps (call it again to continue). ``History``
      keeps, every ``log_every`` steps and at the last step, the mean of each metric since the
      previous entry; ``.item()`` is only called then, so a GPU never waits every step.
    * A non-finite metric raises :class:`TrainingDivergedError` naming the metric and the step
      (checked every step on CPU; on CUDA the values are kept on the GPU and checked at logging steps),
      with the task's advice (``task.divergence_hint``). A run that stays finite but fails in a way
      the task recognises (``task.check_health``: a saturated GAN discriminator) gets one
      :class:`TrainingWarning`.
    * The progress bar follows tqdm's ``disable=None`` convention: a bar in Jupyter and in a
      terminal, none when the output goes to a file or a CI log (``progress=False``: never).
    * GPU speed-ups are chosen in one place, :func:`cuda_options`: bf16 autocast and
      channels_last on CUDA, TF32 matmuls; on CPU plain fp32, so CPU runs are deterministic.
    * Callbacks are callables ``callback(trainer, step)`` run after each step:
      :class:`SampleGrid` (fixed-noise samples into ``history.samples``) and :class:`Evaluate`
      (they and ``History`` live in :mod:`genlab.history` and are importable from here).
    * Under ``torchrun`` (it sets ``RANK`` and ``WORLD_SIZE``) the same code is data-parallel
      (:mod:`genlab.distributed`): the process group is joined (gloo on CPU, NCCL on CUDA with one
      GPU per local rank), the trained models are wrapped in ``DistributedDataParallel`` for the
      steps, ``batch_size`` is the global batch and each rank trains on its slice of it (and of the task's noise), the
      logged metrics are averaged over the ranks, and only rank 0 shows progress, runs callbacks
      and writes checkpoints (which hold the plain models and the world size).

See: book/04_practice/mlp_gan.ipynb (checkpoints and resuming: book/04_practice/checkpoints.ipynb;
several processes: book/04_practice/distributed.ipynb).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from genlab import distributed as _dist
from genlab.checkpoint import CheckpointError, load_checkpoint, load_model_state, rng_state, save_checkpoint
from genlab.checkpoint import set_rng_state as _set_rng_state
from genlab.history import Evaluate, EveryNSteps, History, SampleGrid
from genlab.runtime import get_device, progress_bar, warn
from genlab.tasks import GANTask, LanguageModelTask, Task, VAETask, noise

__all__ = ["CudaOptions", "EveryNSteps", "Evaluate", "GANTask", "History", "LanguageModelTask", "SampleGrid",
           "Task", "Trainer", "TrainingDivergedError", "TrainingWarning", "VAETask", "cuda_options"]


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite; ``.metric``, ``.step`` and ``.value`` say which, when and what.

    The message ends with ``hint``, the advice of the task that diverged (``task.divergence_hint``).
    See: book/04_practice/diagnostics.ipynb.
    """

    def __init__(self, metric: str, step: int, value: float, hint: str = Task.divergence_hint) -> None:
        super().__init__(f"{metric} became {value} at step {step}; {hint}")
        self.metric, self.step, self.value = metric, step, float(value)


class TrainingWarning(UserWarning):
    """A run that stays finite but is failing (e.g. a saturated GAN discriminator); see ``Task.check_health``.

    See: book/04_practice/diagnostics.ipynb.
    """


@dataclass(frozen=True)
class CudaOptions:
    """The speed-ups in use: ``amp_dtype`` (autocast dtype or None) and ``channels_last``.

    See: book/04_practice/dcgan.ipynb.
    """

    amp_dtype: torch.dtype | None
    channels_last: bool


def cuda_options(device: torch.device, amp: str | bool = "auto", channels_last: str | bool = "auto") -> CudaOptions:
    """Choose the GPU speed-ups in one place (and allow TF32 matmuls on CUDA).

    ``"auto"``: bf16 autocast for forward passes where the GPU supports bf16, and channels_last
    memory for 4-D image models, on CUDA only. On CPU both are off: plain fp32, deterministic.
    See: book/04_practice/dcgan.ipynb.
    """
    for name, value in (("amp", amp), ("channels_last", channels_last)):
        if value not in ("auto", True, False):
            raise ValueError(f"{name} must be 'auto', True or False, got {value!r}")
    cuda = torch.device(device).type == "cuda"
    if not cuda and True in (amp, channels_last):
        raise ValueError(f"amp=True / channels_last=True need a CUDA device, got {device}; use 'auto'")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    use_amp = cuda and (amp is True or (amp == "auto" and torch.cuda.is_bf16_supported()))
    return CudaOptions(torch.bfloat16 if use_amp else None, cuda and channels_last in ("auto", True))


# --------------------------------------------------------------------------- the trainer


class _Sampler:
    """Minibatches drawn with the Trainer's generator: epochs of a random permutation (images) or
    random windows ``x = ids[i:i+T], y = ids[i+1:i+T+1]`` (tokens). Its state goes into checkpoints."""

    def __init__(self, tensors: tuple, batch_size: int, generator: torch.Generator, block_size: int | None,
                 channels_last: bool, rank: int = 0, world_size: int = 1) -> None:
        self.tensors, self.batch_size, self.generator = tensors, batch_size, generator
        self.block_size, self.channels_last = block_size, channels_last
        self.shard = _dist.shard_slice(batch_size, rank, world_size)  # this rank's share of each batch
        self.size = len(tensors[0])
        self.order: Tensor | None = None  # the current epoch's permutation
        self.position = 0

    def next(self, count: int = 1) -> tuple:
        """``count`` consecutive minibatches, concatenated (with several ranks: this rank's slice of each)."""
        device = self.tensors[0].device
        if self.block_size is not None:
            T = self.block_size
            starts = noise("randint", (count * self.batch_size,), self.generator, device, self.size - T)
            starts = starts.reshape(count, self.batch_size)[:, self.shard].reshape(-1)  # (count * B / N,)
            chunk = self.tensors[0][starts[:, None] + torch.arange(T + 1, device=device)]  # (B, T + 1)
            return chunk[:, :-1], chunk[:, 1:]
        index = []
        for _ in range(count):
            if self.order is None or self.position + self.batch_size > self.size:  # new epoch (drop last)
                self.order = noise("randperm", (self.size,), self.generator, device)
                self.position = 0
            index.append(self.order[self.position : self.position + self.batch_size][self.shard])
            self.position += self.batch_size
        index = index[0] if count == 1 else torch.cat(index)
        images = self.tensors[0][index]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, None if self.tensors[1] is None else self.tensors[1][index]

    def state_dict(self) -> dict:
        return {"size": self.size, "position": self.position,
                "order": None if self.order is None else self.order.cpu()}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size:
            raise CheckpointError(f"the checkpoint was trained on {state['size']} examples/tokens, this "
                                  f"Trainer has {self.size}: not the same data")
        self.position = state["position"]
        self.order = None if state["order"] is None else state["order"].to(self.tensors[0].device)


def _as_tensors(data, kind: str) -> tuple[Tensor, Tensor | None]:
    """``(images, labels)``, an ``ImageData``, an images tensor, or a 1-D token tensor -> (data, labels)."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        data = (data.images, data.labels)
    first, labels = (data if isinstance(data, (tuple, list)) else (data, None))
    if not isinstance(first, Tensor) or (labels is not None and not isinstance(labels, Tensor)):
        raise TypeError(f"data must be tensors: images, (images, labels) or token ids; got {type(data).__name__}")
    if kind == "tokens":
        if labels is not None or first.dim() != 1 or first.is_floating_point():
            raise ValueError(f"a language model needs data = a 1-D int64 tensor of token ids, got shape "
                             f"{tuple(first.shape)} dtype {first.dtype}")
        return first.long(), None
    if labels is not None and (labels.shape != (len(first),) or labels.is_floating_point()):
        raise ValueError(f"labels must be int64 of shape ({len(first)},), got {tuple(labels.shape)} {labels.dtype}")
    if not first.is_floating_point():
        raise ValueError(f"images must be floating point, got {first.dtype}")
    return first, labels


class Trainer:
    """Runs a task: batches, the loop, logging, divergence checks, progress bar, checkpoints.

    ``data``: ``(images, labels)``, images alone, an ``ImageData``, or 1-D token ids for a
    :class:`LanguageModelTask`; moved to ``device`` once. ``seed`` seeds the Trainer's own
    generator (batches and the task's noise); seed the models' initialisation yourself
    (``genlab.seed_everything``). ``progress``: None (a bar in Jupyter and terminals, none in
    logs), True (always) or False (never). See the module docstring; book/04_practice/mlp_gan.ipynb.

    Under ``torchrun`` (``distributed=None`` detects it, False: never distributed): ``batch_size``
    is the global batch (divisible by the world size), the device is ``cuda:LOCAL_RANK`` on GPUs;
    ``sync_batchnorm=True`` turns BatchNorm layers into SyncBatchNorm, ``find_unused_parameters``
    is passed to ``DistributedDataParallel``. ``trainer.world`` is the
    :class:`~genlab.distributed.WorldInfo`. See: book/04_practice/distributed.ipynb.
    """

    def __init__(self, task: Task, data, batch_size: int = 128, device: str | torch.device | None = None,
                 seed: int = 0, progress: bool | None = None, amp: str | bool = "auto",
                 channels_last: str | bool = "auto", distributed: bool | None = None,
                 find_unused_parameters: bool = False, sync_batchnorm: bool = False) -> None:
        self.task, self.batch_size, self.seed, self.progress = task, batch_size, seed, progress
        self.device = get_device(device)
        self.world = _dist.WorldInfo()
        if distributed or (distributed is None and _dist.launched()):
            if self.device.type == "cuda":  # one GPU per process: the one of its local rank
                self.device = torch.device("cuda", _dist.world().local_rank)
            self.world = _dist.setup(self.device)
        if not self.world.is_main:
            self.progress = False
        first, labels = _as_tensors(data, task.data_kind)
        block = getattr(task, "block_size", None) if task.data_kind == "tokens" else None
        needed = block + 1 if block is not None else batch_size
        if batch_size < 1 or len(first) < needed:
            raise ValueError(f"batch_size={batch_size} needs at least {needed} examples/tokens, got {len(first)}")
        _dist.shard_slice(batch_size, self.world.rank, self.world.world_size)  # a clear error if N does not divide B
        self.options = cuda_options(self.device, amp, channels_last)
        use_channels_last = self.options.channels_last and first.dim() == 4
        for model in task.models.values():
            model.to(self.device)
            if use_channels_last:
                model.to(memory_format=torch.channels_last)
        task.amp_dtype = self.options.amp_dtype
        first = first.to(self.device)
        labels = labels.to(self.device) if labels is not None else None
        task.check_data(first, labels)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.sampler = _Sampler((first, labels), batch_size, self.generator, block, use_channels_last,
                                self.world.rank, self.world.world_size)
        self._wrapped: dict[str, _dist.DDPModel] = {}  # DDP wrappers of the trained models (several processes)
        if self.world.backend is not None:  # under torchrun, also with one process (e.g. one GPU)
            for name, model in sorted(task.trainable_models().items()):  # the same order on every rank
                self._wrapped[name] = _dist.wrap_model(model, self.device, find_unused_parameters, sync_batchnorm)
        self.resumed_world_size: int | None = None  # the world size of the run load() restored
        self.step, self.train_seconds, self.history = 0, 0.0, History()
        self._pending: list[tuple[int, tuple[str, ...], Tensor]] = []  # logged metrics not yet read back
        self._warned = False  # check_health warns once per Trainer

    # ---- logging and divergence
    def _push(self, step: int, metrics: dict) -> None:
        names = tuple(metrics)
        values = torch.stack([v.detach().float().reshape(()).to(self.device) if isinstance(v, Tensor)
                              else torch.full((), float(v), device=self.device) for v in metrics.values()])
        self._pending.append((step, names, values))
        if self.device.type == "cpu" and self.world.world_size == 1:  # several ranks: checked after averaging
            self._raise_if_diverged([self._pending[-1]])

    def _raise_if_diverged(self, entries: list) -> None:
        if len(entries) == 1 and bool(torch.isfinite(entries[0][2]).all()):  # the common case: one check
            return
        for step, names, values in entries:
            bad = (~torch.isfinite(values)).nonzero()
            if len(bad):
                raise TrainingDivergedError(names[int(bad[0])], step, values[int(bad[0])].item(),
                                            self.task.divergence_hint)

    def _flush(self) -> dict[str, float]:
        """Check and average the pending metrics (one device sync); record a History row."""
        if not self._pending:
            return {}
        if self.world.world_size > 1:  # the mean over the ranks: the metric of the global batch
            sizes = [len(values) for _, _, values in self._pending]
            averaged = _dist.all_reduce_mean(torch.cat([values for _, _, values in self._pending])).split(sizes)
            self._pending = [(step, names, values) for (step, names, _), values in zip(self._pending, averaged)]
        if not bool(torch.isfinite(torch.cat([v for _, _, v in self._pending])).all()):
            self._raise_if_diverged(self._pending)
        columns: dict[str, list[Tensor]] = {}
        for _, names, values in self._pending:
            for name, value in zip(names, values):
                columns.setdefault(name, []).append(value)
        means = torch.stack([torch.stack(col).mean() for col in columns.values()]).tolist()
        row = dict(zip(columns, means))
        self.history.record(self._pending[-1][0], row)
        self._pending.clear()
        message = None if self._warned else self.task.check_health(self.history)
        if message:
            warn(message, TrainingWarning)
            self._warned = True
        return row

    # ---- the loop
    def fit(self, steps: int | None = None, seconds: float | None = None, callbacks: Iterable[Callable] = (),
            log_every: int = 50, checkpoint_path: str | Path | None = None,
            checkpoint_every: int | None = None) -> History:
        """Train ``steps`` more steps and/or for ``seconds`` (stopping at the first step boundary past it).

        With ``checkpoint_path``: a fresh Trainer (step 0) first resumes from the file if it exists,
        and the steps/seconds already in it count towards this budget (re-running an interrupted
        cell finishes the run); the file is written every ``checkpoint_every`` steps and at the end.
        See: book/04_practice/checkpoints.ipynb.
        """
        if steps is None and seconds is None:
            raise ValueError("fit needs a budget: steps=..., seconds=... or both")
        if (steps is not None and steps < 0) or (seconds is not None and seconds < 0) or log_every < 1:
            raise ValueError(f"need steps >= 0, seconds >= 0, log_every >= 1; got {steps}, {seconds}, {log_every}")
        if checkpoint_every is not None and checkpoint_path is None:
            raise ValueError("checkpoint_every needs a checkpoint_path")
        if checkpoint_path is not None and self.step == 0 and Path(checkpoint_path).exists():
            self.load(checkpoint_path)
            if self.world.is_main:
                print(f"genlab: resumed from {checkpoint_path} at step {self.step}")
            steps = None if steps is None else max(0, steps - self.step)
            seconds = None if seconds is None else max(0.0, seconds - self.train_seconds)
        if self.resumed_world_size not in (None, self.world.world_size) and steps != 0:
            raise CheckpointError(
                f"this run was trained by {self.resumed_world_size} process(es) up to step {self.step}, this "
                f"Trainer runs in {self.world.world_size}: resuming it bit-identically needs the same world size "
                f"(torchrun --nnodes x --nproc_per_node = {self.resumed_world_size}). To continue anyway (the "
                "same batches and noise, gradients summed in another order), set trainer.resumed_world_size = None")
        callbacks = list(callbacks) if self.world.is_main else []  # callbacks (sample grids...) on rank 0 only
        last_step = None if steps is None else self.step + steps
        start = time.perf_counter()
        seconds_at_start = self.train_seconds
        bar = progress_bar(steps, self.progress, type(self.task).__name__)
        try:
            while (last_step is None or self.step < last_step) and (
                    seconds is None or time.perf_counter() - start < seconds):
                self.task_step()
                bar.update(1)
                if self.step % log_every == 0:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in self._flush().items()}, refresh=False)
                for callback in callbacks:
                    callback(self, self.step)
                self.train_seconds = seconds_at_start + time.perf_counter() - start
                if checkpoint_every and self.step % checkpoint_every == 0:
                    self.save(checkpoint_path)
            self._flush()
        except KeyboardInterrupt:
            self._flush()  # keep the curve up to the interruption
            raise
        finally:
            bar.close()
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        return self.history

    def task_step(self) -> dict:
        """One training step on the next batch(es); returns the task's metrics (not read back).

        Several processes: the task sees its DDP-wrapped models and draws its per-example noise
        for its shard of the global batch (:class:`genlab.distributed.ShardedNoise`).
        """
        batch = self.sampler.next(self.task.batches_per_step)
        context = contextlib.nullcontext()
        if self._wrapped:
            context = contextlib.ExitStack()
            context.enter_context(self.task.models_replaced(self._wrapped))
            context.enter_context(_dist.ShardedNoise(self.generator, self.world.rank, self.world.world_size,
                                                     self.batch_size // self.world.world_size))
        with context:
            metrics = self.task.training_step(batch, self.step + 1, generator=self.generator)
        self.step += 1
        self._push(self.step, metrics)
        return metrics

    def fit_or_load(self, steps: int, path: str | Path, **fit_kwargs) -> bool:
        """Train-or-load: load ``path`` if it holds a finished run of ``steps`` steps, else train.

        For a fresh Trainer (step 0). If ``path`` exists and was saved after exactly ``steps``
        steps, everything is loaded (models, optimisers, history) and nothing is trained;
        otherwise the Trainer runs ``fit(steps=steps, **fit_kwargs)`` and saves to ``path``
        (atomically). A file for another model or a damaged file raises
        :class:`~genlab.checkpoint.CheckpointError` rather than being overwritten. Returns
        ``True`` when it loaded. See: book/04_practice/cgan_wgan.ipynb.
        """
        if self.step != 0:
            raise ValueError(f"fit_or_load needs a fresh Trainer, this one is at step {self.step}")
        path = Path(path)
        if path.exists():
            saved_steps = load_checkpoint(path).get("step")
            if saved_steps == steps:
                try:
                    self.load(path)
                except CheckpointError as error:  # a genlab checkpoint, but of another run
                    raise CheckpointError(f"{error}. {path.name} holds another run (another model or other "
                                          "data): pass another path for this one, or delete the file if that "
                                          "run is no longer needed") from error
                if self.world.is_main:
                    print(f"genlab: loaded {path.name} ({steps} steps, trained in {self.train_seconds:.0f} s)")
                return True
            if self.world.is_main:
                print(f"genlab: {path.name} holds {saved_steps} steps, not {steps}: training afresh")
        self.fit(steps=steps, **fit_kwargs)
        self.save(path)
        return False

    # ---- checkpoints
    def save(self, path: str | Path) -> Path:
        """Write models, optimisers, step, history, sampler and RNG states (atomic).

        Several processes: call it on every rank; rank 0 writes (the plain models, not their DDP
        wrappers, and the world size), the others wait until the file is complete.
        See: book/04_practice/checkpoints.ipynb.
        """
        if self._pending and not bool(torch.isfinite(torch.cat([v for _, _, v in self._pending])).all()):
            self._raise_if_diverged(self._pending)  # never save a diverged state
        path = Path(path)
        pending = [(step, list(names), values.cpu()) for step, names, values in self._pending]
        if self.world.world_size > 1 and pending:  # saved as their mean over the ranks, as _flush will log them
            sizes = [len(values) for _, _, values in self._pending]
            averaged = _dist.all_reduce_mean(torch.cat([values for _, _, values in self._pending])).split(sizes)
            pending = [(step, names, values.cpu()) for (step, names, _), values in zip(pending, averaged)]
        if self.world.is_main:
            save_checkpoint(
                path, task=type(self.task).__name__, step=self.step, train_seconds=self.train_seconds,
                models={name: m.state_dict() for name, m in self.task.models.items()},
                optimizers={name: o.state_dict() for name, o in self.task.optimizers.items()},
                sampler=self.sampler.state_dict(), rng=rng_state({"trainer": self.generator}),
                history=self.history.as_dict(), pending_metrics=pending, world_size=self.world.world_size)
        _dist.barrier()
        return path

    def load(self, path: str | Path) -> Trainer:
        """Restore everything :meth:`save` wrote, into this Trainer's task; returns ``self``.

        See: book/04_practice/checkpoints.ipynb.
        """
        state = load_checkpoint(path)
        if state.get("task") != type(self.task).__name__:
            raise CheckpointError(f"{path} was written by a {state.get('task')}, this Trainer runs a "
                                  f"{type(self.task).__name__}")
        if set(state["models"]) != set(self.task.models):
            raise CheckpointError(f"{path} holds models {sorted(state['models'])}, the task has "
                                  f"{sorted(self.task.models)}")
        for name, model in self.task.models.items():
            load_model_state(model, state["models"][name], name=name)
        for name, optimizer in self.task.optimizers.items():
            try:
                optimizer.load_state_dict(state["optimizers"][name])
            except (ValueError, KeyError) as error:
                raise CheckpointError(f"cannot load the {name} optimizer state from {path}: {error}") from error
        self.sampler.load_state_dict(state["sampler"])
        _set_rng_state(state["rng"], {"trainer": self.generator})
        self.step, self.train_seconds = state["step"], state["train_seconds"]
        self.history = History.from_dict(state["history"])
        self._pending = [(step, tuple(names), values.to(self.device))
                         for step, names, values in state["pending_metrics"]]
        self.resumed_world_size = state.get("world_size", 1)
        return self
