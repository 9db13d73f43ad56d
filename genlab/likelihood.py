"""Held-out likelihood: importance-weighted NLL for VAEs, bits per dimension, bits per character.

Likelihoods are the one quality number that needs no second network: lower
negative log-likelihood on *held-out* data means the model puts more probability
where real data lives. Units: nats (natural log) per example, or bits per
dimension / character (``nats / (dims * ln 2)``).

See: book/03_vae/likelihood.ipynb and book/05_applications/text_generation.ipynb.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.losses import elbo, iwae_bound
from genlab.runtime import eval_mode

__all__ = ["bits_per_dim", "importance_weighted_nll", "language_model_loss"]


def bits_per_dim(nats: float | Tensor, num_dims: int) -> float | Tensor:
    """Convert a negative log-likelihood in nats per example to bits per dimension: ``nats / (D ln 2)``.

    For MNIST ``D = 784``. See: book/03_vae/likelihood.ipynb.
    """
    if num_dims < 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims}")
    return nats / (num_dims * math.log(2.0))


def _model_device(model: Any, fallback: torch.device) -> torch.device:
    parameters = getattr(model, "parameters", None)
    if parameters is None:
        return fallback
    first = next(iter(parameters()), None)
    return first.device if first is not None else fallback


def importance_weighted_nll(
    model: Any,
    images: Tensor,
    num_samples: int = 5000,
    batch_size: int = 100,
    generator: torch.Generator | None = None,
    labels: Tensor | None = None,
) -> dict[str, float | int]:
    """Estimate ``-log p(x)`` of a VAE on held-out images with the IWAE bound (Burda et al. 2016).

    For each image, ``-L_k`` with ``k = num_samples`` importance samples from ``q(z|x)``
    (:func:`genlab.losses.iwae_bound`); ``L_k <= log p(x)`` so the reported NLL is an upper
    bound that tightens as ``k`` grows (``k = 5000`` is the paper's protocol). Also reports
    the one-sample negative ELBO, a looser bound, for comparison.

    Returns ``dict(nats, bits_per_dim, elbo_nats, num_samples)``, averages over images;
    ``bits_per_dim = nats / (D ln 2)`` with ``D`` the values per image (784 for MNIST).
    For a Bernoulli decoder the numbers are proper NLLs only on binary images
    (``genlab.data.binarize``); a Gaussian decoder gives a density on continuous pixels.
    ``labels`` (optional) conditions a conditional VAE, giving ``-log p(x | y)``.
    Runs in ``eval`` mode without gradients and restores the model's mode.
    See: book/03_vae/likelihood.ipynb.
    """
    if images.dim() < 2 or len(images) == 0:
        raise ValueError(f"expected a non-empty batch of images (N, ...), got shape {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    if batch_size < 1 or num_samples < 1:
        raise ValueError(f"batch_size and num_samples must be >= 1, got {batch_size} and {num_samples}")
    device = _model_device(model, images.device)
    total_nll, total_neg_elbo = 0.0, 0.0
    with eval_mode(model):
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].to(device)
                y = None if labels is None else labels[start:start + batch_size].to(device)
                bound = iwae_bound(model, x, num_samples, labels=y, generator=generator)  # (B,)
                total_nll -= bound.double().sum().item()
                total_neg_elbo -= elbo(model, x, labels=y, generator=generator).elbo.double().sum().item()
    nats = total_nll / len(images)
    if not math.isfinite(nats):
        raise ValueError(f"the IWAE estimate is not finite ({nats}); check the model for NaN outputs")
    return {
        "nats": nats,
        "bits_per_dim": bits_per_dim(nats, images[0].numel()),
        "elbo_nats": total_neg_elbo / len(images),
        "num_samples": int(num_samples),
    }


def language_model_loss(
    model: Any,
    token_ids: Tensor,
    block_size: int,
    batch_size: int = 32,
) -> dict[str, float]:
    """Mean next-character cross-entropy of a language model on a held-out token sequence.

    Protocol: the sequence ``t_0 ... t_{N-1}`` is cut into consecutive windows of
    ``block_size + 1`` tokens that share their boundary token, ``t[i*b : i*b + b + 1]``
    (``b = block_size``); the model reads ``window[:-1]`` and is scored on ``window[1:]``.
    The inputs are non-overlapping, so every token after the first is predicted exactly
    once (``N - 1`` predictions, the last window may be shorter), with between 1 and ``b``
    tokens of context - a fair, fixed, cheap protocol that is slightly pessimistic compared
    with a sliding window.

    ``nats_per_char = -(1 / (N-1)) sum_{i=1}^{N-1} log p(t_i | context_i)``,
    ``bits_per_char = nats_per_char / ln 2``. A uniform model over ``V`` symbols scores
    exactly ``log V`` nats. Runs in ``eval`` mode without gradients; restores the mode.
    See: book/05_applications/text_generation.ipynb.
    """
    token_ids = torch.as_tensor(token_ids)
    if token_ids.dim() != 1 or token_ids.is_floating_point():
        raise ValueError(f"expected token_ids as a 1-D integer tensor (N,), got {tuple(token_ids.shape)} "
                         f"{token_ids.dtype}")
    if len(token_ids) < 2:
        raise ValueError(f"need at least 2 tokens to score a next-token prediction, got {len(token_ids)}")
    if block_size < 1 or batch_size < 1:
        raise ValueError(f"block_size and batch_size must be >= 1, got {block_size} and {batch_size}")
    max_context = getattr(model, "block_size", None)
    if max_context is not None and block_size > max_context:
        raise ValueError(f"block_size={block_size} exceeds the model's context of {max_context} tokens")
    device = _model_device(model, token_ids.device)
    ids = token_ids.long().to(device)
    starts = list(range(0, len(ids) - 1, block_size))
    full = [s for s in starts if s + block_size + 1 <= len(ids)]
    batches = [full[i:i + batch_size] for i in range(0, len(full), batch_size)]
    batches += [[s] for s in starts if s + block_size + 1 > len(ids)]  # at most one shorter window
    total_nats, count = 0.0, 0
    with eval_mode(model):
        with torch.no_grad():
            for group in batches:
                windows = torch.stack([ids[s:s + block_size + 1] for s in group])  # (B, <= b+1)
                inputs, targets = windows[:, :-1], windows[:, 1:]  # (B, T) each
                total_nats += _summed_cross_entropy(model(inputs), inputs, targets)
                count += targets.numel()
    nats = total_nats / count
    return {"nats_per_char": nats, "bits_per_char": nats / math.log(2.0)}


def _summed_cross_entropy(logits: Tensor, inputs: Tensor, targets: Tensor) -> float:
    """Sum over positions of -log softmax(logits)[target], in float64, with shape checks."""
    batch, length = inputs.shape
    if logits.dim() != 3 or logits.shape[:2] != inputs.shape:
        raise ValueError(
            f"expected logits of shape (B, T, V) = ({batch}, {length}, V), got {tuple(logits.shape)}"
        )
    vocab = logits.shape[-1]
    if int(targets.max()) >= vocab or int(targets.min()) < 0:
        raise ValueError(f"token ids must lie in [0, {vocab}) for the model's vocabulary, got "
                         f"[{int(targets.min())}, {int(targets.max())}]")
    flat_logits = logits.reshape(-1, vocab).double()  # (B*T, V)
    return F.cross_entropy(flat_logits, targets.reshape(-1), reduction="sum").item()
