"""Schedules, forward process and reverse steps of helpers.diffusion, against diffusers."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from helpers import diffusion, unet
from helpers.diffusion import Schedule, ddim_step, ddim_timesteps, ddpm_step, q_sample

T = 1000


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(params=["linear", "cosine"])
def kind(request) -> str:
    return request.param


def _diffusers_kind(kind: str) -> str:
    return {"linear": "linear", "cosine": "squaredcos_cap_v2"}[kind]


def _float64(ref):
    """diffusers recovers β_t as 1 − ᾱ_t/ᾱ_{t−1} in float32, which loses ~3 digits at small t;
    the comparison runs its arithmetic in float64 instead (same formulas, same β)."""
    ref.alphas_cumprod = torch.cumprod(1 - ref.betas.double(), 0)
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    ref.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return ref


# --- schedules: known values ----------------------------------------------------------------


def test_linear_betas_known_values():
    b = diffusion.linear_betas(T)
    assert b.shape == (T,) and b.dtype == torch.float32
    assert b[0].item() == pytest.approx(1e-4)
    assert b[-1].item() == pytest.approx(0.02)
    assert b[499].item() == pytest.approx(1e-4 + 499 * (0.02 - 1e-4) / 999, rel=1e-6)


def test_linear_schedule_alpha_bar_known_values():
    s = Schedule.make("linear", T=T)
    # ᾱ_T of DDPM's schedule is about 4.04e-5: x_T is almost pure noise
    assert s.alpha_bars[-1].item() == pytest.approx(4.0358e-5, rel=1e-3)
    assert s.alpha_bars[0].item() == pytest.approx(1 - 1e-4)
    assert s.alpha_bars[499].item() == pytest.approx(0.0785872, rel=1e-4)


def test_cosine_schedule_known_values():
    s = Schedule.make("cosine", T=T)
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 250, 500, 750):
        assert s.alpha_bars[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-5, abs=1e-7)
    assert s.betas[-1].item() == pytest.approx(0.999)  # the cap
    assert s.alpha_bars[499].item() == pytest.approx(0.4938436, rel=1e-4)


def test_schedules_match_diffusers(kind):
    s = Schedule.make(kind, T=T)
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=_diffusers_kind(kind))
    torch.testing.assert_close(s.betas, ref.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(s.alpha_bars, ref.alphas_cumprod, rtol=1e-4, atol=1e-7)


def test_schedule_identities(kind):
    s = Schedule.make(kind, T=T)
    torch.testing.assert_close(s.sqrt_alpha_bars**2 + s.sqrt_one_minus_alpha_bars**2, torch.ones(T))
    torch.testing.assert_close(s.alphas, 1 - s.betas)
    assert bool((s.posterior_variance <= s.betas + 1e-7).all())  # β̃_t ≤ β_t
    assert s.posterior_variance[0].item() == 0.0
    assert bool((s.snr()[1:] < s.snr()[:-1]).all())  # SNR decreases with t


def test_schedule_to_and_errors():
    s = Schedule.make("linear", T=10).to("cpu")
    assert s.T == 10 and s.kind == "linear"
    with pytest.raises(ValueError, match="unknown schedule kind"):
        Schedule.make("quadratic")
    with pytest.raises(ValueError, match="T must be a positive int"):
        diffusion.linear_betas(0)
    with pytest.raises(ValueError, match="start <= end"):
        diffusion.linear_betas(10, start=0.1, end=0.01)
    with pytest.raises(ValueError, match=r"betas must lie in \(0, 1\), got values from 0.5 to 1"):
        Schedule.from_betas(torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"non-empty 1-D tensor, got shape \(2, 2\)"):
        Schedule.from_betas(torch.full((2, 2), 0.1))


# --- forward process --------------------------------------------------------------------------


def test_q_sample_equals_diffusers_add_noise(kind):
    s = Schedule.make(kind, T=T)
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=_diffusers_kind(kind))
    x0 = torch.rand(6, 1, 8, 8, generator=_gen(0)) * 2 - 1
    noise = torch.randn(6, 1, 8, 8, generator=_gen(1))
    t = torch.tensor([0, 1, 250, 500, 750, 999])
    torch.testing.assert_close(
        q_sample(x0, t, noise, s), ref.add_noise(x0, noise, t), rtol=1e-5, atol=1e-5
    )


def test_q_sample_scalar_t_and_errors():
    s = Schedule.make("linear", T=T)
    x0, noise = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    out = q_sample(x0, 999, noise, s)
    torch.testing.assert_close(out, torch.full_like(x0, s.sqrt_one_minus_alpha_bars[-1].item()))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 999\]"):
        q_sample(x0, 1000, noise, s)
    with pytest.raises(ValueError, match=r"t must lie in"):
        q_sample(x0, torch.tensor([-1, 3]), noise, s)
    with pytest.raises(ValueError, match="same shape"):
        q_sample(x0, 3, torch.ones(2, 1, 4, 5), s)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        q_sample(x0, torch.tensor([1, 2, 3]), noise, s)
    with pytest.raises(TypeError, match="integer timesteps"):
        q_sample(x0, torch.tensor([1.0, 2.0]), noise, s)


# --- reverse steps against diffusers ----------------------------------------------------------


@pytest.mark.parametrize("variance", ["posterior", "beta"])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("t", [999, 500, 1, 0])
def test_ddpm_step_equals_diffusers(kind, variance, clip, t):
    s = Schedule.make(kind, T=T)
    ref = DDPMScheduler(
        num_train_timesteps=T,
        beta_schedule=_diffusers_kind(kind),
        variance_type={"posterior": "fixed_small", "beta": "fixed_large"}[variance],
        clip_sample=clip,
    )
    _float64(ref)
    x_t = torch.randn(3, 1, 8, 8, generator=_gen(2)) * 1.5
    eps = torch.randn(3, 1, 8, 8, generator=_gen(3))
    expected = ref.step(eps, t, x_t, generator=_gen(4)).prev_sample
    noise = torch.randn(3, 1, 8, 8, generator=_gen(4))  # the draw diffusers makes
    got = ddpm_step(eps, t, x_t, s, noise=noise, variance=variance, clip_x0=clip)
    torch.testing.assert_close(got, expected.float(), rtol=1e-4, atol=1e-4)
    # the same with the generator instead of explicit noise
    got2 = ddpm_step(eps, t, x_t, s, generator=_gen(4), variance=variance, clip_x0=clip)
    torch.testing.assert_close(got2, got)


def test_ddpm_mean_is_eq11_without_clipping():
    s = Schedule.make("linear", T=T)
    x_t, eps = (
        torch.randn(2, 1, 4, 4, generator=_gen(5)),
        torch.randn(2, 1, 4, 4, generator=_gen(6)),
    )
    t = 400
    eq11 = (x_t - s.betas[t] / s.sqrt_one_minus_alpha_bars[t] * eps) / s.alphas[t].sqrt()
    got = ddpm_step(eps, t, x_t, s, noise=torch.zeros_like(x_t))
    torch.testing.assert_close(got, eq11, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_step_equals_diffusers(kind, eta, clip):
    steps = 20
    s = Schedule.make(kind, T=T)
    ref = DDIMScheduler(
        num_train_timesteps=T, beta_schedule=_diffusers_kind(kind), clip_sample=clip
    )
    _float64(ref).set_timesteps(steps)
    ours = ddim_timesteps(T, steps)
    assert ours.tolist() == ref.timesteps.tolist()
    x = torch.randn(3, 1, 8, 8, generator=_gen(7))
    for i, t in enumerate(ours.tolist()):
        eps = torch.randn(3, 1, 8, 8, generator=_gen(100 + i)) * 0.9
        noise = torch.randn(3, 1, 8, 8, generator=_gen(200 + i))
        t_prev = ours[i + 1].item() if i + 1 < steps else -1
        expected = ref.step(
            eps, t, x, eta=eta, variance_noise=noise if eta > 0 else None
        ).prev_sample
        got = ddim_step(eps, t, t_prev, x, s, eta=eta, noise=noise, clip_x0=clip)
        torch.testing.assert_close(got, expected.float(), rtol=1e-4, atol=1e-4)
        x = expected.float()


def test_ddim_timesteps_spacings():
    assert ddim_timesteps(1000, 10).tolist() == list(range(900, -1, -100))
    assert ddim_timesteps(1000, 10, spacing="trailing").tolist() == list(range(999, 0, -100))
    assert ddim_timesteps(1000, 1000).tolist() == list(range(999, -1, -1))
    # every step count gives exactly `steps` distinct, decreasing timesteps inside [0, T)
    cases = [(1000, 61), (1000, 103), (1000, 201), (100, 29), (7, 3)]
    cases += [(big, s) for big in (10, 50, 1000) for s in range(1, big + 1, max(1, big // 50))]
    for T, steps in cases:
        for spacing in ("leading", "trailing"):
            ts = ddim_timesteps(T, steps, spacing=spacing)
            assert len(ts) == steps and ts.min() >= 0 and ts.max() < T, (T, steps, spacing)
            assert bool((ts[:-1] > ts[1:]).all()), (T, steps, spacing)
    with pytest.raises(ValueError, match="steps must be an int in"):
        ddim_timesteps(1000, 0)
    with pytest.raises(ValueError, match="spacing"):
        ddim_timesteps(1000, 10, spacing="middle")


def test_ddim_with_eta1_and_all_steps_has_ddpm_beta_tilde_variance():
    """With t' = t − 1 and η = 1, DDIM's σ² is DDPM's posterior variance β̃_t."""
    s = Schedule.make("linear", T=T)
    x, eps, z = (torch.randn(2, 1, 4, 4, generator=_gen(k)) for k in (8, 9, 10))
    t = 300
    a = ddim_step(eps, t, t - 1, x, s, eta=1.0, noise=z)
    b = ddpm_step(eps, t, x, s, noise=z, variance="posterior")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_step_errors():
    s = Schedule.make("linear", T=T)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="variance must be"):
        ddpm_step(x, 5, x, s, variance="learned")
    with pytest.raises(ValueError, match="t_prev must be smaller"):
        ddim_step(x, 5, 5, x, s)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        ddim_step(x, 5, 4, x, s, eta=-1)
    with pytest.raises(ValueError, match="same shape"):
        ddpm_step(torch.zeros(2, 1, 4, 4), 5, torch.zeros(2, 1, 8, 8), s)
    with pytest.raises(ValueError, match=r"t must lie in"):
        ddpm_step(x, 1000, x, s)


# --- the sampling loop ------------------------------------------------------------------------


class _Oracle(torch.nn.Module):
    """Predicts the ε that maps x_t to a fixed x₀ exactly (the ideal model for a one-point dataset)."""

    def __init__(self, schedule: Schedule, x0: torch.Tensor):
        super().__init__()
        self.s, self.x0 = schedule, x0
        self.num_classes, self.cond_dim = 3, None
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None, cond=None):
        ab = self.s.alpha_bars[t].reshape(-1, 1, 1, 1)
        return (x - ab.sqrt() * self.x0) / (1 - ab).sqrt()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sample_with_oracle_recovers_x0(sampler):
    s = Schedule.make("linear", T=100)
    x0 = torch.linspace(-0.8, 0.8, 16).reshape(1, 1, 4, 4)
    out, traj = diffusion.sample(
        _Oracle(s, x0),
        (3, 1, 4, 4),
        schedule=s,
        steps=None if sampler == "ddpm" else 10,
        sampler=sampler,
        return_trajectory=True,
        as_images=False,
    )
    torch.testing.assert_close(out, x0.expand(3, -1, -1, -1), rtol=1e-3, atol=1e-3)
    images = diffusion.sample(_Oracle(s, x0), (3, 1, 4, 4), schedule=s, sampler=sampler,
                              steps=None if sampler == "ddpm" else 10)  # fmt: skip
    torch.testing.assert_close(images, diffusion.to_unit(out))  # images are handed back in [0, 1]
    assert len(traj) == (101 if sampler == "ddpm" else 11)
    assert traj[0][0] == 100


def test_sample_guidance_formula_and_determinism():
    net = unet.UNet(
        1, base_channels=8, channel_mults=(1, 2), attn_resolutions=(), num_classes=3, seed=0
    )
    for p in net.parameters():  # give the zero-initialised output layers some weight
        torch.nn.init.normal_(p, std=0.05)
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([10, 10]), torch.tensor([0, 2])
    with torch.no_grad():
        eps_c, eps_u = net(x, t, y=y), net(x, t, y=torch.tensor([3, 3]))
        got = diffusion.guided_eps(net, x, t, y=y, guidance=2.0)
    torch.testing.assert_close(got, 3 * eps_c - 2 * eps_u, rtol=1e-4, atol=1e-5)
    s = Schedule.make("linear", T=50)
    a = diffusion.sample(net, (2, 1, 8, 8), schedule=s, steps=5, y=y, guidance=1.0, seed=3)
    b = diffusion.sample(net, (2, 1, 8, 8), schedule=s, steps=5, y=y, guidance=1.0, seed=3)
    torch.testing.assert_close(a, b)
    assert torch.isfinite(a).all()


def test_sample_errors():
    s = Schedule.make("linear", T=50)
    net = unet.UNet(1, base_channels=8, channel_mults=(1,), attn_resolutions=())
    with pytest.raises(ValueError, match="sampler must be"):
        diffusion.sample(net, (1, 1, 8, 8), schedule=s, sampler="euler")
    with pytest.raises(ValueError, match="DDPM visits every step"):
        diffusion.sample(net, (1, 1, 8, 8), schedule=s, sampler="ddpm", steps=10)
    with pytest.raises(ValueError, match="y has 3 rows"):
        diffusion.sample(net, (2, 1, 8, 8), schedule=s, steps=2, y=torch.zeros(3, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# dtypes and arguments that used to be changed silently


def test_ddim_step_in_float16_at_the_last_step_is_finite_and_close():
    s = Schedule.make("linear", T=1000)
    g = _gen(0)
    x, eps = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    for t, t_prev in ((0, -1), (20, 0), (999, 979)):
        full = ddim_step(eps, t, t_prev, x, s)
        half = ddim_step(eps.half(), t, t_prev, x.half(), s)  # ᾱ_0 rounds to 1 in float16
        assert half.dtype == torch.float16 and bool(torch.isfinite(half).all())
        torch.testing.assert_close(half.float(), full, atol=5e-3, rtol=5e-3)
        eta1 = ddim_step(eps.half(), t, t_prev, x.half(), s, eta=1.0, noise=eps.half())
        assert bool(torch.isfinite(eta1).all())


def test_integer_tensors_are_refused_with_the_conversion():
    s = Schedule.make("linear", T=50)
    x0 = torch.full((1, 1, 4, 4), 200, dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"x0 must be a floating-point tensor.*to_signed"):
        q_sample(x0, 3, torch.zeros(1, 1, 4, 4), s)  # it returned zeros
    with pytest.raises(TypeError, match="noise must be a floating-point tensor"):
        q_sample(torch.zeros(1, 1, 4, 4), 3, torch.zeros(1, 1, 4, 4, dtype=torch.long), s)
    with pytest.raises(TypeError, match=r"x.float\(\) / 255"):
        diffusion.to_signed(x0)
    with pytest.raises(TypeError, match="floating-point"):
        diffusion.to_unit(x0.long())


def _tiny():
    return unet.UNet(1, base_channels=8, channel_mults=(1, 2), attn_resolutions=(), seed=0)


def test_sample_steps_zero_is_an_error_not_fifty():
    s = Schedule.make("linear", T=20)
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, T=20\], got 0"):
        diffusion.sample(_tiny(), (1, 1, 8, 8), schedule=s, steps=0)
    a = diffusion.sample(_tiny(), (1, 1, 8, 8), schedule=s, steps=None)
    b = diffusion.sample(_tiny(), (1, 1, 8, 8), schedule=s, steps=20)
    assert torch.equal(a, b)  # None is the default: 50 steps, or T when T is smaller


@pytest.mark.parametrize(
    ("option", "error", "message"),
    [
        ({"guidance": float("nan")}, ValueError, "guidance must be a finite number"),
        ({"eta": -1.0}, ValueError, "eta must be"),
        ({"seed": "a"}, TypeError, "seed must be an int"),
        ({"device": "nope"}, ValueError, "not a device"),
        ({"shape": (2, 8, 8)}, ValueError, "has 8 channels, the model takes 1"),
        ({"shape": (2, 1, 0, 8)}, ValueError, r"shape\[2\] must be a positive int"),
    ],
)
def test_sample_options_are_checked(option, error, message):
    s = Schedule.make("linear", T=20)
    args = {"shape": (2, 1, 8, 8), "schedule": s, "steps": 2, **option}
    with pytest.raises(error, match=message):
        diffusion.sample(_tiny(), args.pop("shape"), **args)


def test_sample_with_a_bfloat16_network_keeps_a_float32_chain():
    s = Schedule.make("linear", T=20)
    x = diffusion.sample(_tiny().to(torch.bfloat16), (2, 1, 8, 8), schedule=s, steps=3)
    assert x.dtype == torch.float32 and bool(torch.isfinite(x).all()) and x.shape == (2, 1, 8, 8)


def test_sampling_a_broken_network_raises_instead_of_returning_nan():
    net = _tiny()
    net.conv_out.register_forward_hook(lambda m, i, o: o * float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite predictions"):
        diffusion.sample(net, (1, 1, 8, 8), schedule=Schedule.make("linear", T=20), steps=2)
