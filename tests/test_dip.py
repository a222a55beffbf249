"""Tests of helpers.dip and helpers.degradations: network shapes, Lanczos downsampler, data terms, fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from helpers import datasets, degradations, dip, metrics


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def camera32() -> torch.Tensor:
    return datasets.load("camera", size=32).images  # (1, 1, 32, 32)


# --------------------------------------------------------------------------------------------
# network


def test_paper_network_has_2_2_million_parameters():
    net = dip.SkipNet(32, 3, scales=5, channels=128, skip_channels=4, seed=0)
    assert dip.count_parameters(net) == 2_217_831


@pytest.mark.parametrize("profile", ["smoke", "laptop", "gpu"])
@pytest.mark.parametrize("out_channels", [1, 3])
def test_preset_network_shapes(profile, out_channels):
    cfg = dip.DIPConfig.preset(profile)
    net = dip.SkipNet.from_config(cfg, out_channels, seed=0)
    side = 2**cfg.scales
    for h, w in [(2 * side, 2 * side), (4 * side, 2 * side), (2 * side, 6 * side)]:
        z = dip.make_input(cfg.input_channels, (h, w), generator=gen(0))
        with torch.no_grad():
            x = net(z)
        assert x.shape == (1, out_channels, h, w)
        assert torch.isfinite(x).all() and 0 < x.min() and x.max() < 1  # sigmoid output


@pytest.mark.parametrize(
    "options",
    [
        dict(scales=2, channels=(8, 16), skip_channels=(0, 4)),
        dict(scales=3, channels=8, skip_channels=0, upsample="nearest", pad="zero"),
        dict(scales=1, channels=4, skip_channels=2, sigmoid=False),
    ],
)
def test_network_options(options):
    net = dip.SkipNet(2, 3, seed=0, **options)
    x = net(dip.make_input(2, (16, 24), kind="meshgrid"))
    assert x.shape == (1, 3, 16, 24)


def test_no_skip_channels_means_no_skip_branch():
    with_skip = dip.SkipNet(4, 1, scales=2, channels=8, skip_channels=4, seed=0)
    without = dip.SkipNet(4, 1, scales=2, channels=8, skip_channels=0, seed=0)
    assert with_skip.body.skip is not None and without.body.skip is None
    assert dip.count_parameters(without) < dip.count_parameters(with_skip)


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = dip.SkipNet(4, 1, scales=2, channels=8, seed=3)
    b = dip.SkipNet(4, 1, scales=2, channels=8, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_network_rejects_bad_input():
    net = dip.SkipNet(4, 1, scales=3, channels=8, seed=0)
    with pytest.raises(ValueError, match="not divisible by 2\\*\\*scales = 8"):
        net(torch.rand(1, 4, 20, 16))
    with pytest.raises(ValueError, match="too small"):
        net(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="input must be"):
        net(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"input must be \(B, 4, H, W\), got \(16,\)"):
        net(torch.rand(16))
    with pytest.raises(ValueError, match="channels"):
        dip.SkipNet(4, 1, scales=3, channels=(8, 8))


def test_make_input():
    z = dip.make_input(32, (16, 8), generator=gen(0))
    assert z.shape == (1, 32, 16, 8) and 0 <= z.min() and z.max() <= 0.1
    assert torch.equal(z, dip.make_input(32, (16, 8), generator=gen(0)))
    m = dip.make_input(32, (5, 3), kind="meshgrid")
    assert m.shape == (1, 2, 5, 3)
    assert torch.allclose(m[0, 0, 0], torch.tensor([0.0, 0.5, 1.0]))  # x varies along width
    assert torch.allclose(m[0, 1, :, 0], torch.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="kind"):
        dip.make_input(32, (8, 8), kind="gaussian")


def test_config_presets_and_validation():
    gpu = dip.DIPConfig.preset("gpu")
    assert (gpu.scales, gpu.channels, gpu.skip_channels, gpu.size, gpu.iters_denoise) == (
        5,
        128,
        4,
        512,
        3000,
    )
    assert dip.DIPConfig.preset("smoke").replace(iters_denoise=7).iters_denoise == 7
    with pytest.raises(ValueError, match="not divisible"):
        dip.DIPConfig(size=100, scales=5, channels=8)
    with pytest.raises(ValueError, match="upsample"):
        dip.DIPConfig(size=64, scales=2, channels=8, upsample="cubic")
    with pytest.raises(ValueError, match="unknown profile"):
        dip.DIPConfig.preset("tiny")


# --------------------------------------------------------------------------------------------
# Lanczos downsampler


def _reference_kernel(factor: int, support: int) -> np.ndarray:
    """The reference code's ``get_kernel(factor, 'lanczos', phase=0.5, ...)``, loop for loop."""
    kernel_width = 2 * support * factor + 1
    kernel = np.zeros([kernel_width - 1, kernel_width - 1])
    center = (kernel_width + 1) / 2.0
    for i in range(1, kernel.shape[0] + 1):
        for j in range(1, kernel.shape[1] + 1):
            di = abs(i + 0.5 - center) / factor
            dj = abs(j + 0.5 - center) / factor
            val = 1.0
            if di != 0:
                val *= (
                    support
                    * np.sin(np.pi * di)
                    * np.sin(np.pi * di / support)
                    / (np.pi**2 * di * di)
                )
            if dj != 0:
                val *= (
                    support
                    * np.sin(np.pi * dj)
                    * np.sin(np.pi * dj / support)
                    / (np.pi**2 * dj * dj)
                )
            kernel[i - 1][j - 1] = val
    return kernel / kernel.sum()


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("support", [2, 3])
def test_lanczos_kernel_matches_reference_code(factor, support):
    k = degradations.lanczos_kernel(factor, support=support).numpy()
    np.testing.assert_allclose(k, _reference_kernel(factor, support), atol=1e-12)
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k, k[::-1, ::-1])


def _pil_lanczos(image: np.ndarray, factor: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape
    pil = Image.fromarray(image.astype(np.float32), mode="F")
    return np.asarray(
        pil.resize((w // factor, h // factor), Image.Resampling.LANCZOS, reducing_gap=None)
    )


@pytest.mark.parametrize("factor", [2, 4])
def test_lanczos3_downsampler_equals_pil_inside_the_image(factor):
    image = datasets.load("camera", size=128).images  # (1, 1, 128, 128)
    ours = degradations.LanczosDownsampler(factor, channels=1, support=3)(image)[0, 0].numpy()
    pil = _pil_lanczos(image[0, 0].numpy(), factor)
    border = 3  # PIL renormalises the kernel at the border, we replicate-pad
    np.testing.assert_allclose(
        ours[border:-border, border:-border], pil[border:-border, border:-border], atol=1e-5
    )
    assert np.abs(ours - pil).max() < 0.05


def test_lanczos2_downsampler_close_to_pil():
    image = datasets.load("astronaut", size=128).images  # (1, 3, 128, 128)
    ours = degradations.LanczosDownsampler(4, channels=3)(image)
    for c in range(3):
        pil = _pil_lanczos(image[0, c].numpy(), 4)
        assert np.abs(ours[0, c].numpy() - pil).mean() < 0.01


def test_downsampler_keeps_constants_and_is_differentiable():
    down = degradations.LanczosDownsampler(4, channels=2)
    x = torch.full((1, 2, 16, 8), 0.3, requires_grad=True)
    y = down(x)
    assert y.shape == (1, 2, 4, 2)
    torch.testing.assert_close(y, torch.full_like(y, 0.3))
    y.sum().backward()
    torch.testing.assert_close(
        x.grad.sum(), torch.tensor(8.0 * 2)
    )  # each output's weights sum to 1
    with pytest.raises(ValueError, match="not divisible by the factor 4"):
        down(torch.rand(1, 2, 18, 16))


# --------------------------------------------------------------------------------------------
# degradations and data terms


def test_psnr_matches_skimage():
    a, b = torch.rand(1, 3, 16, 16, generator=gen(0)), torch.rand(1, 3, 16, 16, generator=gen(1))
    expected = peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1.0)
    assert metrics.psnr(b, a) == pytest.approx(expected, rel=1e-6)
    assert metrics.psnr(a, a) == math.inf


def test_degradations():
    img = torch.full((1, 1, 64, 64), 0.5)
    noisy = degradations.add_noise(img, 25 / 255, generator=gen(0))
    assert (noisy - img).std().item() == pytest.approx(25 / 255, rel=0.05)
    mask = degradations.random_mask((64, 64), 0.5, generator=gen(0))
    assert mask.shape == (1, 1, 64, 64) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask.mean().item() == pytest.approx(0.5, abs=0.03)
    text = degradations.text_mask(64)
    assert text.shape == (1, 1, 64, 64) and 0.05 < 1 - text.mean().item() < 0.5
    shuffled = degradations.shuffle_pixels(torch.arange(16.0).reshape(1, 1, 4, 4), generator=gen(0))
    assert sorted(shuffled.flatten().tolist()) == list(range(16))


def test_data_terms_known_values():
    x, x0 = torch.full((1, 1, 8, 8), 0.5), torch.zeros(1, 1, 8, 8)
    assert dip.data_term(x, x0, "denoise").item() == pytest.approx(0.25)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    assert dip.data_term(x, x0, "inpaint", mask=mask).item() == pytest.approx(0.125)
    down = degradations.LanczosDownsampler(2, channels=1)
    assert dip.data_term(
        x, x0[..., :4, :4], "super_resolution", downsampler=down
    ).item() == pytest.approx(0.25, abs=1e-5)


# --------------------------------------------------------------------------------------------
# fitting: each data term improves on the degraded input (smoke preset, fixed seeds)


def _smoke_net(channels: int) -> tuple[dip.SkipNet, torch.Tensor, dip.DIPConfig]:
    cfg = dip.DIPConfig.preset("smoke")
    net = dip.SkipNet.from_config(cfg, channels, seed=0)
    z = dip.make_input(cfg.input_channels, (32, 32), generator=gen(1))
    return net, z, cfg


def test_fit_denoising_improves_psnr(camera32):
    noisy = degradations.add_noise(camera32, 25 / 255, generator=gen(0))
    net, z, cfg = _smoke_net(1)
    res = dip.fit(
        net,
        z,
        noisy,
        clean=camera32,
        iterations=300,
        reg_noise_std=cfg.reg_noise_denoise,
        generator=gen(2),
        progress=False,
    )
    noisy_psnr = metrics.psnr(camera32[0], noisy[0])
    assert res.best_psnr > noisy_psnr + 2.0
    assert res.best_psnr == pytest.approx(max(res.psnr_average), abs=1e-4)
    assert res.best_iteration == int(np.argmax(res.psnr_average)) + 1
    assert metrics.psnr(camera32[0], res.best[0]) == pytest.approx(res.best_psnr, abs=1e-3)
    assert np.mean(res.loss[-20:]) < np.mean(res.loss[:20])


def test_fit_super_resolution_improves_on_nearest_upsampling(camera32):
    lowres = degradations.LanczosDownsampler(2, channels=1)(camera32)  # (1, 1, 16, 16)
    nearest = torch.nn.functional.interpolate(lowres, scale_factor=2, mode="nearest")
    net, z, cfg = _smoke_net(1)
    res = dip.fit(
        net,
        z,
        lowres,
        task="super_resolution",
        factor=2,
        clean=camera32,
        iterations=300,
        reg_noise_std=cfg.reg_noise_sr,
        generator=gen(2),
        progress=False,
    )
    assert res.average.shape == (1, 1, 32, 32)
    assert metrics.psnr(camera32[0], res.average[0]) > metrics.psnr(camera32[0], nearest[0]) + 1.0


def test_fit_inpainting_improves_psnr(camera32):
    mask = degradations.random_mask((32, 32), 0.5, generator=gen(0))
    net, z, cfg = _smoke_net(1)
    res = dip.fit(
        net,
        z,
        camera32 * mask,
        task="inpaint",
        mask=mask,
        clean=camera32,
        iterations=300,
        generator=gen(2),
        progress=False,
    )
    assert (
        metrics.psnr(camera32[0], res.average[0])
        > metrics.psnr(camera32[0], (camera32 * mask)[0]) + 10.0
    )


def test_fit_history_snapshots_and_reproducibility(camera32):
    runs = []
    for _ in range(2):
        net, z, _ = _smoke_net(1)
        runs.append(
            dip.fit(
                net,
                z,
                camera32,
                iterations=10,
                snapshot_every=4,
                reg_noise_std=0.05,
                generator=gen(5),
                progress=False,
            )
        )
    a, b = runs
    assert len(a.loss) == 10 and a.psnr == [] and a.best is None and math.isnan(a.best_psnr)
    assert [it for it, _ in a.snapshots] == [4, 8]
    assert a.snapshots[0][1].shape == (1, 1, 32, 32)
    assert a.loss == b.loss


# --------------------------------------------------------------------------------------------
# errors


def test_fit_rejects_bad_input(camera32):
    net, z, _ = _smoke_net(1)
    kw = dict(iterations=1, progress=False)
    with pytest.raises(ValueError, match="target is"):
        dip.fit(net, z, torch.rand(1, 1, 16, 16), **kw)
    with pytest.raises(ValueError, match="channels"):
        dip.fit(net, z, torch.rand(1, 3, 32, 32), **kw)
    with pytest.raises(ValueError, match="z must be"):
        dip.fit(net, z[0], camera32, **kw)
    with pytest.raises(ValueError, match="unknown task"):
        dip.fit(net, z, camera32, task="deblur", **kw)
    with pytest.raises(ValueError, match="needs a mask"):
        dip.fit(net, z, camera32, task="inpaint", **kw)
    with pytest.raises(ValueError, match="must match the image"):
        dip.fit(net, z, camera32, task="inpaint", mask=torch.ones(1, 1, 32, 16), **kw)
    with pytest.raises(ValueError, match="mask must have shape"):
        dip.fit(net, z, camera32, task="inpaint", mask=torch.ones(32, 32), **kw)
    with pytest.raises(ValueError, match="not divisible by the factor 3"):
        dip.fit(net, z, torch.rand(1, 1, 10, 10), task="super_resolution", factor=3, **kw)
    with pytest.raises(ValueError, match="low-resolution target"):
        dip.fit(net, z, torch.rand(1, 1, 16, 16), task="super_resolution", factor=4, **kw)
    with pytest.raises(ValueError, match="clean image"):
        dip.fit(net, z, camera32, clean=torch.rand(1, 1, 16, 16), **kw)
    with pytest.raises(ValueError, match="iterations"):
        dip.fit(net, z, camera32, iterations=0, progress=False)


# --------------------------------------------------------------------------------------------
# odd factors, dtypes, options checked where they enter


@pytest.mark.parametrize("factor", [3, 5])
def test_odd_factors_give_exactly_h_over_f_and_equal_pil_inside(factor):
    image = datasets.load("camera", size=24 * factor).images  # (1, 1, 24 f, 24 f)
    ours = degradations.LanczosDownsampler(factor, channels=1, support=3)(image)[0, 0].numpy()
    assert ours.shape == (24, 24)  # H / f exactly (was H / f − 1)
    pil = _pil_lanczos(image[0, 0].numpy(), factor)
    border = 3
    np.testing.assert_allclose(
        ours[border:-border, border:-border], pil[border:-border, border:-border], atol=1e-5
    )


@pytest.mark.parametrize("factor", [2, 3, 4, 5])
def test_every_factor_keeps_a_ramp_at_its_block_means(factor):
    """The kernel is centred on each block: a linear ramp downsamples to the block means."""
    h = 12 * factor
    ramp = torch.arange(h, dtype=torch.float32).repeat(h, 1)[None, None]  # (1, 1, h, h)
    out = degradations.LanczosDownsampler(factor, channels=1)(ramp)[0, 0]
    means = ramp[0, 0, :12].reshape(12, 12, factor).mean(-1)  # block means along a row
    torch.testing.assert_close(out[3:-3, 3:-3], means[3:-3, 3:-3], atol=1e-4, rtol=0)


def test_super_resolution_by_three_runs():
    net = dip.SkipNet(8, 1, scales=2, channels=8, seed=0)
    z = dip.make_input(8, 48, generator=gen(0))
    res = dip.fit(net, z, torch.rand(1, 1, 16, 16), task="super_resolution", factor=3,
                  iterations=3, progress=False)  # fmt: skip
    assert res.output.shape == (1, 1, 48, 48) and len(res.loss) == 3


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"ema": 1.5}, r"ema must be in \[0, 1\)"),
        ({"ema": 1.0}, r"ema must be in \[0, 1\)"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"reg_noise_std": -0.1}, "reg_noise_std must be ≥ 0"),
        ({"snapshot_every": -1}, "snapshot_every must be an int ≥ 0"),
        ({"iterations": 0}, "iterations must be a positive int"),
    ],
)
def test_fit_options_are_checked(option, message):
    net = dip.SkipNet(8, 1, scales=2, channels=8, seed=0)
    z = dip.make_input(8, (16, 16), generator=gen(0))
    with pytest.raises(ValueError, match=message):
        dip.fit(net, z, torch.rand(1, 1, 16, 16), progress=False, **{"iterations": 2, **option})


def test_fit_dtypes_and_non_finite_images():
    net = dip.SkipNet(8, 1, scales=2, channels=8, seed=0)
    z = dip.make_input(8, (16, 16), generator=gen(0))
    with pytest.raises(TypeError, match=r"target must be a floating-point tensor"):
        dip.fit(net, z, torch.zeros(1, 1, 16, 16, dtype=torch.uint8), iterations=2, progress=False)
    bad = torch.rand(1, 1, 16, 16)
    bad[0, 0, 4, 4] = float("nan")
    with pytest.raises(ValueError, match=r"target holds 1 non-finite"):
        dip.fit(net, z, bad, iterations=2, progress=False)
    with pytest.raises(ValueError, match=r"clean holds 1 non-finite"):
        dip.fit(net, z, torch.rand(1, 1, 16, 16), clean=bad, iterations=2, progress=False)
    res = dip.fit(net, z.half(), torch.rand(1, 1, 16, 16).half(), iterations=2, progress=False)
    assert res.output.dtype == torch.float32 and all(math.isfinite(v) for v in res.loss)
    with pytest.raises(TypeError, match=r"z must be a floating-point tensor"):
        net(torch.zeros(1, 8, 16, 16, dtype=torch.uint8))


def test_a_loss_that_becomes_non_finite_names_the_iteration():
    net = dip.SkipNet(8, 1, scales=2, channels=8, seed=0)
    z = dip.make_input(8, (16, 16), generator=gen(0))
    calls = {"n": 0}

    def broken(module, inputs, output):  # the network diverges at its second call
        calls["n"] += 1
        return output * float("nan") if calls["n"] == 2 else output

    net.head.register_forward_hook(broken)
    with pytest.raises(FloatingPointError, match=r"DIP loss became nan at iteration 2 of 3"):
        dip.fit(net, z, torch.rand(1, 1, 16, 16), iterations=3, progress=False)


def test_input_and_degradation_sizes_are_checked():
    assert dip.make_input(4, 8).shape == (1, 4, 8, 8)  # one int: a square
    with pytest.raises(ValueError, match="channels must be a positive int"):
        dip.make_input(0, (8, 8))
    with pytest.raises(ValueError, match="size must be a positive int"):
        dip.make_input(4, (0, 8))
    with pytest.raises(ValueError, match="scale must be ≥ 0"):
        dip.make_input(4, (8, 8), scale=-1.0)
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        dip.SkipNet(0, 1, scales=2, channels=4)
    with pytest.raises(ValueError, match="channels must be a positive int"):
        degradations.LanczosDownsampler(2, channels=0)
    with pytest.raises(ValueError, match="sigma must be a finite number"):
        degradations.add_noise(torch.rand(1, 1, 4, 4), float("nan"))
    with pytest.raises(TypeError, match=r"image.float\(\) / 255"):
        degradations.add_noise(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 0.1)
    with pytest.raises(ValueError, match="mask H must be a positive int"):
        degradations.random_mask((0, 8), 0.5)
    with pytest.raises(ValueError, match="font_size must be a positive int"):
        degradations.text_mask(64, font_size=0)  # 0 is not "the default size"
