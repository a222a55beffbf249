"""Tests for helpers.memorization: the chunked searches equal direct per-pair computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import memorization as M


def _data(n: int, m: int, seed: int = 0, shape=(1, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g), torch.rand(m, *shape, generator=g)


def _direct_correlation(gen: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Pearson r of every pair, one pair at a time (float64)."""
    out = np.empty((len(gen), len(train)))
    for i, a in enumerate(gen.reshape(len(gen), -1)):
        for j, b in enumerate(train.reshape(len(train), -1)):
            out[i, j] = np.corrcoef(a, b)[0, 1]
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 7, 16, 1024])
def test_max_correlation_equals_direct_numpy(batch_size):
    gen, train = _data(13, 29)
    ref = _direct_correlation(gen.numpy().astype(np.float64), train.numpy().astype(np.float64))
    values, indices = M.max_correlation(gen, train, batch_size=batch_size)
    np.testing.assert_allclose(values.numpy(), ref.max(axis=1), atol=1e-5)
    np.testing.assert_array_equal(indices.numpy(), ref.argmax(axis=1))
    values64, indices64 = M.max_correlation(gen, train, batch_size=batch_size, dtype=torch.float64)
    np.testing.assert_allclose(values64.numpy(), ref.max(axis=1), atol=1e-12)
    np.testing.assert_array_equal(indices64.numpy(), ref.argmax(axis=1))


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
def test_ties_go_to_the_lowest_training_index(batch_size):
    gen, train = _data(4, 12, seed=1)
    train[9] = train[2]  # duplicates across chunks
    train[5] = train[2]
    queries = torch.stack([train[2], train[7], 0.5 * train[5] + 0.1, gen[0]])
    ref = _direct_correlation(queries.double().numpy(), train.double().numpy())
    values, indices = M.max_correlation(queries, train, batch_size=batch_size)
    assert indices[:3].tolist() == [2, 7, 2]
    assert indices[3].item() == ref[3].argmax()
    np.testing.assert_allclose(values[:3].numpy(), 1.0, atol=1e-6)


def test_numpy_input_and_flat_vectors():
    gen, train = _data(5, 9, seed=2, shape=(20,))
    ref = _direct_correlation(gen.double().numpy(), train.double().numpy())
    values, indices = M.max_correlation(gen.numpy(), train.numpy(), batch_size=4)
    np.testing.assert_allclose(values.numpy(), ref.max(1), atol=1e-5)
    np.testing.assert_array_equal(indices.numpy(), ref.argmax(1))


def test_top_k_correlation_equals_sorted_direct():
    gen, train = _data(6, 40, seed=3)
    ref = _direct_correlation(gen.double().numpy(), train.double().numpy())
    for batch_size in (3, 11, 100):
        m = M.top_k_correlation(gen, train, 5, batch_size=batch_size)
        np.testing.assert_array_equal(
            m.indices.numpy(), np.argsort(-ref, axis=1, kind="stable")[:, :5]
        )
        np.testing.assert_allclose(m.values.numpy(), -np.sort(-ref, axis=1)[:, :5], atol=1e-5)


def test_constant_images_have_zero_correlation():
    gen, train = _data(2, 5, seed=4)
    gen[0] = 0.3
    values, _ = M.max_correlation(gen, train)
    assert values[0].item() == 0.0 and np.isfinite(values.numpy()).all()


def test_max_cosine_equals_direct():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(7, 16, generator=g), torch.randn(30, 16, generator=g)
    an, bn = a.double().numpy(), b.double().numpy()
    ref = (an @ bn.T) / np.linalg.norm(an, axis=1)[:, None] / np.linalg.norm(bn, axis=1)[None]
    values, indices = M.max_cosine(a, b, batch_size=4)
    np.testing.assert_allclose(values.numpy(), ref.max(1), atol=1e-5)
    np.testing.assert_array_equal(indices.numpy(), ref.argmax(1))


def _direct_tiled_l2(gen: np.ndarray, train: np.ndarray, grid: int) -> np.ndarray:
    n, c, h, w = gen.shape
    th, tw = h // grid, w // grid
    out = np.empty((len(gen), len(train)))
    for i in range(len(gen)):
        for j in range(len(train)):
            tiles = [
                np.sqrt(
                    np.mean(
                        (gen[i, :, y : y + th, x : x + tw] - train[j, :, y : y + th, x : x + tw])
                        ** 2
                    )
                )
                for y in range(0, h, th)
                for x in range(0, w, tw)
            ]
            out[i, j] = max(tiles)
    return out


@pytest.mark.parametrize(("grid", "batch_size"), [(4, 5), (2, 64), (1, 3)])
def test_min_tiled_l2_equals_direct(grid, batch_size):
    gen, train = _data(6, 17, seed=6, shape=(2, 8, 8))
    ref = _direct_tiled_l2(gen.double().numpy(), train.double().numpy(), grid)
    values, indices = M.min_tiled_l2(gen, train, grid=grid, batch_size=batch_size)
    np.testing.assert_allclose(values.numpy(), ref.min(1), atol=1e-4)
    np.testing.assert_array_equal(indices.numpy(), ref.argmin(1))


def test_correlation_is_invariant_to_brightness_and_contrast_but_l2_is_not():
    _, train = _data(1, 30, seed=7, shape=(1, 16, 16))
    altered = (0.6 * train[[3, 8, 21]] + 0.25).clamp(0, 1)  # contrast down, brightness up
    values, indices = M.max_correlation(altered, train)
    assert indices.tolist() == [3, 8, 21]
    np.testing.assert_allclose(values.numpy(), 1.0, atol=1e-5)
    d_same, _ = M.min_tiled_l2(train[[3, 8, 21]], train)
    d_altered, _ = M.min_tiled_l2(altered, train)
    assert float(d_same.max()) < 1e-3
    assert float(d_altered.min()) > 0.05  # far from every training image under ℓ2


def test_planted_copies_are_found_with_the_right_index():
    gen, train = _data(60, 200, seed=8, shape=(1, 16, 16))
    g = torch.Generator().manual_seed(0)
    for noise, shift in [(0.0, 0), (0.03, 0), (0.0, 1), (0.03, 2)]:
        images, pos, src = M.plant_copies(
            gen, train, 15, noise_std=noise, max_shift=shift, generator=g
        )
        values, indices = M.max_correlation(images, train, max_shift=shift, batch_size=64)
        assert torch.equal(indices[pos], src)
        assert float(values[pos].min()) > 0.95
        others = np.delete(values.numpy(), pos.numpy())
        assert others.max() < 0.5  # random images are not near-copies
        assert M.memorization_rate(values, 0.95) == pytest.approx(15 / 60)


def test_plant_copies_exact_and_reproducible():
    gen, train = _data(10, 20, seed=9)
    a = M.plant_copies(gen, train, 4, generator=torch.Generator().manual_seed(1))
    b = M.plant_copies(gen, train, 4, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    images, pos, src = a
    assert torch.equal(images[pos], train[src]) and len(set(src.tolist())) == 4
    keep = torch.ones(10, dtype=torch.bool)
    keep[pos] = False
    assert torch.equal(images[keep], gen[keep])


def test_memorization_rate_and_top_pairs():
    v = torch.tensor([0.2, 0.99, 0.96, 0.5])
    assert M.memorization_rate(v, 0.95) == 0.5
    np.testing.assert_allclose(M.memorization_rate(v, [0.0, 0.9, 0.97, 1.0]), [1, 0.5, 0.25, 0])
    assert M.memorization_rate([0.1, 0.3], 0.2, above=False) == 0.5
    pairs = M.top_pairs(M.Matches(v, torch.tensor([4, 1, 7, 2])), 2)
    assert pairs == [(1, 1, 0.99), (2, 7, 0.96)]
    assert M.top_pairs(M.Matches(v, torch.arange(4)), 1, largest=False)[0][0] == 0


def test_errors_for_mismatched_inputs():
    gen, train = _data(3, 4)
    with pytest.raises(
        ValueError, match="generated images are 1×16×16 but training images are 1×8×8"
    ):
        M.max_correlation(torch.rand(3, 1, 16, 16), train)
    with pytest.raises(ValueError, match="not divisible by the tile grid"):
        M.min_tiled_l2(torch.rand(2, 1, 10, 10), torch.rand(3, 1, 10, 10))
    with pytest.raises(ValueError, match="batch_size"):
        M.max_correlation(gen, train, batch_size=0)
    with pytest.raises(ValueError, match="k must be"):
        M.top_k_correlation(gen, train, 5)
    with pytest.raises(TypeError, match="list"):
        M.max_correlation([[1.0, 2.0]], train)
    with pytest.raises(ValueError, match="N ≥ 1"):
        M.max_correlation(torch.rand(0, 1, 8, 8), train)
    with pytest.raises(ValueError, match="1-D"):
        M.memorization_rate(np.zeros((2, 2)), 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    gen, train = _data(50, 300, seed=10, shape=(1, 16, 16))
    cpu = M.max_correlation(gen, train, batch_size=64)
    gpu = M.max_correlation(gen, train, batch_size=64, device="cuda")
    np.testing.assert_allclose(gpu.values.numpy(), cpu.values.numpy(), atol=1e-5)
    assert torch.equal(gpu.indices, cpu.indices)
    l2_cpu, l2_gpu = M.min_tiled_l2(gen, train), M.min_tiled_l2(gen, train, device="cuda")
    np.testing.assert_allclose(l2_gpu.values.numpy(), l2_cpu.values.numpy(), atol=1e-4)


def _near_duplicate_set(seed: int = 11) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """64×64 queries; for each, a near-duplicate at a lower index than its exact copy."""
    g = torch.Generator().manual_seed(seed)
    x = 0.05 + 0.9 * torch.rand(3, 1, 64, 64, generator=g)
    noise = torch.randn(3, 1, 64, 64, generator=g)
    train = torch.rand(40, 1, 64, 64, generator=g)
    train[[0, 5, 17]] = x + 0.0025 * noise  # near-duplicates: well inside the float32 tolerance
    train[[1, 30, 18]] = x  # the exact copies come later (same chunk, other chunks)
    return x, train, torch.tensor([1, 30, 18])


@pytest.mark.parametrize("batch_size", [1, 2, 16, 1024])
def test_exact_copy_beats_an_earlier_near_duplicate(batch_size):
    x, train, copies = _near_duplicate_set()
    kw = {"batch_size": batch_size}
    values, indices = M.max_correlation(x, train, **kw)
    assert torch.equal(indices, copies)
    np.testing.assert_allclose(values.numpy(), 1.0, atol=1e-7)
    values, indices = M.max_correlation(x, train, max_shift=1, **kw)
    assert torch.equal(indices, copies)
    values, indices = M.max_cosine(x.flatten(1), train.flatten(1), **kw)
    assert torch.equal(indices, copies)
    np.testing.assert_allclose(values.numpy(), 1.0, atol=1e-7)
    values, indices = M.min_tiled_l2(x, train, **kw)
    assert torch.equal(indices, copies)
    assert values.tolist() == [0.0, 0.0, 0.0]


def test_offset_near_duplicate_does_not_hide_the_copy_under_tiled_l2():
    g = torch.Generator().manual_seed(12)
    x = 0.9 * torch.rand(1, 1, 64, 64, generator=g)
    train = torch.cat([x + 0.004, x, torch.rand(5, 1, 64, 64, generator=g)])
    values, indices = M.min_tiled_l2(x, train)
    assert indices.tolist() == [1] and values.tolist() == [0.0]
    values, indices = M.min_tiled_l2(x + 0.003, train)  # now the near-duplicate is closer
    assert indices.tolist() == [0]
    np.testing.assert_allclose(values.numpy(), 0.001, atol=1e-6)


@pytest.mark.parametrize("batch_size", [3, 8, 64])
def test_values_equal_direct_float64_with_near_ties(batch_size):
    """Near-duplicates of near-duplicates: index and value as a direct float64 computation."""
    gen, train = _data(5, 30, seed=13, shape=(1, 16, 16))
    g = torch.Generator().manual_seed(14)
    for i, j in enumerate([2, 9, 14, 21, 29]):
        train[j - 1] = gen[i] + 1e-3 * torch.randn(1, 16, 16, generator=g)
        train[j] = gen[i] + 5e-4 * torch.randn(1, 16, 16, generator=g)
    ref = _direct_correlation(gen.double().numpy(), train.double().numpy())
    m64 = M.max_correlation(gen, train, batch_size=batch_size, dtype=torch.float64)
    m32 = M.max_correlation(gen, train, batch_size=batch_size)
    for _, indices in (m32, m64):
        np.testing.assert_array_equal(indices.numpy(), ref.argmax(1))
    np.testing.assert_allclose(m32.values.numpy(), ref.max(1), rtol=1e-7)
    np.testing.assert_allclose(m64.values.numpy(), ref.max(1), rtol=1e-13)
    ref_l2 = _direct_tiled_l2(gen.double().numpy(), train.double().numpy(), 4)
    values, indices = M.min_tiled_l2(gen, train, batch_size=batch_size, dtype=torch.float64)
    np.testing.assert_array_equal(indices.numpy(), ref_l2.argmin(1))
    np.testing.assert_allclose(values.numpy(), ref_l2.min(1), rtol=1e-12)


@pytest.mark.parametrize("batch_size", [2, 5, 1024])
def test_many_exact_copies_go_to_the_lowest_index(batch_size):
    """More tied copies than the first pass keeps: the second pass still finds the first."""
    gen, train = _data(3, 40, seed=15)
    train[[4, 9, 10, 11, 22, 23, 37]] = gen[1]
    train[3] = gen[1] + 2e-3 * torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(0))
    _, indices = M.max_correlation(gen, train, batch_size=batch_size)
    assert indices[1].item() == 4
    ref = _direct_correlation(gen.double().numpy(), train.double().numpy())
    assert indices[[0, 2]].tolist() == ref[[0, 2]].argmax(1).tolist()
    train[2] = gen[1] + 1e-4  # a brightness change: near-duplicate under ℓ2, not a copy
    values, indices = M.min_tiled_l2(gen, train, batch_size=batch_size)
    assert indices[1].item() == 4 and values[1].item() == 0.0
    ref = _direct_tiled_l2(gen.double().numpy(), train.double().numpy(), 4)
    assert indices[[0, 2]].tolist() == ref[[0, 2]].argmin(1).tolist()


@pytest.mark.parametrize("batch_size", [1, 4, 1024])
def test_constant_image_ties_with_every_training_image(batch_size):
    gen, train = _data(3, 50, seed=16)
    gen[1] = 0.4  # correlation 0 with every training image: the lowest index wins
    values, indices = M.max_correlation(gen, train, batch_size=batch_size)
    assert indices[1].item() == 0 and values[1].item() == 0.0
    ref = _direct_correlation(gen[[0, 2]].double().numpy(), train.double().numpy())
    assert indices[[0, 2]].tolist() == ref.argmax(1).tolist()


def _direct_shifted_correlation(gen: torch.Tensor, train: torch.Tensor, shift: int) -> np.ndarray:
    rolls = range(-shift, shift + 1)
    per_shift = [
        _direct_correlation(torch.roll(gen, (dy, dx), (-2, -1)).double().numpy(), train.numpy())
        for dy in rolls
        for dx in rolls
    ]
    return np.max(per_shift, axis=0)


def test_shifted_search_equals_brute_force_and_prepares_one_chunk_at_a_time(monkeypatch):
    gen, train = _data(9, 14, seed=17)
    ref = _direct_shifted_correlation(gen, train.double(), 2)
    rows, roll = [], torch.roll

    def spy(x, *args, **kwargs):
        rows.append(x.shape[0])
        return roll(x, *args, **kwargs)

    monkeypatch.setattr(torch, "roll", spy)
    values, indices = M.max_correlation(gen, train, max_shift=2, batch_size=4)
    assert max(rows) <= 4  # shifted copies only ever made for one chunk of generated rows
    np.testing.assert_array_equal(indices.numpy(), ref.argmax(1))
    np.testing.assert_allclose(values.numpy(), ref.max(1), rtol=1e-6)
    top = M.top_k_correlation(gen, train, 3, max_shift=2, batch_size=4)
    np.testing.assert_array_equal(top.indices.numpy(), np.argsort(-ref, axis=1)[:, :3])


def test_top_pairs_rejects_negative_or_non_integer_k():
    m = M.Matches(torch.tensor([0.2, 0.9, 0.5]), torch.tensor([4, 0, 7]))
    with pytest.raises(ValueError, match=r"k must be an int ≥ 0 .*got -1"):
        M.top_pairs(m, -1)
    with pytest.raises(TypeError, match=r"got float 2\.5"):
        M.top_pairs(m, 2.5)
    assert M.top_pairs(m, 0) == []
    assert len(M.top_pairs(m, 10)) == 3  # more than there are: all pairs
    assert M.top_pairs(m, np.int64(1)) == [(1, 0, 0.9)]


def test_calibrated_threshold_known_values():
    held_out = np.arange(101) / 100  # 0.00, 0.01, ..., 1.00
    assert M.calibrated_threshold(held_out) == pytest.approx(0.99)  # the 99th percentile
    assert M.calibrated_threshold(held_out, 0.9) == pytest.approx(0.9)
    assert M.calibrated_threshold(held_out, 0.9, above=False) == pytest.approx(0.1)
    assert M.calibrated_threshold(torch.tensor([0.2, 0.4]), 0.5) == pytest.approx(0.3)
    # at most 1 − quantile of the held-out images pass their own threshold
    th = M.calibrated_threshold(held_out, 0.95)
    assert M.memorization_rate(held_out[held_out != th], th) <= 0.05
    for bad in (0, 1, 1.5, -0.1, "0.9"):
        with pytest.raises(ValueError, match="quantile must be a number in"):
            M.calibrated_threshold(held_out, bad)
    with pytest.raises(ValueError, match="1-D"):
        M.calibrated_threshold(np.zeros((3, 2)))


@pytest.mark.parametrize("batch_size", [7, 1024])
def test_many_images_each_with_many_copies(batch_size):
    gen, train = _data(20, 30, seed=18)
    copies = gen.repeat_interleave(6, dim=0)  # six copies of every generated image, in order
    train = torch.cat([train[:10], copies, train[10:]])
    first = 10 + 6 * torch.arange(20)
    for search in (M.max_correlation, M.min_tiled_l2):
        values, indices = search(gen, train, batch_size=batch_size)
        assert torch.equal(indices, first)
    assert values.abs().max().item() == 0.0


def test_non_finite_rows_are_named_instead_of_hiding_exact_copies():
    gen, train = _data(3, 10)
    train[6, 0, 1, 1] = float("nan")  # it returned -inf for every query
    with pytest.raises(ValueError, match=r"training holds NaN or Inf in 1 row\(s\) \(e.g. \[6\]\)"):
        M.max_correlation(train[[2]], train)
    gen[1, 0, 0, 0] = float("inf")
    with pytest.raises(
        ValueError, match=r"generated holds NaN or Inf in 1 row\(s\) \(e.g. \[1\]\)"
    ):
        M.min_tiled_l2(gen, _data(3, 10)[1])
    feats = torch.rand(5, 4)
    feats[0, 0] = float("nan")
    with pytest.raises(ValueError, match="training holds NaN"):
        M.max_cosine(torch.rand(2, 4), feats)


def test_integer_images_are_searched_as_numbers():
    train = (_data(1, 10)[1] * 255).to(torch.uint8)
    assert M.max_correlation(train[[4]], train).indices.tolist() == [4]


def test_rates_and_thresholds_refuse_nan():
    with pytest.raises(
        ValueError, match=r"values holds 1 NaN or Inf value\(s\) \(e.g. at index 1\)"
    ):
        M.memorization_rate([0.9, float("nan")], 0.95)  # it counted NaN as "not a copy"
    with pytest.raises(ValueError, match="threshold must be a number"):
        M.memorization_rate([0.9, 0.99], float("nan"))
    with pytest.raises(ValueError, match="held_out_values holds 1 NaN"):
        M.calibrated_threshold([0.1, float("nan"), 0.3], 0.5)
    with pytest.raises(ValueError, match="noise_std and max_shift must be ≥ 0"):
        M.plant_copies(*_data(2, 6), 1, noise_std=float("nan"))
