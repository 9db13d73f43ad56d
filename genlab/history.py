"""The record of a run and the callbacks that add to it while the :class:`genlab.training.Trainer` trains.

* :class:`History` - logged metric means, sample snapshots and evaluations; plain values only,
  so it goes into checkpoints;
* callbacks are callables ``callback(trainer, step)`` run after each step: :class:`EveryNSteps`
  (the base), :class:`SampleGrid` (fixed-noise samples) and :class:`Evaluate` (any score).

All are importable from :mod:`genlab.training` as well. See: book/04_practice/diagnostics.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # only for annotations: genlab.training imports this module
    from genlab.training import Trainer

__all__ = ["Evaluate", "EveryNSteps", "History", "SampleGrid"]


@dataclass
class History:
    """Logged metrics: ``steps[i]`` and ``metrics[name][i]`` (mean since the previous entry).

    ``samples``: ``[(step, images)]`` from :class:`SampleGrid`; ``evals``: ``{name: [(step, value)]}``
    from :class:`Evaluate`. Only plain lists, floats and tensors, so it goes into checkpoints.
    See: book/04_practice/diagnostics.ipynb.
    """

    steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    samples: list[tuple[int, Tensor]] = field(default_factory=list)
    evals: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def record(self, step: int, values: dict[str, float]) -> None:
        """Append one row; a metric seen for the first time is padded with NaN before."""
        for name, value in values.items():
            self.metrics.setdefault(name, [math.nan] * len(self.steps)).append(float(value))
        self.steps.append(int(step))
        for column in self.metrics.values():
            column.extend([math.nan] * (len(self.steps) - len(column)))

    def last(self, name: str) -> float:
        """The latest logged value of ``name``."""
        if not self.metrics.get(name):
            raise KeyError(f"no metric {name!r} logged yet; known: {sorted(self.metrics)}")
        return self.metrics[name][-1]

    def as_dict(self) -> dict:
        """Plain lists/dicts (what checkpoints store)."""
        return {"steps": list(self.steps), "metrics": {k: list(v) for k, v in self.metrics.items()},
                "samples": [(s, x) for s, x in self.samples],
                "evals": {k: [(s, float(v)) for s, v in rows] for k, rows in self.evals.items()}}

    @classmethod
    def from_dict(cls, state: dict) -> History:
        return cls(list(state["steps"]), {k: list(v) for k, v in state["metrics"].items()},
                   [tuple(row) for row in state["samples"]],
                   {k: [tuple(row) for row in rows] for k, rows in state["evals"].items()})

    def __len__(self) -> int:
        return len(self.steps)


class EveryNSteps:
    """Base callback: runs :meth:`run` (to override) when ``step % every == 0``.

    See: book/04_practice/diagnostics.ipynb.
    """

    def __init__(self, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.every = every

    def __call__(self, trainer: Trainer, step: int) -> None:
        if step % self.every == 0:
            self.run(trainer, step)

    def run(self, trainer: Trainer, step: int) -> None:
        raise NotImplementedError


class SampleGrid(EveryNSteps):
    """Every ``every`` steps, store ``task.sample(num_samples)`` (on CPU) in ``history.samples``.

    The noise comes from a fresh ``torch.Generator`` (on the trainer's device) seeded with ``seed``
    each time, so all snapshots use the same ``z`` ("the same digits over time") and training's
    own random stream is untouched. See: book/04_practice/diagnostics.ipynb.
    """

    def __init__(self, every: int, num_samples: int = 64, seed: int = 0) -> None:
        super().__init__(every)
        self.num_samples, self.seed = num_samples, seed

    def run(self, trainer: Trainer, step: int) -> None:
        noise = torch.Generator(device=trainer.device).manual_seed(self.seed)
        images = trainer.task.sample(self.num_samples, generator=noise)
        trainer.history.samples.append((step, images.detach().float().cpu()))


class Evaluate(EveryNSteps):
    """Every ``every`` steps, append ``(step, fn(trainer))`` to ``history.evals[name]``.

    ``fn`` should draw its randomness from its own generator so it does not change training.
    See: book/04_practice/evaluation.ipynb.
    """

    def __init__(self, every: int, name: str, fn: Callable[[Trainer], float]) -> None:
        super().__init__(every)
        self.name, self.fn = name, fn

    def run(self, trainer: Trainer, step: int) -> None:
        trainer.history.evals.setdefault(self.name, []).append((step, float(self.fn(trainer))))
