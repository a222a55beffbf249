"""Tests for helpers.ood: histograms against NumPy, distances against SciPy, AUROC against
scikit-learn, k-NN scores by brute force, the autoencoder's shapes, and clear errors."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance
from sklearn.metrics import roc_auc_score

from helpers import ood


def test_histograms_equal_numpy():
    rng = np.random.default_rng(0)
    vols = torch.from_numpy(rng.random((3, 5, 6, 7)) * 1.2 - 0.1)  # some values outside [0, 1]
    h = ood.intensity_histograms(vols, bins=10, normalise=False)
    assert h.shape == (3, 10) and torch.allclose(h.sum(1), torch.ones(3, dtype=torch.float64))
    for v, row in zip(vols.numpy(), h.numpy(), strict=True):
        clipped = np.clip(v, 0, 1)  # outside values fall into the edge bins
        np.testing.assert_allclose(row, np.histogram(clipped, 10, (0, 1))[0] / v.size)
    assert torch.allclose(
        ood.intensity_histograms(vols[:, 0, 0, :], bins=10, normalise=False).sum(1),
        torch.ones(3, dtype=torch.float64),
    )  # any shape (N, ...)


def test_normalise_divides_by_the_robust_maximum():
    rng = np.random.default_rng(1)
    v = torch.from_numpy(rng.random((2, 10, 10, 10))).float()
    scaled = torch.stack([v[0] * 0.5, v[1] * 3])
    out = ood.normalise_intensities(scaled)
    assert torch.allclose(out, ood.normalise_intensities(v), atol=1e-6)  # a gain is undone
    assert float(out.max()) <= 1 and float(out.min()) >= 0
    expected = np.clip(scaled[0].numpy() / np.percentile(scaled[0].numpy(), 99.5), 0, 1)
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=1e-5)
    assert torch.equal(ood.normalise_intensities(torch.zeros(1, 4, 4)), torch.zeros(1, 4, 4))


@pytest.mark.parametrize("metric", ["euclidean", "cityblock"])
def test_distances_equal_scipy_cdist(metric):
    rng = np.random.default_rng(2)
    a, b = rng.dirichlet(np.ones(16), 5), rng.dirichlet(np.ones(16), 7)
    got = ood.histogram_distances(torch.from_numpy(a), torch.from_numpy(b), metric=metric)
    np.testing.assert_allclose(got.numpy(), cdist(a, b, metric=metric), rtol=1e-10, atol=1e-14)


def test_wasserstein_equals_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.dirichlet(np.ones(12), 4), rng.dirichlet(np.ones(12), 3)
    got = ood.histogram_distances(
        torch.from_numpy(a), torch.from_numpy(b), metric="wasserstein", value_range=(0, 2)
    )
    centres = (np.arange(12) + 0.5) * 2 / 12
    for i in range(4):
        for j in range(3):
            assert got[i, j].item() == pytest.approx(
                wasserstein_distance(centres, centres, a[i], b[j]), rel=1e-9
            )


def test_knn_scores_by_brute_force():
    rng = np.random.default_rng(4)
    train, test = rng.random((20, 8)), rng.random((6, 8))
    got = ood.knn_scores(torch.from_numpy(test), torch.from_numpy(train), k=3).numpy()
    d = np.sqrt(((test[:, None] - train[None]) ** 2).sum(-1))
    np.testing.assert_allclose(got, np.sort(d, axis=1)[:, :3].mean(1), rtol=1e-10)


def test_detection_auroc_equals_scikit_learn_and_interval_brackets_it():
    rng = np.random.default_rng(5)
    s_in, s_out = rng.normal(0, 1, 40), rng.normal(1, 1, 30)
    value, (lo, hi) = ood.detection_auroc(s_in, s_out, n_boot=300, seed=0)
    assert value == pytest.approx(
        roc_auc_score(np.r_[np.zeros(40), np.ones(30)], np.r_[s_in, s_out])
    )
    assert lo <= value <= hi and 0 <= lo < hi <= 1
    perfect = ood.detection_auroc([0.0, 0.1], [1.0, 2.0], n_boot=50)
    assert perfect == (1.0, (1.0, 1.0))


def test_histogram_score_separates_a_global_change():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(30, 6, 8, 8, generator=g) * 0.6
    test_in = torch.rand(10, 6, 8, 8, generator=g) * 0.6
    test_out = 1 - test_in  # another contrast
    h_train = ood.intensity_histograms(train, bins=16)
    s_in = ood.knn_scores(ood.intensity_histograms(test_in, bins=16), h_train, k=3)
    s_out = ood.knn_scores(ood.intensity_histograms(test_out, bins=16), h_train, k=3)
    assert ood.detection_auroc(s_in, s_out, n_boot=10)[0] == 1.0


def test_autoencoder_shapes_training_and_scores():
    cfg = ood.AEConfig(width=4, latent=2, steps=5, batch_size=8)
    vols = torch.rand(3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    model, losses = ood.train_autoencoder(vols, cfg, seed=0, device="cpu")
    again, losses2 = ood.train_autoencoder(vols, cfg, seed=0, device="cpu")
    assert len(losses) == 5 and losses == losses2
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)
    mean_err, local_err = ood.reconstruction_scores(model, vols, window=3)
    assert mean_err.shape == local_err.shape == (3,) and bool((local_err >= mean_err).all())


def test_presets_and_config_errors():
    assert ood.AEConfig.preset("smoke").steps < ood.AEConfig.preset("laptop").steps
    with pytest.raises(ValueError, match="width"):
        ood.AEConfig(width=0)


def test_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        ood.intensity_histograms(torch.tensor([[0.1, float("nan")]]))
    with pytest.raises(ValueError, match="empty"):
        ood.intensity_histograms(torch.zeros(0, 4, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        ood.intensity_histograms(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="low < high"):
        ood.intensity_histograms(torch.rand(2, 4), value_range=(1, 0))
    with pytest.raises(ValueError, match="same B"):
        ood.histogram_distances(torch.rand(2, 8), torch.rand(2, 9))
    with pytest.raises(ValueError, match="metric"):
        ood.histogram_distances(torch.rand(2, 8), torch.rand(2, 8), metric="cosine")
    with pytest.raises(ValueError, match="k must be"):
        ood.knn_scores(torch.rand(2, 8), torch.rand(3, 8), k=4)
    with pytest.raises(ValueError, match="empty"):
        ood.knn_scores(torch.rand(2, 8), torch.rand(0, 8), k=1)
    with pytest.raises(ValueError, match="both sides"):
        ood.detection_auroc([], [1.0])
    with pytest.raises(ValueError, match="divisible by 8"):
        ood.SliceAutoencoder(4, 2)(torch.rand(1, 1, 12, 12))
    with pytest.raises(ValueError, match="odd"):
        ood.reconstruction_scores(ood.SliceAutoencoder(4, 2), torch.rand(1, 2, 8, 8), window=4)
