"""channels_last in the training loops: the same training up to float rounding, handed back
contiguous, and the default taken from what was measured for the device."""

from __future__ import annotations

import pytest
import torch

from helpers import diffusion, diffusion_training, gan, optim, self_supervised, unet


def _close_params(a: torch.nn.Module, b: torch.nn.Module, atol: float, skip=()) -> None:
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert p.is_contiguous(), f"{name} handed back in channels_last"
        if name not in skip:
            torch.testing.assert_close(p, q, atol=atol, rtol=1e-3, msg=name)


def test_diffusion_training_is_unchanged_by_channels_last():
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    schedule = diffusion.Schedule.make("linear", T=50)
    runs = []
    for channels_last in (False, True):
        model = unet.UNet(1, base_channels=8, channel_mults=(1, 2), attn_resolutions=(4,), seed=0)
        runs.append(
            diffusion_training.train(
                model,
                images,
                schedule=schedule,
                steps=4,
                batch_size=8,
                warmup=1,
                progress=False,
                channels_last=channels_last,
            )  # fmt: skip
        )
    a, b = runs
    torch.testing.assert_close(
        torch.tensor(a.loss_history), torch.tensor(b.loss_history), rtol=1e-4, atol=1e-5
    )
    _close_params(a.model, b.model, atol=1e-4)
    _close_params(a.ema, b.ema, atol=1e-4)


def test_gan_training_is_unchanged_by_channels_last():
    images = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    cfg = gan.GANConfig.preset("smoke")
    a, b = (
        gan.train_gan(
            images,
            config=cfg,
            steps=3,
            batch_size=8,
            device="cpu",
            progress=False,
            channels_last=cl,
        )  # fmt: skip
        for cl in (False, True)
    )
    for key in ("loss_d", "loss_g"):
        torch.testing.assert_close(
            torch.tensor(a.history[key]), torch.tensor(b.history[key]), rtol=1e-4, atol=1e-5
        )
    _close_params(a.generator, b.generator, atol=1e-4)
    _close_params(a.discriminator, b.discriminator, atol=1e-4)


def test_ssl_training_is_unchanged_by_channels_last():
    images = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    cfg = self_supervised.SSLConfig.preset("smoke", steps=3, batch_size=16)
    (enc_a, hist_a), (enc_b, hist_b) = (
        self_supervised.train_encoder(images, cfg, device="cpu", progress=False, channels_last=cl)
        for cl in (False, True)
    )
    torch.testing.assert_close(torch.tensor(hist_a), torch.tensor(hist_b), rtol=1e-4, atol=1e-5)
    # fc.bias feeds a BatchNorm that removes any constant: its gradient is zero up to rounding,
    # which Adam scales to lr-sized steps in either format (and the running mean follows it).
    # Every other weight, and the conv features, agree to rounding.
    _close_params(enc_a, enc_b, atol=1e-4, skip=("fc.bias", "norm.running_mean"))
    with torch.no_grad():
        torch.testing.assert_close(
            enc_a.features(images), enc_b.features(images), atol=1e-4, rtol=1e-3
        )
    cosine = (self_supervised.embed(enc_a, images) * self_supervised.embed(enc_b, images)).sum(1)
    assert float(cosine.min()) > 0.99


def test_memory_format_default_follows_the_measurement_for_the_device():
    cpu, mps = torch.device("cpu"), torch.device("mps")
    assert optim.memory_format(None, cpu, {"cpu": True}) == torch.channels_last
    assert optim.memory_format(None, cpu, {"cpu": False}) == torch.contiguous_format
    assert optim.memory_format(None, mps, {"cpu": True}) == torch.contiguous_format
    assert optim.memory_format(True, mps, {}) == torch.channels_last
    assert optim.memory_format(False, cpu, {"cpu": True}) == torch.contiguous_format
    with pytest.raises(TypeError, match="channels_last must be True, False or None, got 1"):
        optim.memory_format(1, cpu, {})  # type: ignore[arg-type]
    for module in (diffusion_training, gan, self_supervised):
        assert set(module.CHANNELS_LAST_FASTEST) <= {"cpu", "cuda", "mps"}
