"""helpers.ssl: encoder shapes, augmentation, InfoNCE, k-NN probe, cache."""

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import ssl


def test_encoder_shapes_and_finite():
    enc = ssl.Encoder(3, width=8, dim=16)
    out = enc(torch.rand(4, 3, 16, 16))
    assert out.shape == (4, 16) and torch.isfinite(out).all()
    e = ssl.embed(enc, torch.rand(5, 3, 16, 16), batch_size=2)
    assert e.shape == (5, 16)
    assert torch.allclose(e.norm(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.rand(2, 1, 16, 16))


def test_augment_range_shape_and_seed():
    x = torch.rand(6, 3, 16, 16)
    a = ssl.augment(x, torch.Generator().manual_seed(0))
    b = ssl.augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.allclose(a, x)


def test_info_nce_known_values():
    # perfectly matched, well separated views: loss near 0; identical rows: chance level log(2B-1)
    z = torch.eye(4) * 10
    assert ssl.info_nce(z, z, temperature=0.05) < 1e-3
    same = torch.ones(4, 3)
    assert math.isclose(float(ssl.info_nce(same, same, 0.2)), math.log(7), rel_tol=1e-5)
    with pytest.raises(ValueError):
        ssl.info_nce(torch.ones(4, 3), torch.ones(3, 3))


def test_info_nce_matches_cross_entropy_by_hand():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / 0.3
    losses = []
    for i in range(10):
        j = (i + 5) % 10
        others = [k for k in range(10) if k != i]
        losses.append(-(sim[i, j] - torch.logsumexp(sim[i, others], 0)))
    assert torch.allclose(ssl.info_nce(z1, z2, 0.3), torch.stack(losses).mean(), atol=1e-5)


def test_knn_accuracy():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    assert ssl.knn_accuracy(train, labels, test, torch.tensor([0, 1]), k=1) == 1.0
    assert ssl.knn_accuracy(train, labels, test, torch.tensor([1, 0]), k=1) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        ssl.knn_accuracy(train, labels, test, torch.tensor([0, 1]), k=9)


def test_config_validation_and_presets():
    assert ssl.SSLConfig.preset("smoke").size == 16
    assert ssl.SSLConfig.preset("gpu").size >= 64
    with pytest.raises(ValueError, match="divisible by 4"):
        ssl.SSLConfig(size=18)
    with pytest.raises(ValueError):
        ssl.SSLConfig(steps=0)


def test_train_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    cfg = ssl.SSLConfig(size=8, width=4, dim=8, steps=2, batch_size=8, n_patches=16)
    x = torch.rand(16, 3, 8, 8)
    enc = ssl.load_encoder(config=cfg, images=x, progress=False)
    files = list(tmp_path.glob("ssl_simclr_*.safetensors"))
    assert len(files) == 1
    again = ssl.load_encoder(config=cfg, images=None, progress=False)  # read back, no training
    assert torch.equal(ssl.embed(enc, x), ssl.embed(again, x))
    with pytest.raises(KeyError, match="unknown encoder"):
        ssl.load_encoder("nope")
    with pytest.raises(RuntimeError, match="allow_network"):
        ssl.load_encoder("dino-vits16")
