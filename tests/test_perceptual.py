"""Tests for helpers.perceptual: triplets with known answers, SSIM against scikit-image, LPIPS-style
distances, the ensemble's identities and tuning, 2AFC and recall@1."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from helpers import perceptual


@pytest.fixture(scope="module")
def image():
    """A smooth random colour image (structure at several scales), 128 × 128 × 3 in [0, 1]."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.random((128, 128, 3)), sigma=(2, 2, 0))
    return (img - img.min()) / (img.max() - img.min())


def test_triplets_are_deterministic_and_shaped(image):
    a = perceptual.make_triplets(image, n_per_family=3, size=16, seed=1)
    b = perceptual.make_triplets(image, n_per_family=3, size=16, seed=1)
    c = perceptual.make_triplets(image, n_per_family=3, size=16, seed=2)
    assert len(a) == 15 and a.families() == perceptual.FAMILIES
    for name in ("reference", "same", "other"):
        x = getattr(a, name)
        assert x.shape == (15, 3, 16, 16) and x.dtype == torch.float32
        assert 0 <= float(x.min()) and float(x.max()) <= 1
        assert torch.equal(x, getattr(b, name))
    assert np.array_equal(a.positions, b.positions) and not np.array_equal(a.positions, c.positions)
    assert a.mask("blur").sum() == 3


def test_triplets_known_answers(image):
    t = perceptual.make_triplets(image, n_per_family=4, size=16, columns=(32, 128), seed=3)
    for i in range(len(t)):
        top, left, o_top, o_left = t.positions[i]
        ref = torch.from_numpy(image[top : top + 16, left : left + 16]).permute(2, 0, 1).float()
        other = (
            torch.from_numpy(image[o_top : o_top + 16, o_left : o_left + 16])
            .permute(2, 0, 1)
            .float()
        )
        assert torch.allclose(t.reference[i], ref) and torch.allclose(t.other[i], other)
        assert abs(top - o_top) >= 16 or abs(left - o_left) >= 16  # the other patch never overlaps
        assert (
            left >= 32 + perceptual.margin_for(16) and o_left >= 32
        )  # inside the columns asked for
        assert not torch.equal(t.same[i], t.reference[i])  # the edit changed the pixels
    # the shifted variant is a crop of the source image at an offset of 2–4 pixels per axis
    for i in np.flatnonzero(t.mask("shift")):
        top, left = t.positions[i, :2]
        found = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if np.allclose(
                t.same[i].permute(1, 2, 0).numpy(),
                image[top + dy : top + dy + 16, left + dx : left + dx + 16],
                atol=1e-6,
            )
        ]
        assert len(found) == 1 and min(abs(found[0][0]), abs(found[0][1])) >= 2


def test_edits(image):
    rng = np.random.default_rng(0)
    patch = image[40:56, 40:56]
    flipped = perceptual.edit(image, 40, 40, 16, "flip", rng)
    assert np.array_equal(flipped, patch[:, ::-1])
    for family in perceptual.EDITS:
        out = perceptual.edit(image, 40, 40, 16, family, np.random.default_rng(1))
        assert out.shape == (16, 16, 3) and 0 <= out.min() and out.max() <= 1
    blurred = perceptual.edit(image, 40, 40, 16, "blur", rng)
    assert np.abs(np.diff(blurred, axis=0)).mean() < np.abs(np.diff(patch, axis=0)).mean()
    grey = perceptual.edit(image[..., 0], 40, 40, 16, "jpeg", rng)
    assert grey.shape == (16, 16, 1)


def test_low_level_statistics_match_numpy():
    p = np.random.default_rng(0).random((2, 8, 8, 3))
    s = perceptual.low_level_statistics(p)
    assert s.shape == (2, 7)
    np.testing.assert_allclose(s[:, :3], p.mean(axis=(1, 2)))
    np.testing.assert_allclose(s[:, 3:6], p.std(axis=(1, 2)))
    t = perceptual.low_level_statistics(torch.from_numpy(p).permute(0, 3, 1, 2))
    np.testing.assert_allclose(s, t)


def test_ssim_equals_scikit_image():
    rng = np.random.default_rng(4)
    a = rng.random((3, 3, 20, 24))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    got = perceptual.ssim(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    expected = [
        structural_similarity(x, y, data_range=1.0, channel_axis=0)
        for x, y in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    grey = perceptual.ssim(torch.from_numpy(a[:, :1]), torch.from_numpy(b[:, :1]), win_size=5)
    np.testing.assert_allclose(
        grey.numpy(),
        [
            structural_similarity(x[0], y[0], data_range=1.0, win_size=5)
            for x, y in zip(a, b, strict=True)
        ],
        rtol=1e-10,
    )


def test_lpips_pairwise_paired_and_blocks_agree():
    torch.manual_seed(0)
    layers = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 3, 2, 1)
    )
    x, y = torch.rand(6, 3, 8, 8), torch.rand(4, 3, 8, 8)
    fx, fy = (
        perceptual.layer_features(layers, x, [0, 2]),
        perceptual.layer_features(layers, y, [0, 2]),
    )
    assert [tuple(f.shape) for f in fx] == [(6, 4, 8, 8), (6, 5, 4, 4)]
    assert torch.allclose(fx[0].norm(dim=1), torch.ones(6, 8, 8), atol=1e-5)
    pair = perceptual.lpips_distance(fx, fy, pairwise=True)
    assert pair.shape == (6, 4)
    for i in range(6):
        for j in range(4):
            single = perceptual.lpips_distance(
                [f[i : i + 1] for f in fx], [f[j : j + 1] for f in fy]
            )
            assert torch.allclose(pair[i, j], single[0], atol=1e-6)
    bx, names, sizes = perceptual.lpips_blocks(fx)
    by, _, _ = perceptual.lpips_blocks([f[:1].expand(6, -1, -1, -1) for f in fy])
    assert len(names) == 9 and sizes == [64] * 4 + [16] * 5 and bx.shape == (6, 4 * 64 + 5 * 16)
    ens = perceptual.Ensemble(names, sizes)
    by_blocks = ens.components(bx, by).sum(1)
    direct = perceptual.lpips_distance(fx, [f[:1].expand(6, -1, -1, -1) for f in fy])
    assert torch.allclose(by_blocks, direct, atol=1e-6)


def test_ensemble_identities():
    ens = perceptual.Ensemble(["a", "b"], [2, 3])
    with torch.no_grad():
        ens.logits.copy_(torch.log(torch.tensor([0.2, 0.8], dtype=torch.float64)))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    comp = ens.components(a, b)
    assert torch.allclose(comp[:, 0], ((a[:, :2] - b[:, :2]) ** 2).sum(1).double())
    d = ens(comp)
    assert torch.allclose(d, ((ens.concatenate(a) - ens.concatenate(b)) ** 2).sum(1))
    assert torch.allclose(ens.pairwise(a, b).diagonal(), d)
    assert torch.allclose(ens.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    # unit-length blocks: the block distance is 2 (1 − cos)
    u = torch.nn.functional.normalize(a[:, :2], dim=1)
    v = torch.nn.functional.normalize(b[:, :2], dim=1)
    one = perceptual.Ensemble(["x"], [2])
    assert torch.allclose(
        one.components(u, v)[:, 0], 2 * perceptual.cosine_distances(u, v), atol=1e-6
    )


def test_fit_ensemble_weights_the_informative_block():
    g = torch.Generator().manual_seed(1)
    n = 200
    informative_same, informative_other = torch.rand(n, generator=g), 1 + torch.rand(n, generator=g)
    noise_same, noise_other = 5 * torch.rand(n, generator=g), 5 * torch.rand(n, generator=g)
    d_same = torch.stack([informative_same, noise_same], 1)
    d_other = torch.stack([informative_other, noise_other], 1)
    ens = perceptual.Ensemble(["useful", "noise"], [1, 1])
    before = perceptual.two_afc(ens(d_same).detach(), ens(d_other).detach()).mean()
    losses = perceptual.fit_ensemble(ens, d_same, d_other, steps=200)
    after = perceptual.two_afc(ens(d_same).detach(), ens(d_other).detach()).mean()
    assert losses[-1] < losses[0] and after == 1.0 and after > before
    assert ens.weights[0] > 0.9
    again = perceptual.Ensemble(["useful", "noise"], [1, 1])
    perceptual.fit_ensemble(again, d_same, d_other, steps=200)
    assert torch.equal(again.logits, ens.logits)  # deterministic


def test_two_afc_and_recall():
    assert perceptual.two_afc([1, 2, 3], [2, 2, 1]).tolist() == [1.0, 0.5, 0.0]
    d = torch.tensor([[0.0, 1.0, 2.0], [3.0, 1.0, 1.0], [2.0, 2.0, 0.5]])
    assert perceptual.recall_at_1(d, [0, 2, 2]).tolist() == [
        True,
        False,
        True,
    ]  # ties → lowest index


def test_cosine_distances():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    assert torch.allclose(
        perceptual.cosine_distances(a, b), torch.tensor([1 - 2**-0.5, 2.0], dtype=torch.float64)
    )
    assert perceptual.cosine_distances(a, b, pairwise=True).shape == (2, 2)


def test_errors(image):
    with pytest.raises(ValueError, match="differ in shape"):
        perceptual.ssim(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 9))
    with pytest.raises(ValueError, match="non-empty"):
        perceptual.ssim(torch.rand(0, 1, 8, 8), torch.rand(0, 1, 8, 8))
    with pytest.raises(KeyError, match="unknown edit"):
        perceptual.edit(image, 0, 0, 16, "rotate", np.random.default_rng(0))
    with pytest.raises(ValueError, match="NaN"):
        perceptual.make_triplets(np.full((64, 64, 3), np.nan), n_per_family=1, size=16)
    with pytest.raises(ValueError, match="columns"):
        perceptual.make_triplets(image, n_per_family=1, size=16, columns=(100, 110))
    with pytest.raises(ValueError, match="families"):
        perceptual.make_triplets(image, n_per_family=1, size=16, families=("warp",))
    with pytest.raises(ValueError, match="equal length"):
        perceptual.two_afc([1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        perceptual.two_afc([], [])
    with pytest.raises(ValueError, match="features must be"):
        perceptual.Ensemble(["a"], [3]).components(torch.rand(2, 4), torch.rand(2, 4))
    with pytest.raises(ValueError, match="target"):
        perceptual.recall_at_1(torch.rand(2, 3), [0, 3])
    with pytest.raises(ValueError, match="empty"):
        perceptual.cosine_distances(torch.rand(0, 3), torch.rand(2, 3))


def test_load_lpips_never_downloads(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    model, why = perceptual.load_lpips()
    assert model is None and "not installed" in why


def test_pairwise_ssim_equals_paired():
    g = torch.Generator().manual_seed(7)
    a, b = torch.rand(3, 3, 12, 12, generator=g), torch.rand(4, 3, 12, 12, generator=g)
    m = perceptual.ssim(a, b, pairwise=True)
    assert m.shape == (3, 4)
    for i in range(3):
        assert torch.allclose(m[i], perceptual.ssim(a[i : i + 1].expand_as(b), b), atol=1e-12)
    with pytest.raises(ValueError, match="one size"):
        perceptual.ssim(a, torch.rand(2, 3, 12, 13), pairwise=True)
