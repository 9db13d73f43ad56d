"""LanguageModelTask: next-token prediction (Part 5).

See: book/05_applications/text_generation.ipynb.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.tasks.base import Task

__all__ = ["LanguageModelTask"]


class LanguageModelTask(Task):
    """Next-token prediction: minimise the cross-entropy of ``y = ids[i+1 : i+T+1]`` given ``x = ids[i : i+T]``.

    AdamW with ``weight_decay``; gradients clipped to norm ``grad_clip`` (None: no clipping).
    Metric: ``loss`` in nats per token (divide by ln 2 for bits per character). Sample text with
    ``genlab.models.text.generate(task.model, prompt_ids, max_new_tokens)``.
    See: book/05_applications/text_generation.ipynb.
    """

    data_kind = "tokens"
    divergence_hint = "lower the learning rate, or clip gradients (grad_clip=1.0)"

    def __init__(self, model: nn.Module, lr: float = 3e-3, weight_decay: float = 0.0, block_size: int = 128,
                 grad_clip: float | None = 1.0) -> None:
        limit = getattr(model, "block_size", None)
        if block_size < 1 or (limit is not None and block_size > limit):
            raise ValueError(f"block_size must be in [1, {limit or 'inf'}] (the model's context), got {block_size}")
        self.model, self.block_size, self.grad_clip = model, block_size, grad_clip
        self.models = {"model": model}
        self.optimizers = {"model": torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)}

    def training_step(self, batch: tuple, step: int, generator: torch.Generator | None = None) -> dict:
        x, y = batch  # (B, T) each
        with self.autocast():
            logits = self.model(x)  # (B, T, V)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.update("model", loss, self.grad_clip)
        return {"loss": loss.detach()}
