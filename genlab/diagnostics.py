"""Diagnostics that metrics miss: is a generator copying its training set?

FID, precision and recall compare *distributions*; a "generator" that returns its own
training digits scores perfectly on all of them. The check is a nearest-neighbour one:
how far is each generated image from the closest training image, compared with how far
held-out real images are?

* :func:`nearest_neighbour_distances` - distance (and index) of each query's nearest reference;
* :func:`memorisation_ratio` - median nearest-training-neighbour distance of generated images
  divided by that of held-out real images: about 1 (or more) for a generator that makes new
  images, close to 0 for one that copies.

See: book/04_practice/evaluation.ipynb.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["memorisation_ratio", "nearest_neighbour_distances"]


def _as_rows(x: Tensor, name: str) -> Tensor:
    """Flatten (N, ...) to a float32 (N, D) matrix on CPU, checked for emptiness and NaN."""
    rows = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if rows.dim() < 2 or len(rows) == 0:
        raise ValueError(f"expected a non-empty batch (N, ...) for {name}, got shape {tuple(rows.shape)}")
    rows = rows.reshape(len(rows), -1)
    if not torch.isfinite(rows).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return rows


@torch.no_grad()
def nearest_neighbour_distances(queries: Tensor, references: Tensor,
                                chunk_size: int = 1024) -> tuple[Tensor, Tensor]:
    """Euclidean distance from each query to its nearest reference, and that reference's index.

    ``queries`` (N, ...) and ``references`` (M, ...) are flattened (images: pixel space;
    features: feature space) and must have the same number of values per row.
    Returns ``(distances (N,), indices (N,) int64)``; computed in chunks of ``chunk_size``
    queries with ``torch.cdist`` (memory O(chunk_size * M)); its fast matrix-product formula
    rounds, so an exact copy shows a distance of order 1e-3, not exactly 0.
    See: book/04_practice/evaluation.ipynb.
    """
    q, r = _as_rows(queries, "queries"), _as_rows(references, "references")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} values per row, references {r.shape[1]}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    distances, indices = [], []
    for chunk in torch.split(q, chunk_size):
        d, i = torch.cdist(chunk, r).min(dim=1)  # (c,), (c,)
        distances.append(d)
        indices.append(i)
    return torch.cat(distances), torch.cat(indices)


def memorisation_ratio(generated: Tensor, train: Tensor, held_out: Tensor) -> float:
    """Median nearest-training-neighbour distance of ``generated`` over that of ``held_out`` real data.

    ``held_out`` real images (never trained on) show how far a *new* digit typically lies
    from the training set. A ratio near 1 (or above) means the generated images are as
    novel as fresh real ones; a ratio near 0 means they are (near-)copies of training
    images. It says nothing about quality: noise scores far above 1.
    See: book/04_practice/evaluation.ipynb.
    """
    generated_distance = nearest_neighbour_distances(generated, train)[0].median()
    held_out_distance = nearest_neighbour_distances(held_out, train)[0].median()
    if held_out_distance <= 0:
        raise ValueError("held-out images have a median distance of 0 to the training set: are they "
                         "training images? Use data the model never saw")
    return float(generated_distance / held_out_distance)
