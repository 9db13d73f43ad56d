"""Data parallelism with PyTorch's own engine: ``torchrun``, process groups, ``DistributedDataParallel``.

The :class:`genlab.training.Trainer` uses this module when it runs under ``torchrun`` (the
launcher sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``)::

    torchrun --nproc_per_node=2 -m genlab.train vae --steps 200 --out vae.pt

What happens there, in order:

* :func:`setup` joins the process group (``gloo`` on CPU, ``nccl`` on CUDA with one GPU per
  local rank) and returns a :class:`WorldInfo`.
* Every rank builds the same task; :func:`wrap_model` wraps each *trained* model (the ones with
  an optimiser) in ``DistributedDataParallel``, which broadcasts rank 0's weights and buffers
  and, in every backward pass, averages the gradients over the ranks (all-reduce).
* ``batch_size`` stays the *global* batch: every rank draws the same global batch from the
  shared, seeded sampler and keeps its slice :func:`shard_slice` (rank r of N takes examples
  ``[r B/N, (r+1) B/N)``), so N processes see exactly the examples one process sees.
* :class:`ShardedNoise` does the same for the noise a task draws from the Trainer's generator
  (``z``, ``eps``, binarisation, diffusion times): a draw whose first dimension is the per-rank
  batch is drawn for the global batch and sliced. With a per-example mean loss, N processes then
  follow one process to rounding error (tests/test_distributed.py checks 1e-5 after 20 VAE steps).

See: book/04_practice/distributed.ipynb.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.overrides import TorchFunctionMode

__all__ = ["DDPModel", "ShardedNoise", "WorldInfo", "all_reduce_mean", "barrier", "is_main_process", "launched",
           "setup", "shard_slice", "wrap_model", "world"]


@dataclass(frozen=True)
class WorldInfo:
    """Where this process stands: ``rank`` (0..world_size-1), ``local_rank`` (its index on its node,
    the GPU it uses) and ``world_size``; ``backend`` is ``"gloo"``, ``"nccl"`` or None (one process).

    See: book/04_practice/distributed.ipynb.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that prints, logs and writes files."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (torchrun sets it)") from error


def launched() -> bool:
    """True under a launcher (``torchrun`` sets ``RANK`` and ``WORLD_SIZE``, also for one process) or once a
    process group exists. See: book/04_practice/distributed.ipynb."""
    if dist.is_available() and dist.is_initialized():
        return True
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def world() -> WorldInfo:
    """This process's :class:`WorldInfo` (one process: rank 0 of 1). See: book/04_practice/distributed.ipynb."""
    if dist.is_available() and dist.is_initialized():
        return WorldInfo(dist.get_rank(), _env_int("LOCAL_RANK", 0), dist.get_world_size(), dist.get_backend())
    return WorldInfo(_env_int("RANK", 0), _env_int("LOCAL_RANK", 0), _env_int("WORLD_SIZE", 1), None)


def is_main_process() -> bool:
    """True on rank 0 (and in a single process). See: book/04_practice/distributed.ipynb."""
    return world().rank == 0


def setup(device: torch.device | str) -> WorldInfo:
    """Join the process group torchrun prepared (once); a no-op in a single process.

    ``gloo`` for CPU devices, ``nccl`` for CUDA (after ``torch.cuda.set_device(LOCAL_RANK)``);
    the rendezvous comes from the environment (``init_method="env://"``: ``MASTER_ADDR``,
    ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``). The group is destroyed when the process exits.
    See: book/04_practice/distributed.ipynb.
    """
    if not launched():
        return WorldInfo()  # a plain `python` process: no group, no DDP
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed; install a standard PyTorch wheel")
    device = torch.device(device)
    if not dist.is_initialized():
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise RuntimeError(f"RANK and WORLD_SIZE are set but {', '.join(missing)} not: launch with torchrun "
                               "(python -m torch.distributed.run --nproc_per_node=N ...)")
        if device.type == "cuda":
            torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy)
    return world()


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":  # name this process's GPU, so NCCL does not guess one
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_reduce_mean(values: Tensor) -> Tensor:
    """The mean of ``values`` over the ranks (a copy; unchanged in a single process)."""
    values = values.clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= dist.get_world_size()
    return values


def shard_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s share ``[r B/N, (r+1) B/N)`` of a global batch of ``batch_size`` examples.

    Raises ValueError when ``world_size`` does not divide ``batch_size``.
    See: book/04_practice/distributed.ipynb.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} is the global batch and must be divisible by the world size "
                         f"{world_size} (each process takes batch_size / world_size examples); use e.g. "
                         f"batch_size={max(1, batch_size // world_size) * world_size}")
    local = batch_size // world_size
    return slice(rank * local, (rank + 1) * local)


class ShardedNoise(TorchFunctionMode):
    """Per-example noise for a rank's shard, equal to that rank's slice of one process's draw.

    Inside this mode, ``torch.randn`` / ``torch.rand`` / ``torch.randint`` called with
    ``generator=generator`` and a size whose first dimension is ``local_batch`` are drawn for
    ``local_batch * world_size`` examples and sliced to this rank's rows; ``torch.bernoulli(p,
    generator=generator)`` of such a ``p`` is drawn on ``p`` padded with zeros to the global batch.
    All other draws are made unchanged. Every rank thus consumes the generator exactly as one
    process with the global batch would, so the generators stay equal across ranks.
    See: book/04_practice/distributed.ipynb.
    """

    def __init__(self, generator: torch.Generator, rank: int, world_size: int, local_batch: int) -> None:
        super().__init__()
        self.generator, self.rank, self.world_size, self.local = generator, rank, world_size, local_batch

    def _rows(self) -> slice:
        return slice(self.rank * self.local, (self.rank + 1) * self.local)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if kwargs.get("generator") is not self.generator or self.world_size == 1:
            return func(*args, **kwargs)
        if func is torch.bernoulli and len(args) == 1 and isinstance(args[0], Tensor) and args[0].dim() > 0 \
                and args[0].shape[0] == self.local:
            p = args[0]
            padded = p.new_zeros((self.local * self.world_size, *p.shape[1:]))
            padded[self._rows()] = p
            return func(padded, **kwargs)[self._rows()]
        if func in (torch.randn, torch.rand, torch.randint):
            args = list(args)
            where = None  # (container, index) of the size argument
            if "size" in kwargs:
                where = (kwargs, "size")
            elif func is torch.randint:
                for i, a in enumerate(args):
                    if isinstance(a, (tuple, list, torch.Size)):
                        where = (args, i)
            elif args and isinstance(args[0], (tuple, list, torch.Size)):
                where = (args, 0)
            elif args and all(isinstance(a, int) for a in args):  # torch.randn(3, 4, generator=g)
                args = [tuple(args)]
                where = (args, 0)
            if where is not None:
                size = tuple(where[0][where[1]])
                if size and size[0] == self.local:
                    where[0][where[1]] = (self.local * self.world_size, *size[1:])
                    return func(*args, **kwargs)[self._rows()]
            return func(*args, **kwargs)
        return func(*args, **kwargs)


class _Router(nn.Module):
    """What DDP wraps: ``forward(method, *args)`` runs ``model.method(*args)`` (``"forward"``: the call),
    so a task that calls ``model.encode`` and ``model.decode`` still goes through DDP's forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, method: str, *args, **kwargs):
        return self.model(*args, **kwargs) if method == "forward" else getattr(self.model, method)(*args, **kwargs)


class DDPModel:
    """A trained model as a task sees it during a distributed step (see :func:`wrap_model`).

    Calling it, or calling one of the model's own methods (``encode``, ``decode``, ...), runs
    through ``DistributedDataParallel`` when gradients can flow into the model (grad mode on and
    some parameter requiring grad), so the backward pass averages its gradients over the ranks.
    A frozen model (a GAN's discriminator during the generator's step) or a call under
    ``torch.no_grad()`` runs the plain model: no gradient of it is synchronised, none is needed.
    Every other attribute (``latent_dim``, ``parameters()``, ``train()``...) is the model's own.
    ``.module`` is the plain model, ``.ddp`` the ``DistributedDataParallel`` wrapper.
    See: book/04_practice/distributed.ipynb.
    """

    def __init__(self, module: nn.Module, ddp: DistributedDataParallel) -> None:
        self.__dict__.update(module=module, ddp=ddp)

    def _run(self, method: str, args: tuple, kwargs: dict):
        module = self.module
        if torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters()):
            return self.ddp(method, *args, **kwargs)
        return module(*args, **kwargs) if method == "forward" else getattr(module, method)(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self._run("forward", args, kwargs)

    def __getattr__(self, name: str):
        value = getattr(self.module, name)
        if (name.startswith("_") or hasattr(nn.Module, name) or isinstance(value, nn.Module)
                or not callable(value) or getattr(value, "__self__", None) is not self.module):
            return value

        def method(*args, **kwargs):
            return self._run(name, args, kwargs)
        return method

    def __setattr__(self, name: str, value) -> None:
        setattr(self.module, name, value)

    def __repr__(self) -> str:
        return f"DDPModel({self.module.__class__.__name__})"


def wrap_model(model: nn.Module, device: torch.device, find_unused_parameters: bool = False,
               sync_batchnorm: bool = False) -> DDPModel:
    """``model`` (already on ``device``) wrapped in ``DistributedDataParallel``, as a :class:`DDPModel`.

    ``sync_batchnorm=True`` first turns its BatchNorm layers into ``nn.SyncBatchNorm`` (batch
    statistics over the global batch, one extra all-reduce per layer per forward); otherwise each
    rank normalises with its own shard's statistics and DDP broadcasts rank 0's running statistics
    at every forward (SyncBatchNorm needs CUDA: a ValueError on CPU). ``find_unused_parameters=True``
    is needed when a forward leaves some parameters out of the loss. Every rank must call this in the same order.
    See: book/04_practice/distributed.ipynb.
    """
    device = torch.device(device)
    if sync_batchnorm and device.type != "cuda":
        raise ValueError("sync_batchnorm=True needs CUDA devices: PyTorch's SyncBatchNorm works with GPU modules "
                         "only. On CPUs leave it off (each process then normalises with its own shard's statistics)")
    if sync_batchnorm:
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if converted is not model:
            raise ValueError("sync_batchnorm: the model itself is a BatchNorm layer; wrap it in a module")
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    ddp = DistributedDataParallel(_Router(model), device_ids=device_ids,
                                  find_unused_parameters=find_unused_parameters)
    return DDPModel(model, ddp)
