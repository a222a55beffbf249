"""Noise schedules, the forward process and the DDPM / DDIM reverse steps.

The pieces of Ho et al. (2020) and Song et al. (2021) as pure functions of tensors, so that a
notebook can write the sampling loop out itself: a schedule (β, α, ᾱ …, defined in
:mod:`helpers.schedules`), :func:`q_sample` (the forward process, eq. 4 of DDPM), :func:`ddpm_step`
(one ancestral step, eqs. 6–7 and 11), :func:`ddim_step` (one DDIM step, eq. 12 of DDIM), and
``sample`` / ``guided_eps``, the whole loop with classifier-free guidance (defined in
:mod:`helpers.sampling`). Images live in ``[-1, 1]`` (see :func:`to_signed`).

References
----------
.. [1] J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
.. [2] J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
.. [3] A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021.
.. [4] J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 workshop.

Examples
--------
>>> import torch
>>> from helpers import diffusion
>>> s = diffusion.Schedule.make("linear", T=1000)
>>> x0 = torch.zeros(2, 1, 8, 8)
>>> xt = diffusion.q_sample(x0, torch.tensor([0, 999]), torch.randn_like(x0), s)
>>> tuple(xt.shape)
(2, 1, 8, 8)
"""

from __future__ import annotations

import torch

from .schedules import Schedule, _check_T, cosine_betas, linear_betas

# ``sample`` and ``guided_eps`` (helpers.sampling) are reachable here too, through __getattr__ below.
__all__ = [
    "Schedule",
    "cosine_betas",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_step",
    "linear_betas",
    "predict_x0",
    "q_sample",
    "to_signed",
    "to_unit",
]


# ---------------------------------------------------------------------------------------------
# input checks and broadcasting


def _timesteps(
    t: int | torch.Tensor,
    batch: int,
    schedule: Schedule,
    name: str = "t",
    *,
    allow_minus_one: bool = False,
) -> torch.Tensor:
    """``t`` as a ``(B,)`` long tensor on the schedule's device, range-checked."""
    tt = torch.as_tensor(t, device=schedule.device)
    if tt.is_floating_point() or tt.dtype == torch.bool:
        raise TypeError(f"{name} must be integer timesteps, got dtype {tt.dtype}")
    if tt.ndim == 0:
        tt = tt.expand(batch)
    if tt.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape ({batch},), got {tuple(tt.shape)}")
    low = -1 if allow_minus_one else 0
    if bool((tt < low).any()) or bool((tt >= schedule.T).any()):
        raise ValueError(
            f"{name} must lie in [{low}, {schedule.T - 1}] for T={schedule.T}, got min {int(tt.min())}, max {int(tt.max())}"
        )
    return tt.long()


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` reshaped to ``(B, 1, 1, …)`` so it broadcasts against ``like``."""
    out = values.to(like.device)[t.to(like.device)].to(like.dtype)
    return out.reshape(-1, *([1] * (like.ndim - 1)))


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device, moved to ``x``'s."""
    where = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)


def _check_pair(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError(
            f"{na} and {nb} must be tensors, got {type(a).__name__} and {type(b).__name__}"
        )
    if a.shape != b.shape:
        raise ValueError(
            f"{na} and {nb} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.ndim < 2:
        raise ValueError(f"{na} must be batched (B, C, …), got shape {tuple(a.shape)}")


# ---------------------------------------------------------------------------------------------
# forward process and one reverse step


def q_sample(
    x0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor, schedule: Schedule
) -> torch.Tensor:
    """The forward process in closed form: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε (DDPM eq. 4).

    Parameters
    ----------
    x0 : Tensor ``(B, C, H, W)``
        Clean images in ``[-1, 1]``.
    t : int or Tensor ``(B,)``
        Timesteps in ``0 … T−1``.
    noise : Tensor ``(B, C, H, W)``
        ε ~ N(0, I).
    schedule : Schedule

    Returns
    -------
    Tensor ``(B, C, H, W)``: x_t.
    """
    _check_pair(x0, noise, "x0", "noise")
    tt = _timesteps(t, x0.shape[0], schedule)
    return (
        _gather(schedule.sqrt_alpha_bars, tt, x0) * x0
        + _gather(schedule.sqrt_one_minus_alpha_bars, tt, x0) * noise
    )


def predict_x0(
    eps: torch.Tensor, t: int | torch.Tensor, x_t: torch.Tensor, schedule: Schedule
) -> torch.Tensor:
    """x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, the clean image implied by a noise prediction."""
    _check_pair(eps, x_t, "eps", "x_t")
    tt = _timesteps(t, x_t.shape[0], schedule)
    return (x_t - _gather(schedule.sqrt_one_minus_alpha_bars, tt, x_t) * eps) / _gather(
        schedule.sqrt_alpha_bars, tt, x_t
    )


def ddpm_step(
    eps: torch.Tensor,
    t: int | torch.Tensor,
    x_t: torch.Tensor,
    schedule: Schedule,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    variance: str = "posterior",
    clip_x0: bool = False,
) -> torch.Tensor:
    """One ancestral step x_t → x_{t−1} of DDPM.

    Through x̂₀: μ̃ = √ᾱ_{t−1} β_t/(1−ᾱ_t) x̂₀ + √α_t (1−ᾱ_{t−1})/(1−ᾱ_t) x_t (eq. 7), which equals
    eq. 11, (x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t, when x̂₀ is not clipped; then x_{t−1} = μ̃ + σ_t z with
    σ_t² = β̃_t (``"posterior"``, diffusers' ``"fixed_small"``) or β_t (``"beta"``,
    ``"fixed_large"``), and no noise at t = 0.

    Parameters
    ----------
    eps : Tensor ``(B, C, H, W)``
        The model's noise prediction ε_θ(x_t, t).
    t : int or Tensor ``(B,)``
        Current timestep(s), ``0 … T−1``.
    x_t : Tensor ``(B, C, H, W)``
    schedule : Schedule
    noise : Tensor ``(B, C, H, W)``, optional
        z ~ N(0, I); drawn from ``generator`` when omitted.
    generator : torch.Generator, optional
        Used only when ``noise`` is omitted.
    variance : {"posterior", "beta"}
    clip_x0 : bool
        Clamp x̂₀ to ``[-1, 1]`` before forming the mean.

    Returns
    -------
    Tensor ``(B, C, H, W)``: x_{t−1}.
    """
    if variance not in ("posterior", "beta"):
        raise ValueError(f"variance must be 'posterior' or 'beta', got {variance!r}")
    _check_pair(eps, x_t, "eps", "x_t")
    tt = _timesteps(t, x_t.shape[0], schedule)
    x0 = predict_x0(eps, tt, x_t, schedule)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
    mean = (
        _gather(schedule.posterior_mean_coef_x0, tt, x_t) * x0
        + _gather(schedule.posterior_mean_coef_xt, tt, x_t) * x_t
    )  # eq. 7
    var = _gather(
        schedule.posterior_variance if variance == "posterior" else schedule.betas, tt, x_t
    )
    if noise is None:
        noise = _randn_like(x_t, generator)
    else:
        _check_pair(noise, x_t, "noise", "x_t")
    nonzero = (tt > 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))  # no noise at t = 0
    return mean + nonzero * var.sqrt() * noise


def ddim_step(
    eps: torch.Tensor,
    t: int | torch.Tensor,
    t_prev: int | torch.Tensor,
    x_t: torch.Tensor,
    schedule: Schedule,
    *,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
) -> torch.Tensor:
    """One DDIM step x_t → x_{t'} with t' = ``t_prev`` < t (DDIM eq. 12).

    x_{t'} = √ᾱ_{t'} x̂₀ + √(1 − ᾱ_{t'} − σ²) ε̂ + σ z, with
    σ = η √((1 − ᾱ_{t'})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t'}); η = 0 is deterministic, η = 1 is DDPM-like.
    ``t_prev = -1`` means the end of the chain (ᾱ = 1), as diffusers' ``set_alpha_to_one=True``.

    Parameters
    ----------
    eps : Tensor ``(B, C, H, W)``
    t, t_prev : int or Tensor ``(B,)``
        ``0 <= t < T`` and ``-1 <= t_prev < t``.
    x_t : Tensor ``(B, C, H, W)``
    schedule : Schedule
    eta : float
        ``>= 0``.
    noise, generator : optional
        z for η > 0 (drawn from ``generator`` when ``noise`` is omitted).
    clip_x0 : bool
        Clamp x̂₀ to ``[-1, 1]`` (ε̂ itself is left as predicted, as in diffusers).

    Returns
    -------
    Tensor ``(B, C, H, W)``: x_{t'}.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    _check_pair(eps, x_t, "eps", "x_t")
    tt = _timesteps(t, x_t.shape[0], schedule)
    tp = _timesteps(t_prev, x_t.shape[0], schedule, "t_prev", allow_minus_one=True)
    if bool((tp >= tt).any()):
        raise ValueError(
            f"t_prev must be smaller than t, got t={tt.tolist()[:4]}…, t_prev={tp.tolist()[:4]}…"
        )
    x0 = predict_x0(eps, tt, x_t, schedule)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
    ab = _gather(schedule.alpha_bars, tt, x_t)
    ab_prev = torch.where(
        tp >= 0, schedule.alpha_bars[tp.clamp(min=0)], torch.ones_like(schedule.alpha_bars[0])
    )
    ab_prev = ab_prev.to(x_t.device, x_t.dtype).reshape(ab.shape)
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
    x_prev = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        if noise is None:
            noise = _randn_like(x_t, generator)
        else:
            _check_pair(noise, x_t, "noise", "x_t")
        x_prev = x_prev + sigma * noise
    return x_prev


def ddim_timesteps(T: int, steps: int, *, spacing: str = "leading") -> torch.Tensor:
    """The ``steps`` timesteps a DDIM sampler visits, in decreasing order.

    ``"leading"`` (diffusers' default, ``steps_offset=0``): ``k·(T // steps)`` for k = steps−1 … 0,
    e.g. T = 1000, steps = 10 → 900, 800, …, 0. ``"trailing"`` starts at T − 1:
    ``round(T − k·T/steps) − 1``, e.g. 999, 899, …, 99 (Lin et al. 2024 recommend it for few steps).

    Returns
    -------
    Tensor ``(steps,)`` int64.
    """
    _check_T(T)
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, T={T}], got {steps!r}")
    if spacing == "leading":
        return torch.arange(steps - 1, -1, -1, dtype=torch.long) * (T // steps)
    if spacing == "trailing":
        # k counts the steps (an integer range): a float arange with step T/steps can overshoot by one
        k = torch.arange(steps, dtype=torch.float64)
        return ((T - k * (T / steps)).round() - 1).long()
    raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")


# ---------------------------------------------------------------------------------------------
# the whole loop, for convenience (notebook 03 writes it out itself)


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Images in ``[0, 1]`` → ``[-1, 1]``, the range the models are trained in."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Samples in ``[-1, 1]`` → images in ``[0, 1]`` (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def __getattr__(name: str):
    """``diffusion.sample`` and ``diffusion.guided_eps`` live in :mod:`helpers.sampling`."""
    if name in ("sample", "guided_eps"):
        from . import sampling

        return getattr(sampling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
