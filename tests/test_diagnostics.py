"""Tests for genlab.diagnostics: nearest neighbours and the memorisation ratio."""

import pytest
import torch

from genlab.diagnostics import memorisation_ratio, nearest_neighbour_distances


def test_nearest_neighbour_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    queries, references = torch.rand(37, 1, 4, 4, generator=g), torch.rand(50, 1, 4, 4, generator=g)
    distances, indices = nearest_neighbour_distances(queries, references, chunk_size=8)
    brute = ((queries.reshape(37, 1, 16) - references.reshape(1, 50, 16)) ** 2).sum(-1).sqrt()  # (37, 50)
    assert torch.allclose(distances, brute.min(1).values, atol=1e-5)
    assert torch.equal(indices, brute.argmin(1))


def test_copies_are_found_at_distance_zero():
    g = torch.Generator().manual_seed(1)
    train = torch.rand(40, 1, 28, 28, generator=g)
    pick = torch.tensor([3, 17, 39])
    distances, indices = nearest_neighbour_distances(train[pick], train)
    assert torch.equal(indices, pick)
    assert distances.max() < 0.05  # cdist's matrix-product formula rounds; random pairs are ~11 apart


def test_memorisation_ratio_copies_versus_fresh_samples():
    g = torch.Generator().manual_seed(2)
    train, held_out, fresh = (torch.rand(200, 1, 8, 8, generator=g) for _ in range(3))
    assert memorisation_ratio(train[:100], train, held_out) < 0.01  # copies
    assert 0.8 < memorisation_ratio(fresh, train, held_out) < 1.25  # same distribution, new points


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="values per row"):
        nearest_neighbour_distances(torch.rand(3, 4), torch.rand(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbour_distances(torch.full((2, 3), float("nan")), torch.rand(3, 3))
    train = torch.rand(10, 4)
    with pytest.raises(ValueError, match="training images"):
        memorisation_ratio(torch.rand(5, 4), train, train)
