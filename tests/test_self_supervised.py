"""helpers.self_supervised: encoder shapes, augmentation, InfoNCE, k-NN probe, cache."""

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import datasets, self_supervised


def test_encoder_shapes_and_finite():
    enc = self_supervised.Encoder(3, width=8, dim=16)
    out = enc(torch.rand(4, 3, 16, 16))
    assert out.shape == (4, 16) and torch.isfinite(out).all()
    e = self_supervised.embed(enc, torch.rand(5, 3, 16, 16), batch_size=2)
    assert e.shape == (5, 16)
    assert torch.allclose(e.norm(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.rand(2, 1, 16, 16))


def test_augment_range_shape_and_seed():
    x = torch.rand(6, 3, 16, 16)
    a = self_supervised.augment(x, torch.Generator().manual_seed(0))
    b = self_supervised.augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.allclose(a, x)


def test_info_nce_known_values():
    # perfectly matched, well separated views: loss near 0; identical rows: chance level log(2B-1)
    z = torch.eye(4) * 10
    assert self_supervised.info_nce(z, z, temperature=0.05) < 1e-3
    same = torch.ones(4, 3)
    assert math.isclose(float(self_supervised.info_nce(same, same, 0.2)), math.log(7), rel_tol=1e-5)
    with pytest.raises(ValueError):
        self_supervised.info_nce(torch.ones(4, 3), torch.ones(3, 3))


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
    assert torch.allclose(
        self_supervised.info_nce(z1, z2, 0.3), torch.stack(losses).mean(), atol=1e-5
    )


def test_knn_accuracy():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    test = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    assert self_supervised.knn_accuracy(train, labels, test, torch.tensor([0, 1]), k=1) == 1.0
    assert self_supervised.knn_accuracy(train, labels, test, torch.tensor([1, 0]), k=1) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        self_supervised.knn_accuracy(train, labels, test, torch.tensor([0, 1]), k=9)


def test_config_validation_and_presets():
    assert self_supervised.SSLConfig.preset("smoke").size == 16
    assert self_supervised.SSLConfig.preset("gpu").size >= 64
    with pytest.raises(ValueError, match="divisible by 4"):
        self_supervised.SSLConfig(size=18)
    with pytest.raises(ValueError):
        self_supervised.SSLConfig(steps=0)


def test_knn_label_count_mismatch_names_sizes():
    with pytest.raises(ValueError, match="got 4 train embeddings and 3 train labels"):
        self_supervised.knn_accuracy(
            torch.rand(4, 2),
            torch.zeros(3, dtype=torch.long),
            torch.rand(2, 2),
            torch.zeros(2, dtype=torch.long),
        )


def test_train_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    cfg = self_supervised.SSLConfig(size=8, width=4, dim=8, steps=2, batch_size=8, n_patches=16)
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    enc = self_supervised.load_encoder(config=cfg, images=x, progress=False)
    files = set(tmp_path.glob("ssl_simclr_*.safetensors"))
    assert len(files) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the same patches are cached")

    with monkeypatch.context() as m:
        m.setattr(self_supervised, "train_encoder", no_training)
        again = self_supervised.load_encoder(
            config=cfg, images=x.clone(), progress=False
        )  # cache hit
    assert torch.equal(self_supervised.embed(enc, x), self_supervised.embed(again, x))
    other = self_supervised.load_encoder(
        config=cfg, images=x.flip(0) * 0.5, progress=False
    )  # other patches
    assert len(set(tmp_path.glob("ssl_simclr_*.safetensors"))) == 2
    assert not torch.equal(self_supervised.embed(enc, x), self_supervised.embed(other, x))
    # the default (histology "train" region) patches are another key again, and grey patches work
    seen = []
    with monkeypatch.context() as m:
        real_load = datasets.load
        m.setattr(datasets, "load", lambda *a, **k: seen.append(k) or real_load(*a, **k))
        default = self_supervised.load_encoder(config=cfg, progress=False)
    assert seen and seen[0]["region"] == "train"  # never trained on the held-out strip
    assert default.in_channels == 3 and len(set(tmp_path.glob("ssl_simclr_*.safetensors"))) == 3
    grey = self_supervised.load_encoder(config=cfg, images=x[:, :1], progress=False)
    assert self_supervised.embed(grey, x[:, :1]).shape == (16, 8)
    assert (
        self_supervised.load_encoder(config=cfg, images=x[:, :1], progress=False).in_channels == 1
    )
    with pytest.raises(KeyError, match="unknown encoder"):
        self_supervised.load_encoder("nope")


def test_pretrained_wrapper_resizes_normalises_and_pools():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=0)  # no network
    assert model.pretrained_cfg["input_size"][-2:] == (160, 160)
    enc = self_supervised.PretrainedEncoder(model)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = enc(x)
    assert out.shape == (2, model.num_features) and enc.dim == model.num_features
    big = F.interpolate(x, size=(160, 160), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features((big - mean) / std), pre_logits=True)
        assert torch.allclose(enc(x), expected, atol=1e-5)
        grey = torch.rand(2, 1, 40, 40)
        assert torch.allclose(enc(grey), enc(grey.repeat(1, 3, 1, 1)), atol=1e-6)
    assert self_supervised.embed(enc, x).shape == (2, model.num_features)
    with pytest.raises(ValueError, match=r"in \[0, 1\], got values in \[-1"):
        enc(x * 2 - 1 - 1e-2)
    with pytest.raises(ValueError, match=r"\(B, 1 or 3, H, W\), got \(2, 2, 32, 32\)"):
        enc(torch.rand(2, 2, 32, 32))


def test_pretrained_offline_messages_and_local_cache(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from safetensors.torch import save_file

    from helpers import foundation_models

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr(foundation_models, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(RuntimeError, match="allow_network=False.*timm/vit_small_patch16_224.dino"):
        self_supervised.load_encoder("dino-vits16")
    with pytest.raises(
        RuntimeError, match="not reachable.*huggingface.co/timm/vit_small_patch16_224.dino"
    ):
        self_supervised.load_encoder("dino-vits16", allow_network=True)
    with pytest.raises(RuntimeError, match="allow_network"):  # foundation_models' own message
        self_supervised.load_encoder("UNI")
    # weights already in the local hub cache load offline, wrapped
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224.dino", pretrained=False, num_classes=0)
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: str(weights))
    enc = self_supervised.load_encoder("dino-vits16")
    assert isinstance(enc, self_supervised.PretrainedEncoder) and enc.size == (224, 224)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in enc.model.state_dict().items())
    x = torch.rand(1, 3, 32, 32)
    assert self_supervised.embed(enc, x).shape == (1, 384)


def test_default_config_keeps_its_cache_name_and_view_options_change_it():
    cfg = self_supervised.SSLConfig()
    assert (
        cfg.key() == "32_32_64_300_96_0p002_0p2_1024"
    )  # the name cached encoders were saved under
    other = self_supervised.SSLConfig(min_scale=0.9, rotate=False)
    assert other.key() == cfg.key() + "_min_scale0p9_rotateFalse"
    assert other.views() == dict(min_scale=0.9, flip=True, rotate=False, jitter=1.0)
    with pytest.raises(ValueError, match="min_scale"):
        self_supervised.SSLConfig(min_scale=0.0)


def test_identity_keeping_views_stay_close_to_the_image():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(6, 1, 16, 16, generator=g)
    x[:, :, :, :8] += 1.0  # a left-right asymmetric image: flips and rotations move pixels far
    x = x / 2
    far = self_supervised.augment(x, torch.Generator().manual_seed(0))
    near = self_supervised.augment(x, torch.Generator().manual_seed(0), min_scale=1.0, flip=False,
                                   rotate=False, jitter=0.0)  # fmt: skip
    assert (near - x).abs().mean() < 0.03  # only the noise is left
    assert (far - x).abs().mean() > 3 * (near - x).abs().mean()


def test_knn_predict_majority_of_neighbours():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    pred = self_supervised.knn_predict(train, labels, torch.tensor([[1.0, 0.05], [0.0, 1.0]]), k=3)
    assert pred.tolist() == [0, 1]
    with pytest.raises(ValueError, match="k must be"):
        self_supervised.knn_predict(train, labels, train, k=6)
