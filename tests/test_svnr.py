"""Spatially-variant noise and SVNR: noise models, time maps, the per-pixel-time U-Net, the
reverse step, the samplers and the training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import diffusion, dip, metrics, svnr
from helpers import unet as unet_module
from helpers.datasets import brain_phantom
from helpers.unet import UNet

SCHEDULE = diffusion.Schedule.make("linear", T=200, start=5e-4, end=0.1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# noise models


def test_poisson_gaussian_variance_matches_its_sigma_map():
    x = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)
    draws = 8000
    batch = x.expand(draws, 1, 4, 4)
    noisy, sigma = svnr.poisson_gaussian(batch, gain=0.02, read_sigma=0.01, generator=_gen(1))
    var = noisy.var(0, unbiased=True)[0]  # (4, 4)
    expected = sigma[0, 0] ** 2
    torch.testing.assert_close(var, expected, rtol=0.07, atol=1e-5)  # ≈ 4 standard errors
    torch.testing.assert_close(noisy.mean(0)[0], x[0, 0], rtol=0, atol=0.01)
    torch.testing.assert_close(sigma[0, 0, 0, 0], torch.tensor(0.01))  # read noise only at x = 0


def test_coil_noise_variance_matches_its_sigma_map_and_the_map_is_smooth():
    sigma = svnr.coil_sigma_map(1, 8, sigma_min=0.02, ratio=8.0, generator=_gen(2))
    assert float(sigma.min()) == pytest.approx(0.02, rel=1e-5)
    assert float(sigma.max()) <= 0.16 + 1e-6 and float(sigma.max()) > 0.04
    draws = 20000
    clean = torch.full((draws, 1, 8, 8), 0.5)
    noisy = svnr.coil_noise(clean, sigma.expand(draws, 1, 8, 8), generator=_gen(3))
    std = noisy.std(0)[0]
    torch.testing.assert_close(std, sigma[0, 0], rtol=0.03, atol=1e-4)
    # smooth: neighbouring pixels differ far less than the map's range
    big = svnr.coil_sigma_map(2, 32, generator=_gen(4))
    step = (big[..., 1:, :] - big[..., :-1, :]).abs().max()
    assert float(step) < 0.25 * float(big.max() - big.min())


def test_noise_models_are_seeded():
    x = torch.rand(2, 1, 8, 8, generator=_gen(0))
    a = svnr.poisson_gaussian(x, generator=_gen(5))[0]
    b = svnr.poisson_gaussian(x, generator=_gen(5))[0]
    assert torch.equal(a, b)
    assert torch.equal(
        svnr.coil_sigma_map(2, 8, generator=_gen(6)), svnr.coil_sigma_map(2, 8, generator=_gen(6))
    )


@pytest.mark.parametrize(
    ("sigma", "match"),
    [
        (torch.full((2, 1, 4, 5), 0.1), r"shape \(2, 1, 4, 5\).*must be \(2, 1, 4, 4\)"),
        (torch.full((2, 1, 4, 4), -0.1), r"≥ 0, got a minimum of -0.1"),
        (torch.full((2, 1, 4, 4), float("nan")), r"32 NaN or infinite"),
        (torch.full((2, 1, 4, 4), float("inf")), r"NaN or infinite"),
    ],
)
def test_bad_sigma_maps_are_rejected_with_a_message(sigma, match):
    image = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match=match):
        svnr.coil_noise(image, sigma)
    with pytest.raises(ValueError, match=match):
        svnr.check_sigma_map(sigma, image)


def test_bad_sigma_maps_are_rejected_by_the_sampler_and_time_map():
    net = UNet(2, 1, base_channels=8, channel_mults=(1,), attn_resolutions=())
    noisy = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="must be \\(1, 1, 8, 8\\)"):
        svnr.denoise(net, noisy, torch.full((1, 1, 8, 4), 0.1), schedule=SCHEDULE, steps=2)
    with pytest.raises(ValueError, match="≥ 0"):
        svnr.time_map(torch.full((1, 1, 2, 2), -1.0), SCHEDULE)
    with pytest.raises(TypeError, match="torch.Tensor"):
        svnr.check_sigma_map([[0.1]])


# ---------------------------------------------------------------------------------------------
# time maps


def test_sigma_to_time_to_alpha_bar_round_trip():
    sigma = torch.tensor([0.0, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.5]).reshape(1, 1, 1, 7)
    t = svnr.time_map(sigma, SCHEDULE)
    assert t.shape == (1, 1, 7) and float(t[0, 0, 0]) == -1.0
    assert bool((t[0, 0, 1:] > t[0, 0, :-1]).all())  # more noise, later time
    ab = svnr.alpha_bar_at(t, SCHEDULE)
    torch.testing.assert_close(ab[0, 0], 1 / (1 + (2 * sigma[0, 0, 0]) ** 2), rtol=1e-5, atol=1e-7)
    # and back: ᾱ → t → ᾱ at arbitrary times
    times = torch.linspace(-1, SCHEDULE.T - 1, 97)
    torch.testing.assert_close(
        svnr.time_of_alpha_bar(svnr.alpha_bar_at(times, SCHEDULE), SCHEDULE),
        times,
        rtol=0,
        atol=1e-3,
    )


def test_alpha_bar_at_integer_times_is_the_schedule():
    t = torch.arange(-1, SCHEDULE.T, dtype=torch.float32)
    ab = svnr.alpha_bar_at(t, SCHEDULE)
    assert float(ab[0]) == 1.0
    assert torch.equal(ab[1:], SCHEDULE.alpha_bars)
    mid = svnr.alpha_bar_at(torch.tensor([10.5]), SCHEDULE)
    assert float(SCHEDULE.alpha_bars[11]) < float(mid) < float(SCHEDULE.alpha_bars[10])


def test_time_errors():
    with pytest.raises(ValueError, match=r"times must lie in \[-1, 199\]"):
        svnr.alpha_bar_at(torch.tensor([200.0]), SCHEDULE)
    with pytest.raises(ValueError, match="stronger than the schedule reaches"):
        svnr.time_map(torch.full((1, 1, 1, 1), 1e4), SCHEDULE)


# ---------------------------------------------------------------------------------------------
# the per-pixel-time U-Net


def _trained_like(net: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


@pytest.mark.parametrize("kwargs", [{}, {"num_classes": 3}, {"cond_dim": 4}])
def test_constant_time_map_equals_scalar_time(kwargs):
    net = _trained_like(UNet(2, 1, base_channels=8, channel_mults=(1, 2, 2), seed=0, **kwargs))
    x = torch.randn(3, 2, 16, 16)
    t = torch.tensor([0, 37, 199])
    extra = {}
    if "num_classes" in kwargs:
        extra["y"] = torch.tensor([0, 2, 3])
    if "cond_dim" in kwargs:
        extra["cond"] = torch.randn(3, 4)
    scalar = net(x, t, **extra)
    tmap = t[:, None, None].expand(3, 16, 16).float()
    torch.testing.assert_close(net(x, tmap, **extra), scalar, rtol=1e-5, atol=1e-5)
    assert scalar.abs().max() > 1e-3  # the comparison is not between two zero outputs


def test_time_map_changes_the_output_where_the_time_differs():
    net = _trained_like(UNet(1, base_channels=8, channel_mults=(1, 2), seed=0))
    x = torch.randn(1, 1, 16, 16)
    a = torch.full((1, 16, 16), 10.0)
    b = a.clone()
    b[:, :, 8:] = 150.0
    assert not torch.allclose(net(x, a), net(x, b))


def _resblock_forward_before_time_maps(self, x, emb):
    """ResBlock.forward as it was before time maps existed (the scalar path must not change)."""
    h = self.conv1(torch.nn.functional.silu(self.norm1(x)))
    h = h + self.emb(torch.nn.functional.silu(emb))[:, :, None, None]
    h = self.conv2(self.dropout(torch.nn.functional.silu(self.norm2(h))))
    return self.skip(x) + h


@pytest.mark.parametrize(
    "kwargs", [{}, {"num_classes": 3}, {"cond_dim": 4, "cond_mode": "cross_attention"}]
)
def test_scalar_path_is_bit_identical_to_the_network_before_time_maps(kwargs, monkeypatch):
    net = _trained_like(UNet(1, base_channels=8, channel_mults=(1, 2, 2), seed=0, **kwargs))
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 190])
    extra = {"y": torch.tensor([1, 3])} if "num_classes" in kwargs else {}
    extra |= {"cond": torch.randn(2, 4)} if "cond_dim" in kwargs else {}
    now = net(x, t, **extra)
    monkeypatch.setattr(unet_module.ResBlock, "forward", _resblock_forward_before_time_maps)
    assert torch.equal(net(x, t, **extra), now)


def test_time_map_shape_errors():
    net = UNet(1, base_channels=8, channel_mults=(1, 2))
    with pytest.raises(ValueError, match=r"time map must have shape \(2, 8, 8\)"):
        net(torch.randn(2, 1, 8, 8), torch.zeros(2, 8, 4))


# ---------------------------------------------------------------------------------------------
# the reverse step, the bridge and the samplers


@pytest.mark.parametrize(
    ("t", "t_prev", "eta"), [(120, 100, 0.0), (120, 100, 1.0), (15, -1, 1.0), (3, 2, 0.5)]
)
def test_svnr_step_with_a_constant_map_is_a_ddim_step(t, t_prev, eta):
    x, eps, z = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    ref = diffusion.ddim_step(
        eps, torch.tensor([t, t]), torch.tensor([t_prev, t_prev]), x, SCHEDULE, eta=eta, noise=z
    )
    tm, tpm = torch.full((2, 8, 8), float(t)), torch.full((2, 8, 8), float(t_prev))
    out = svnr.svnr_step(eps, tm, tpm, x, SCHEDULE, eta=eta, noise=z)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=2e-6)


def test_svnr_step_leaves_clean_pixels_and_rejects_time_going_forward():
    x, eps = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    t = torch.full((1, 4, 4), -1.0)
    t[0, 0, 0] = 20.0
    t_prev = t.clone()
    t_prev[0, 0, 0] = 10.0
    out = svnr.svnr_step(eps, t, t_prev, x, SCHEDULE, eta=1.0, noise=torch.randn(1, 1, 4, 4))
    keep = t[0] == -1
    assert torch.equal(out[0, 0][keep], x[0, 0][keep])
    assert not torch.equal(out[0, 0, 0, 0], x[0, 0, 0, 0])
    with pytest.raises(ValueError, match="must not exceed t"):
        svnr.svnr_step(eps, t_prev, t, x, SCHEDULE)


def test_bridge_ends_at_the_scaled_noisy_image_and_the_clean_one():
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    sigma = svnr.coil_sigma_map(2, 8, generator=_gen(0))
    eps_y = torch.randn(2, 1, 8, 8)
    y = x0 + 2 * sigma * eps_y
    t_star = svnr.time_map(sigma, SCHEDULE)
    x_t, _ = svnr.bridge_sample(x0, eps_y, t_star, t_star, SCHEDULE, torch.randn(2, 1, 8, 8))
    ab = svnr.alpha_bar_at(t_star, SCHEDULE)[:, None]
    torch.testing.assert_close(x_t, ab.sqrt() * y, rtol=1e-5, atol=1e-5)
    clean, _ = svnr.bridge_sample(
        x0, eps_y, torch.full_like(t_star, -1), t_star, SCHEDULE, torch.randn(2, 1, 8, 8)
    )
    torch.testing.assert_close(clean, x0)


def test_bridge_target_is_correlated_with_the_conditions_noise():
    n = 20000
    x0 = torch.zeros(n, 1, 1, 1)
    eps_y = torch.randn(n, 1, 1, 1, generator=_gen(1))
    t_star = torch.full((n, 1, 1), 30.0)
    t = torch.full((n, 1, 1), 10.0)
    _, target = svnr.bridge_sample(
        x0, eps_y, t, t_star, SCHEDULE, torch.randn(n, 1, 1, 1, generator=_gen(2))
    )
    ab, ab_star = svnr.alpha_bar_at(torch.tensor([10.0, 30.0]), SCHEDULE)
    rho = (((1 - ab) / ab) / ((1 - ab_star) / ab_star)).sqrt()
    corr = torch.corrcoef(torch.stack([target.flatten(), eps_y.flatten()]))[0, 1]
    assert float(target.std()) == pytest.approx(1.0, abs=0.02)
    assert float(corr) == pytest.approx(float(rho), abs=0.02)


def test_reverse_times_start_at_t_star_end_clean_and_decrease():
    t_star = svnr.time_map(svnr.coil_sigma_map(2, 8, generator=_gen(0)), SCHEDULE)
    times = svnr.reverse_times(t_star, 5)
    assert len(times) == 6 and torch.equal(times[0], t_star) and bool((times[-1] == -1).all())
    for a, b in zip(times[:-1], times[1:], strict=True):
        assert bool((b <= a).all())


def test_samplers_run_and_count_their_evaluations():
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = UNet(2, 1, base_channels=8, channel_mults=(1,), attn_resolutions=())

        def forward(self, x, t):
            calls.append(tuple(t.shape))
            return self.net(x, t)

    model = Counting()
    noisy = torch.rand(2, 1, 8, 8)
    sigma = svnr.coil_sigma_map(2, 8, generator=_gen(0))
    out = svnr.denoise(model, noisy, sigma, schedule=SCHEDULE, steps=4)
    assert out.shape == noisy.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert calls == [(2, 8, 8)] * 4
    calls.clear()
    small = diffusion.Schedule.make("linear", T=10)
    svnr.denoise_conditional(model, noisy, schedule=small)
    assert calls == [(2,)] * 10
    a = svnr.denoise(model, noisy, sigma, schedule=SCHEDULE, steps=3, seed=1)
    b = svnr.denoise(model, noisy, sigma, schedule=SCHEDULE, steps=3, seed=1)
    assert torch.equal(a, b)


def test_an_untrained_denoiser_at_zero_noise_returns_the_input():
    """ε̂ = 0 (zero-initialised output) and σ = 0 everywhere: every pixel is already clean."""
    net = UNet(2, 1, base_channels=8, channel_mults=(1,), attn_resolutions=())
    noisy = torch.rand(1, 1, 8, 8)
    out = svnr.denoise(net, noisy, torch.zeros(1, 1, 8, 8), schedule=SCHEDULE, steps=3)
    torch.testing.assert_close(out, noisy)


# ---------------------------------------------------------------------------------------------
# training, caching, and the pieces the notebook adds to other modules


@pytest.mark.parametrize("kind", svnr.KINDS)
def test_training_lowers_the_loss_and_caches(kind, tmp_path):
    cfg = svnr.SVNRConfig.preset("smoke")
    images = torch.rand(16, 1, 16, 16, generator=_gen(0)) * 0.5 + 0.25

    def sigma_fn(x, g):
        return svnr.coil_sigma_map(x.shape[0], x.shape[-1], generator=g)

    path = tmp_path / f"{kind}.safetensors"
    net = svnr.make_unet(cfg, seed=0)
    res = svnr.train(net, images, kind=kind, sigma_fn=sigma_fn, schedule=cfg.schedule(), steps=20,
                     batch_size=4, lr=3e-3, warmup=2, seed=0, checkpoint_path=path, progress=False)  # fmt: skip
    assert len(res.loss_history) == 20 and path.exists()
    assert sum(res.loss_history[-5:]) < sum(res.loss_history[:5])
    again = svnr.train(svnr.make_unet(cfg, seed=0), images, kind=kind, sigma_fn=sigma_fn,
                       schedule=cfg.schedule(), steps=20, batch_size=4, lr=3e-3, warmup=2, seed=0,
                       checkpoint_path=path, progress=False)  # fmt: skip
    assert again.loss_history == res.loss_history
    for a, b in zip(again.ema.parameters(), res.ema.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="holds a run with"):
        svnr.train(svnr.make_unet(cfg), images, kind=kind, sigma_fn=sigma_fn, schedule=cfg.schedule(),
                   steps=21, batch_size=4, checkpoint_path=path, progress=False)  # fmt: skip


def test_training_input_errors():
    cfg = svnr.SVNRConfig.preset("smoke")
    net = svnr.make_unet(cfg)
    with pytest.raises(ValueError, match="kind must be one of"):
        svnr.train(
            net,
            torch.rand(4, 1, 16, 16),
            kind="white",
            sigma_fn=None,
            schedule=cfg.schedule(),
            steps=1,
        )
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\) in \[0, 1\]"):
        svnr.train(
            net,
            torch.rand(4, 1, 16, 16) * 3,
            kind="svnr",
            sigma_fn=None,
            schedule=cfg.schedule(),
            steps=1,
        )


def test_config_presets_and_validation():
    for profile in ("smoke", "laptop", "gpu"):
        cfg = svnr.SVNRConfig.preset(profile)
        assert cfg.schedule().T == cfg.T and cfg.svnr_steps <= cfg.T
    with pytest.raises(ValueError, match="not divisible"):
        svnr.SVNRConfig.preset("laptop", size=30)
    with pytest.raises(ValueError, match="svnr_steps"):
        svnr.SVNRConfig.preset("smoke", svnr_steps=100)


def test_dip_stops_at_the_noise_level():
    net = dip.SkipNet(8, 1, scales=2, channels=8, seed=0)
    z = dip.make_input(8, (16, 16), generator=_gen(0))
    clean = torch.rand(1, 1, 16, 16, generator=_gen(1))
    noisy = clean + 0.1 * torch.randn(1, 1, 16, 16, generator=_gen(2))
    res = dip.fit(net, z, noisy, iterations=2000, lr=0.01, stop_below=0.01, progress=False)
    assert 1 < res.stopped_at < 2000 and len(res.loss) == res.stopped_at
    assert res.loss[-1] <= 0.01 < min(res.loss[:-1])


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_more_values():
    rng = torch.Generator().manual_seed(0)
    few = torch.randn(16, generator=rng).numpy()
    many = torch.randn(1024, generator=rng).numpy()
    lo, hi = metrics.bootstrap_interval(np.mean, few)
    assert lo < few.mean() < hi
    lo2, hi2 = metrics.bootstrap_interval(np.mean, many)
    assert hi2 - lo2 < (hi - lo) / 3
    with pytest.raises(ValueError, match="at least 2 finite"):
        metrics.bootstrap_interval(np.mean, [1.0])


def test_brain_phantom_knows_its_lesions():
    images, labels, healthy = brain_phantom.lesion_maps(6, 16, seed=2)
    same, lab = brain_phantom.generate(6, 16, seed=2)
    assert torch.equal(images, same) and torch.equal(labels, lab)
    diff = (images - healthy).abs().flatten(1).amax(1)
    assert bool((diff[labels == 0] == 0).all()) and bool((diff[labels == 1] > 0.1).all())


def test_experiment_presets_and_validation():
    from helpers.course import experiments

    laptop = experiments.RealNoiseExperiment.preset("laptop")
    assert laptop.n_test >= 16 and laptop.datasets[0] == "brain"
    with pytest.raises(ValueError, match="must start with 'brain'"):
        experiments.RealNoiseExperiment.preset("laptop", datasets=("histology",))
    with pytest.raises(ValueError, match="bm3d_images must be an int ≥ 0"):
        experiments.RealNoiseExperiment.preset("laptop", bm3d_images=-1)
