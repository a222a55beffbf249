"""Tests for helpers.latent: the AutoencoderKL's shapes, the scale factor, the loss, the cache."""

import pytest
import torch
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from helpers import latent, runtime

TINY = latent.AutoencoderConfig(size=16, channels=(4, 8, 8), steps=2, batch_size=4)


def test_config_geometry_and_validation():
    cfg = latent.AutoencoderConfig.preset("laptop")
    assert (cfg.factor, cfg.latent_size, cfg.compression()) == (4, 8, 12.0)
    sd_like = latent.AutoencoderConfig(size=512, channels=(8, 8, 8, 8))
    assert sd_like.factor == 8 and sd_like.compression() == 48.0  # Stable Diffusion v1
    for p in ("smoke", "laptop", "gpu"):
        assert latent.AutoencoderConfig.preset(p).compression() >= 8
    with pytest.raises(ValueError, match="not divisible by the downsampling factor 4"):
        latent.AutoencoderConfig(size=18)
    with pytest.raises(ValueError, match="kl_weight"):
        latent.AutoencoderConfig(kl_weight=-1.0)
    with pytest.raises(ValueError, match="steps"):
        latent.AutoencoderConfig(steps=0)


def test_encode_decode_shapes_and_ranges():
    vae = latent.make_autoencoder(TINY, seed=0)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    z = latent.encode(vae, x)
    assert z.shape == (3, 4, 4, 4)
    y = latent.decode(vae, z)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    # the mean is deterministic; a generator draws from q(z | x)
    assert torch.equal(z, latent.encode(vae, x))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(latent.encode(vae, x, generator=g1), latent.encode(vae, x, generator=g2))
    assert not torch.equal(z, latent.encode(vae, x, generator=torch.Generator().manual_seed(3)))


def test_scale_factor_gives_unit_variance_and_is_applied_by_encode_and_decode():
    vae = latent.make_autoencoder(TINY, seed=0)
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    raw = latent.encode(vae, x)
    images = latent.decode(vae, raw)
    s = latent.scale_factor(raw)
    assert s == pytest.approx(1 / float(raw.std()))
    vae.register_to_config(scaling_factor=s)
    scaled = latent.encode(vae, x)
    assert torch.allclose(scaled, raw * s, atol=1e-6)
    assert float(scaled.std()) == pytest.approx(1.0, abs=1e-5)
    # decode divides by the same factor: the images do not change with the scaling
    assert torch.allclose(latent.decode(vae, scaled), images, atol=1e-5)
    with pytest.raises(ValueError, match="zero spread"):
        latent.scale_factor(torch.ones(4, 4))


def test_scale_factor_of_known_spread():
    z = torch.randn(256, 4, 8, 8, generator=torch.Generator().manual_seed(0)) / 0.18215
    assert latent.scale_factor(z) == pytest.approx(0.18215, rel=0.01)


def test_wrong_shapes_raise_with_the_expected_shape():
    vae = latent.make_autoencoder(TINY, seed=0)
    with pytest.raises(ValueError, match=r"latents must be \(N, 4, h, w\).*\(2, 3, 4, 4\)"):
        latent.decode(vae, torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"latents must be"):
        latent.decode(vae, torch.zeros(4, 4, 4))
    with pytest.raises(ValueError, match="1 channels, the autoencoder takes 3"):
        latent.encode(vae, torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="not divisible"):
        latent.encode(vae, torch.rand(2, 3, 18, 18))


def test_loss_is_mse_plus_weighted_kl_per_pixel():
    vae = latent.make_autoencoder(TINY, seed=0)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loss, mse, kl = latent.autoencoder_loss(
        vae, x, kl_weight=0.5, generator=torch.Generator().manual_seed(0)
    )
    assert torch.allclose(loss, mse + 0.5 * kl)
    params = vae.quant_conv(vae.encoder(x))  # μ and log σ² as 2c channels
    mu, logvar = params.chunk(2, dim=1)
    logvar = logvar.clamp(-30, 20)
    by_hand = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean() / x[0].numel()
    assert torch.allclose(kl, by_hand, atol=1e-6)
    assert torch.allclose(
        DiagonalGaussianDistribution(params).kl().mean() / x[0].numel(), by_hand, atol=1e-6
    )


def test_training_is_seeded_and_cached(tmp_path):
    x = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    vae_a, hist_a = latent.train_autoencoder(x, TINY, seed=1, device="cpu", progress=False)
    vae_b, hist_b = latent.train_autoencoder(x, TINY, seed=1, device="cpu", progress=False)
    assert hist_a["loss"] == hist_b["loss"] and len(hist_a["loss"]) == TINY.steps
    for (ka, va), (_, vb) in zip(
        vae_a.state_dict().items(), vae_b.state_dict().items(), strict=True
    ):
        assert torch.equal(va, vb), ka
    trained, hist = latent.load_or_train_autoencoder(
        x, TINY, seed=1, cache_key=("t",), device="cpu", progress=False
    )
    path = runtime.cache_path("06_autoencoder", TINY, 1, "t")
    assert path.exists()
    loaded, hist2 = latent.load_or_train_autoencoder(
        x, TINY, seed=1, cache_key=("t",), device="cpu", progress=False
    )
    assert hist2["loss"] == pytest.approx(hist["loss"]) and hist2["seconds"] == pytest.approx(
        hist["seconds"]
    )
    assert torch.equal(latent.encode(loaded, x), latent.encode(trained, x))
    with pytest.raises(ValueError, match="the config says 16"):
        latent.train_autoencoder(torch.rand(4, 3, 32, 32), TINY, progress=False)
