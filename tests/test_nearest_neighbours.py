"""Tests for helpers.nearest_neighbours: the machinery behind the memorization searches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import memorization
from helpers import nearest_neighbours as S


def test_memorization_searches_with_this_machinery():
    for name in ("Matches", "ArrayLike", "standardize", "check_pair"):
        assert getattr(memorization, name) is getattr(S, name)
    assert memorization.top_pairs.__module__ == "helpers.memorization"


def test_standardize_gives_pearson_r_and_zero_for_constant_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 30, generator=g, dtype=torch.float64)
    x[3] = 0.7
    z = S.standardize(x.clone())
    np.testing.assert_allclose((z[:3] @ z[:3].T).numpy(), np.corrcoef(x[:3].numpy()), atol=1e-12)
    assert z[3].abs().max().item() == 0.0


def test_pick_takes_the_best_and_the_lowest_index_among_ties():
    r = torch.tensor([0, 0, 0, 1, 1, 2])
    c = torch.tensor([7, 3, 5, 9, 4, 6])
    v = torch.tensor([0.5, 0.9, 0.9, 0.1, 0.1 + 1e-12, -1.0], dtype=torch.float64)
    best, idx = S._pick(r, c, v, 4)
    assert idx.tolist() == [3, 4, 6, 0]  # row 3 has no candidate
    assert best[:3].tolist() == [0.9, 0.1 + 1e-12, -1.0] and best[3].item() == -np.inf
    higher_later = torch.tensor([0.1, 0.1 + 1e-12], dtype=torch.float64)
    pair = (torch.tensor([0, 0]), torch.tensor([2, 8]), higher_later)
    assert S._pick(*pair, 1)[1].tolist() == [8]  # exact: the higher score
    assert S._pick(*pair, 1, tol=1e-9)[1].tolist() == [2]  # within tol: the lower index


def test_search_rescores_exactly_whatever_the_precision_and_chunking():
    """A near-duplicate ahead of the copy: float32 products cannot tell, re-scoring can."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 32, 32, generator=g)
    train = torch.cat([x + 1e-3, torch.rand(6, 1, 32, 32, generator=g), x])
    for batch_size in (1, 3, 64):
        for dtype in (torch.float32, torch.float64):
            m = memorization.min_tiled_l2(x, train, batch_size=batch_size, dtype=dtype, grid=1)
            assert m.indices.tolist() == [8, 9] and m.values.tolist() == [0.0, 0.0]


def test_finite_check_tells_overflowing_sums_from_nan_and_inf():
    big = torch.full((3, 64), 3e38)  # finite, but each row sums past float32's range
    big[1, :32] = -3e38
    search = S.check_pair(big, big)  # accepted: nothing is NaN or Inf
    assert search[0] is big
    for bad_value in (float("nan"), float("inf"), -float("inf")):
        bad = big.clone()
        bad[2, 5] = bad_value
        with pytest.raises(ValueError, match=r"1 row\(s\) \(e.g. \[2\]\)"):
            S.check_pair(bad, big)
    mixed = torch.zeros(4, 8)
    mixed[1, 0], mixed[1, 1] = float("inf"), -float("inf")  # sums to NaN: still named
    with pytest.raises(ValueError, match=r"e.g. \[1\]"):
        S.check_pair(big[:, :8], mixed)
