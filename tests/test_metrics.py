"""Tests for helpers.metrics: equal to scikit-image, scikit-learn and SciPy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.metrics import roc_auc_score

from helpers import metrics


def test_psnr_known_value_and_skimage():
    assert metrics.psnr(np.zeros((8, 8)), np.full((8, 8), 0.1)) == pytest.approx(20.0)
    rng = np.random.default_rng(0)
    ref, img = rng.random((3, 1, 16, 16)), rng.random((3, 1, 16, 16))
    out = metrics.psnr(torch.from_numpy(ref), torch.from_numpy(img))
    assert out.shape == (3,)
    expected = [
        peak_signal_noise_ratio(r, i, data_range=1.0) for r, i in zip(ref, img, strict=True)
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert metrics.psnr(ref[0], ref[0]) == np.inf


def test_ssim_equals_skimage_for_gray_and_colour():
    rng = np.random.default_rng(1)
    a = rng.random((32, 32))
    b = np.clip(a + 0.1 * rng.standard_normal((32, 32)), 0, 1)
    assert metrics.ssim(a, b) == pytest.approx(
        structural_similarity(a, b, data_range=1.0), rel=1e-12
    )
    c, d = rng.random((3, 24, 24)), rng.random((3, 24, 24))
    expected = structural_similarity(c, d, data_range=1.0, channel_axis=0)
    assert metrics.ssim(torch.from_numpy(c).float(), torch.from_numpy(d).float()) == pytest.approx(
        expected, rel=1e-6
    )
    batch = metrics.ssim(np.stack([a[None], b[None]]), np.stack([a[None], a[None]]))
    np.testing.assert_allclose(
        batch, [1.0, structural_similarity(b, a, data_range=1.0)], rtol=1e-12
    )


def test_image_metric_errors():
    with pytest.raises(
        ValueError, match=r"reference has shape \(8, 8\) but image has shape \(8, 9\)"
    ):
        metrics.psnr(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="win_size"):
        metrics.ssim(np.zeros((5, 5)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="expected"):
        metrics.psnr(np.zeros(5), np.zeros(5))


def _frechet_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """The pytorch-fid formula with scipy.linalg.sqrtm."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_equals_scipy_sqrtm_formula():
    rng = np.random.default_rng(2)
    mix = rng.standard_normal((6, 6))
    a = rng.standard_normal((400, 6)) @ mix
    b = rng.standard_normal((300, 6)) @ (mix + 0.3 * rng.standard_normal((6, 6))) + 0.5
    assert metrics.frechet_distance(a, b) == pytest.approx(_frechet_scipy(a, b), rel=1e-8)
    assert metrics.frechet_distance(a, b) == pytest.approx(metrics.frechet_distance(b, a), rel=1e-8)


def test_frechet_distance_known_values():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((1000, 4))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # a shift moves only the mean term
    assert metrics.frechet_distance(a, a + np.array([1.0, 2.0, 0.0, 0.0])) == pytest.approx(5.0)
    # diagonal Gaussians: ‖Δμ‖² + Σ (σ_a − σ_b)²
    mu_a, mu_b = np.zeros(3), np.array([1.0, 0.0, -1.0])
    va, vb = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    value = metrics.frechet_distance_from_statistics(mu_a, np.diag(va), mu_b, np.diag(vb))
    assert value == pytest.approx(2.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0)


def test_frechet_distance_is_real_and_nonnegative_for_singular_covariances():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((20, 64))  # N < D: rank-deficient covariances
    value = metrics.frechet_distance(a, a.copy())
    assert isinstance(value, float) and 0.0 <= value < 1e-6
    b = rng.standard_normal((20, 64))
    assert metrics.frechet_distance(a, b) > 0


def test_frechet_distance_errors():
    with pytest.raises(ValueError, match="N ≥ 2"):
        metrics.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="feature dimensions differ"):
        metrics.frechet_distance(np.random.rand(5, 3), np.random.rand(5, 4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) + 0.3 * labels, 1)  # rounding creates many ties
    assert metrics.auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.auroc(torch.from_numpy(labels), torch.from_numpy(scores)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12
    )


def test_auroc_known_values_and_errors():
    assert metrics.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.auroc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert metrics.auroc([0, 1], [0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        metrics.auroc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="0 or 1"):
        metrics.auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="entries"):
        metrics.auroc([0, 1, 1], [0.1, 0.2])


# --------------------------------------------------------------------------------------------
# integer and PIL images, non-finite values


def test_psnr_and_ssim_take_the_peak_from_the_dtype_as_skimage():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.choice([-5, 5], a.shape), 0, 255).astype(np.uint8)
    assert metrics.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b), rel=1e-12)
    assert 34 < metrics.psnr(a, b) < 35  # ±5 grey levels of 255 (it gave −10.3 dB)
    assert metrics.ssim(a, b) == pytest.approx(structural_similarity(a, b), rel=1e-12)
    c = (a.astype(np.uint16) * 257)[None]  # 16-bit, (1, H, W)
    d = (b.astype(np.uint16) * 257)[None]
    assert metrics.psnr(c, d) == pytest.approx(peak_signal_noise_ratio(c, d), rel=1e-12)
    x = rng.random((8, 8)) * 2 - 1  # floats with negative values: range 2, as skimage
    y = x + 0.01
    assert metrics.psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y), rel=1e-12)
    with pytest.raises(ValueError, match="pass data_range"):
        metrics.psnr(x * 3, y)
    assert metrics.psnr(x * 3, y * 3, data_range=6) == pytest.approx(
        peak_signal_noise_ratio(x * 3, y * 3, data_range=6)
    )


def test_pil_images_are_read_as_c_h_w():
    from PIL import Image

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)
    pa, pb = Image.fromarray(a), Image.fromarray(b)
    assert metrics.psnr(pa, pb) == pytest.approx(peak_signal_noise_ratio(a, b), rel=1e-12)
    assert metrics.ssim(pa, pb) == pytest.approx(
        structural_similarity(a, b, channel_axis=-1), rel=1e-12
    )


def test_mixed_dtypes_nan_and_empty_images_are_refused():
    with pytest.raises(TypeError, match="dtype uint8 but image has float64"):
        metrics.psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 4)))
    x = np.zeros((8, 8))
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"image holds 1 non-finite value\(s\).*\(2, 3\)"):
        metrics.psnr(np.zeros((8, 8)), x)
    with pytest.raises(ValueError, match="non-finite"):
        metrics.ssim(np.zeros((8, 8)), x)
    with pytest.raises(ValueError, match="empty"):
        metrics.psnr(np.zeros((0, 0)), np.zeros((0, 0)))
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="data_range"):
            metrics.psnr(np.zeros((8, 8)), np.ones((8, 8)), data_range=bad)
    with pytest.raises(ValueError, match="mse must be a number ≥ 0"):
        metrics.mse_to_psnr(-1.0)


def test_frechet_and_auroc_refuse_non_finite_values():
    a = np.random.default_rng(0).normal(size=(20, 3))
    b = a.copy()
    b[4, 1] = np.nan  # it raised LinAlgError
    with pytest.raises(ValueError, match=r"features holds 1 non-finite value\(s\).*\(4, 1\)"):
        metrics.frechet_distance(a, b)
    b[4, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        metrics.frechet_distance(b, a)
    with pytest.raises(ValueError, match="scores holds 1 non-finite"):
        metrics.auroc([0, 1, 0, 1], [0.1, np.nan, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"others must be \(M, 4\)"):
        metrics.cosine_to_reference(torch.rand(2, 3, 4), torch.rand(2, 4), torch.rand(5, 3))


def test_bootstrap_interval_of_a_rate_and_of_auroc():
    correct = np.r_[np.ones(80), np.zeros(20)]
    lo, hi = metrics.bootstrap_interval(np.mean, correct, n_boot=2000, seed=0)
    # the normal approximation of a binomial rate: 0.8 ± 1.96·0.04
    assert lo == pytest.approx(0.8 - 1.96 * 0.04, abs=0.02) and hi == pytest.approx(
        0.8 + 1.96 * 0.04, abs=0.02
    )
    assert metrics.bootstrap_interval(
        np.mean, correct, n_boot=200, seed=3
    ) == metrics.bootstrap_interval(np.mean, correct, n_boot=200, seed=3)
    wide = metrics.bootstrap_interval(np.mean, correct[::4], n_boot=500, seed=0)
    assert wide[1] - wide[0] > hi - lo  # fewer trials, wider interval
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(30), np.ones(5)]
    scores = np.r_[rng.normal(0, 1, 30), rng.normal(1.5, 1, 5)]
    value = metrics.auroc(labels, scores)
    a, b = metrics.bootstrap_interval(metrics.auroc, labels, scores, n_boot=300, strata=labels)
    assert a <= value <= b  # stratified: every replicate has both classes


def test_bootstrap_interval_errors():
    with pytest.raises(ValueError, match="at least one"):
        metrics.bootstrap_interval(np.mean)
    with pytest.raises(ValueError, match="equal lengths"):
        metrics.bootstrap_interval(np.mean, [1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        metrics.bootstrap_interval(np.mean, [])
    with pytest.raises(ValueError, match="level"):
        metrics.bootstrap_interval(np.mean, [1, 2], level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        metrics.bootstrap_interval(np.mean, [1, 2], n_boot=0)
    with pytest.raises(ValueError, match="strata"):
        metrics.bootstrap_interval(np.mean, [1, 2], strata=[0])
