"""Tests for helpers.radiomics: first-order features against SciPy and NumPy (the closed form of
pyradiomics), windows, FIN pre-training targets, the FIN classifier, and errors."""

import numpy as np
import pytest
import torch
from scipy.stats import entropy, kurtosis, skew
from sklearn.metrics import r2_score

from helpers import radiomics


def _reference(x: np.ndarray, bins: int = 32) -> list[float]:
    counts = np.histogram(np.clip(x, 0, 1), bins=bins, range=(0, 1))[0]
    return [
        x.mean(),
        x.var(),
        skew(x, bias=True),
        kurtosis(x, fisher=False, bias=True),
        entropy(counts, base=2),
        (x**2).mean(),
    ]


def test_first_order_equals_scipy():
    rng = np.random.default_rng(0)
    x = rng.beta(2, 5, size=(5, 7, 9))
    got = radiomics.first_order(torch.from_numpy(x))
    assert got.shape == (5, 6) and got.dtype == torch.float64
    for row, region in zip(got.numpy(), x, strict=True):
        np.testing.assert_allclose(row, _reference(region.ravel()), rtol=1e-10, atol=1e-12)


def test_first_order_with_a_mask_and_flat_regions():
    rng = np.random.default_rng(1)
    x = rng.random((3, 6, 6))
    mask = rng.random((3, 6, 6)) > 0.4
    got = radiomics.first_order(torch.from_numpy(x), torch.from_numpy(mask))
    for row, region, m in zip(got.numpy(), x, mask, strict=True):
        np.testing.assert_allclose(row, _reference(region[m]), rtol=1e-10, atol=1e-12)
    flat = radiomics.first_order(torch.full((1, 16), 0.3))[0]
    assert flat[2] == 0 and flat[3] == 0 and flat[4] == 0  # pyradiomics' convention: 0, not NaN
    assert flat[0].item() == pytest.approx(0.3) and flat[5].item() == pytest.approx(0.09)


def test_window_features_match_first_order_of_each_window():
    g = torch.Generator().manual_seed(2)
    images = torch.rand(2, 1, 12, 12, generator=g)
    maps = radiomics.window_features(images, window=4, stride=4)
    assert maps.shape == (2, 6, 3, 3)
    block = images[1, :, 4:8, 8:12].reshape(1, -1)
    assert torch.allclose(maps[1, :, 1, 2], radiomics.first_order(block)[0])


def test_random_windows_are_crops_and_seeded():
    images = torch.arange(2 * 10 * 10, dtype=torch.float32).view(2, 1, 10, 10)
    w = radiomics.random_windows(images, 5, 4, generator=torch.Generator().manual_seed(0))
    again = radiomics.random_windows(images, 5, 4, generator=torch.Generator().manual_seed(0))
    assert w.shape == (5, 1, 4, 4) and torch.equal(w, again)
    for crop in w:
        v = int(crop[0, 0, 0])
        k, rest = divmod(v, 100)
        t, s = divmod(rest, 10)
        assert torch.equal(crop, images[k, :, t : t + 4, s : s + 4])


def test_fin_learns_its_targets_and_stores_their_statistics():
    g = torch.Generator().manual_seed(0)
    scale = 0.2 + 0.8 * torch.rand(16, 1, 1, 1, generator=g)  # window statistics vary a lot
    images = scale * torch.rand(16, 1, 16, 16, generator=g) ** 2
    cfg = radiomics.FINConfig(hidden=16, n_windows=1024, steps=250, batch_size=64, lr=1e-2)
    fin, losses = radiomics.train_fin(images, cfg, seed=0, device="cpu")
    assert np.mean(losses[-20:]) < 0.9 * np.mean(losses[:20])
    windows = radiomics.random_windows(
        images, 512, cfg.window, generator=torch.Generator().manual_seed(1)
    )
    targets = radiomics.first_order(windows, bins=cfg.bins)
    assert torch.allclose(fin.target_mean.double(), targets.mean(0), rtol=0.2, atol=0.02)
    with torch.no_grad():
        imitated = fin.features(windows).flatten(1)
    r2 = radiomics.r_squared(imitated, targets)
    assert r2[0] > 0.9 and r2[5] > 0.9  # mean and energy: averages of functions of one intensity
    np.testing.assert_allclose(
        r2, [r2_score(targets[:, i], imitated[:, i]) for i in range(6)], rtol=1e-6
    )
    short = cfg.replace(steps=5)
    assert (
        radiomics.train_fin(images, short, seed=0)[1]
        == radiomics.train_fin(images, short, seed=0)[1]
    )


def test_fin_and_classifier_shapes():
    fin = radiomics.FIN(hidden=4, window=8, stride=4, seed=0)
    assert fin(torch.rand(3, 1, 32, 32)).shape == (3, 6, 7, 7)
    assert fin.features(torch.rand(3, 1, 8, 8)).shape == (3, 6, 1, 1)
    net = radiomics.FINClassifier(fin, num_classes=3, width=4, seed=0)
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 3)
    assert torch.equal(
        radiomics.FIN(4, seed=1).pixel[0].weight, radiomics.FIN(4, seed=1).pixel[0].weight
    )


def test_errors():
    with pytest.raises(ValueError, match="NaN"):
        radiomics.first_order(torch.tensor([[0.1, float("nan")]]))
    with pytest.raises(ValueError, match="non-empty"):
        radiomics.first_order(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="mask has shape"):
        radiomics.first_order(torch.zeros(2, 4), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="no voxel"):
        radiomics.first_order(torch.zeros(2, 4), torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        radiomics.window_features(torch.zeros(2, 3, 8, 8), 4, 4)
    with pytest.raises(ValueError, match="H, W ≥ 8"):
        radiomics.FIN(4)(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="positive int"):
        radiomics.FINConfig(window=0)
    with pytest.raises(ValueError, match="equal"):
        radiomics.r_squared(torch.zeros(3, 2), torch.zeros(3, 3))
