"""Diffusion models as pure functions of tensors: schedules, the forward process, DDPM and DDIM
steps, classifier-free guidance, and the whole sampling loop.

The pieces of Ho et al. (2020) and Song et al. (2021), kept apart from any network so that a
notebook can write the sampling loop out itself:

* :class:`Schedule` (built by :func:`linear_betas` or :func:`cosine_betas`) holds β_t, α_t, ᾱ_t,
  √ᾱ_t, √(1−ᾱ_t), the posterior variance β̃_t and the posterior-mean weights;
* :func:`q_sample` is the forward process in closed form (DDPM eq. 4);
* :func:`ddpm_step` is one ancestral step (eqs. 6–7 and 11), :func:`ddim_step` one DDIM step
  (DDIM eq. 12), :func:`ddim_timesteps` the steps DDIM visits;
* the condition conventions: :func:`null_condition` (the null label ``num_classes`` and the zero
  vector), :func:`drop_condition` (replace a share of the batch by the null condition, as training
  for guidance does), :func:`classifier_free_guidance` (the formula) and :func:`guided_eps` (one
  guided prediction of a model);
* :func:`sample`, the whole reverse process, for the notebooks after the one that writes it out.

Value ranges: the process works in ``[-1, 1]`` (:func:`to_signed` maps ``[0, 1]`` images there);
images handed back to users by :func:`sample` are in ``[0, 1]`` (:func:`to_unit`).

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
>>> round(float(s.alpha_bars[499]), 4), round(float(diffusion.Schedule.make("cosine").alpha_bars[499]), 4)
(0.0786, 0.4938)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn
from tqdm.auto import tqdm

from .validation import as_device, check_choice, check_finite, check_int, check_number, check_seed

__all__ = [
    "Schedule",
    "classifier_free_guidance",
    "cosine_betas",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_step",
    "drop_condition",
    "guided_eps",
    "linear_betas",
    "null_condition",
    "predict_x0",
    "q_sample",
    "sample",
    "to_signed",
    "to_unit",
]


# ---------------------------------------------------------------------------------------------
# noise schedules


def linear_betas(T: int = 1000, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """The linear schedule of DDPM: β_t evenly spaced from ``start`` to ``end``.

    Parameters
    ----------
    T : int
        Number of diffusion steps (1000 in the paper).
    start, end : float
        β_1 and β_T (1e-4 and 0.02 in the paper), ``0 < start <= end < 1``.

    Returns
    -------
    Tensor ``(T,)`` float32

    Examples
    --------
    >>> linear_betas(1000)[[0, -1]].tolist()  # doctest: +ELLIPSIS
    [9.99...e-05, 0.0199...]
    """
    _check_T(T)
    if not 0 < start <= end < 1:
        raise ValueError(f"need 0 < start <= end < 1, got start={start}, end={end}")
    return torch.linspace(start, end, T, dtype=torch.float64).float()


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """The cosine schedule of Nichol & Dhariwal: ᾱ_t = f(t)/f(0), f(t) = cos²(((t/T + s)/(1 + s))·π/2).

    β_t = 1 − ᾱ_t/ᾱ_{t−1}, capped at ``max_beta`` (as diffusers' ``"squaredcos_cap_v2"``).

    Parameters
    ----------
    T : int
        Number of diffusion steps.
    s : float
        Small offset that keeps β_1 from being tiny (0.008 in the paper).
    max_beta : float
        Upper bound on β_t (0.999), which avoids a singularity at t = T.

    Returns
    -------
    Tensor ``(T,)`` float32
    """
    _check_T(T)
    if s < 0 or not 0 < max_beta < 1:
        raise ValueError(f"need s >= 0 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = 1 - f[1:] / f[:-1]
    return betas.clamp(max=max_beta).float()


@dataclass(frozen=True)
class Schedule:
    """Every per-step quantity of a noise schedule, as ``(T,)`` float32 tensors.

    Build one with :meth:`make` or ``Schedule.from_betas(betas)``; index ``t`` runs over
    ``0 … T−1`` (the paper's t = 1 … T).

    Attributes
    ----------
    betas : β_t
    alphas : α_t = 1 − β_t
    alpha_bars : ᾱ_t = ∏_{s≤t} α_s
    alpha_bars_prev : ᾱ_{t−1}, with ᾱ_{−1} = 1
    sqrt_alpha_bars : √ᾱ_t
    sqrt_one_minus_alpha_bars : √(1 − ᾱ_t)
    posterior_variance : β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)  (DDPM eq. 7)
    posterior_mean_coef_x0, posterior_mean_coef_xt : the weights of x₀ and x_t in the posterior
        mean μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) · x₀ + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) · x_t (eq. 7),
        computed in float64 (1 − ᾱ_t in float32 loses digits at small t)
    kind : str
        ``"linear"``, ``"cosine"`` or ``"custom"``.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor
    alpha_bars_prev: torch.Tensor
    sqrt_alpha_bars: torch.Tensor
    sqrt_one_minus_alpha_bars: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_mean_coef_x0: torch.Tensor
    posterior_mean_coef_xt: torch.Tensor
    kind: str = "custom"

    @classmethod
    def from_betas(cls, betas: torch.Tensor, kind: str = "custom") -> Schedule:
        """All quantities from β (computed in float64, stored as float32)."""
        b = torch.as_tensor(betas, dtype=torch.float64)
        if b.ndim != 1 or len(b) < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(b.shape)}")
        if not bool(((b > 0) & (b < 1)).all()):
            raise ValueError(
                f"betas must lie in (0, 1), got values from {float(b.min()):.4g} to {float(b.max()):.4g}"
            )
        a = 1 - b  # α_t
        ab = torch.cumprod(a, 0)  # ᾱ_t
        ab_prev = torch.cat([torch.ones(1, dtype=b.dtype), ab[:-1]])  # ᾱ_{t−1}
        post = b * (1 - ab_prev) / (1 - ab)  # β̃_t
        coef_x0 = ab_prev.sqrt() * b / (1 - ab)  # √ᾱ_{t−1} β_t / (1 − ᾱ_t)
        coef_xt = a.sqrt() * (1 - ab_prev) / (1 - ab)  # √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)
        f = lambda v: v.float().contiguous()  # noqa: E731
        return cls(
            f(b),
            f(a),
            f(ab),
            f(ab_prev),
            f(ab.sqrt()),
            f((1 - ab).sqrt()),
            f(post),
            f(coef_x0),
            f(coef_xt),
            kind,
        )

    @classmethod
    def make(cls, kind: str = "linear", T: int = 1000, **options: float) -> Schedule:
        """``Schedule.make("linear" | "cosine", T)``; ``options`` go to the β function."""
        makers = {"linear": linear_betas, "cosine": cosine_betas}
        if kind not in makers:
            raise ValueError(f"unknown schedule kind {kind!r}; expected one of {sorted(makers)}")
        return cls.from_betas(makers[kind](T, **options), kind=kind)

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return int(self.betas.shape[0])

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t), ``(T,)``."""
        return self.alpha_bars / (1 - self.alpha_bars)

    def to(self, device: str | torch.device) -> Schedule:
        """A copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()}
        return Schedule(**moved)

    def __repr__(self) -> str:
        return f"Schedule(kind={self.kind!r}, T={self.T}, device={self.device})"


def _check_T(T: int) -> None:
    if not isinstance(T, int) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")


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
    for name, x in ((na, a), (nb, b)):
        if not x.is_floating_point():
            raise TypeError(
                f"{name} must be a floating-point tensor in the model's [-1, 1] space, got dtype "
                f"{x.dtype}; convert images with to_signed(images.float() / 255)"
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
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not eta >= 0:  # NaN too
        raise ValueError(f"eta must be >= 0, got {eta!r}")
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
    # the schedule's terms in its own precision (float32), cast to x_t's dtype at the end: in
    # float16, ᾱ_0 = 0.9999 rounds to 1 and 1 − ᾱ_t / (1 − ᾱ_t) would be 0/0
    ab = schedule.alpha_bars.to(x_t.device)[tt.to(x_t.device)]
    ab = ab.reshape(-1, *([1] * (x_t.ndim - 1)))
    ab_prev = torch.where(
        tp >= 0, schedule.alpha_bars[tp.clamp(min=0)], torch.ones_like(schedule.alpha_bars[0])
    )
    ab_prev = ab_prev.to(x_t.device).reshape(ab.shape)
    sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
    coef_x0, coef_eps = ab_prev.sqrt(), (1 - ab_prev - sigma**2).clamp(min=0).sqrt()
    x_prev = coef_x0.to(x_t.dtype) * x0 + coef_eps.to(x_t.dtype) * eps
    if eta > 0:
        if noise is None:
            noise = _randn_like(x_t, generator)
        else:
            _check_pair(noise, x_t, "noise", "x_t")
        x_prev = x_prev + sigma.to(x_t.dtype) * noise
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
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in [1, T={T}], got {steps!r}")
    if spacing == "leading":
        return torch.arange(steps - 1, -1, -1, dtype=torch.long) * (T // steps)
    if spacing == "trailing":
        # k counts the steps (an integer range): a float arange with step T/steps can overshoot by one
        k = torch.arange(steps, dtype=torch.float64)
        return ((T - k * (T / steps)).round() - 1).long()
    raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")


# ---------------------------------------------------------------------------------------------
# value ranges


def _check_float_images(x: torch.Tensor, name: str, scale: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor {scale}, got dtype {x.dtype}")


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Images in ``[0, 1]`` → ``[-1, 1]``, the range the models are trained in.

    Raises
    ------
    TypeError
        For integer images (``uint8`` would wrap around): pass ``x.float() / 255``.
    """
    _check_float_images(x, "x", "in [0, 1] (for uint8 images pass x.float() / 255)")
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Samples in ``[-1, 1]`` → images in ``[0, 1]`` (clamped)."""
    _check_float_images(x, "x", "in [-1, 1]")
    return ((x + 1) / 2).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# conditions: the null condition, condition dropping, classifier-free guidance


def null_condition(
    model: nn.Module, y: torch.Tensor | None, cond: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The unconditional inputs matching ``y`` / ``cond``: the null label and the zero vector.

    The kit's convention for every conditional model: label ``model.num_classes`` is the null
    class (one more than there are classes); the all-zero vector is the null embedding.

    Returns
    -------
    (y_null, cond_null) : each ``None`` where the input was ``None``.
    """
    y_null = None if y is None else torch.full_like(y, model.num_classes)
    cond_null = None if cond is None else torch.zeros_like(cond)
    return y_null, cond_null


def drop_condition(
    model: nn.Module,
    y: torch.Tensor | None,
    cond: torch.Tensor | None,
    p: float,
    *,
    batch: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """Replace each row's condition by the null condition with probability ``p``.

    Training with ``p ≈ 0.1`` teaches one network both ε_θ(x, c) and ε_θ(x, ∅), which
    classifier-free guidance needs (Ho & Salimans; Graikos et al. drop 10 % of embeddings).
    ``batch`` uniform numbers are drawn from ``generator`` (on the CPU) even when there is no
    condition, so a training loop's random stream does not depend on whether it is conditional.

    Parameters
    ----------
    model : nn.Module
        Gives the null label (``model.num_classes``).
    y : Tensor ``(B,)`` int64 or None
    cond : Tensor ``(B, D)`` or None
    p : float
        In ``[0, 1]``.
    batch : int
        ``B``.
    generator : torch.Generator, optional

    Returns
    -------
    (y, cond, dropped) : the conditions with dropped rows replaced; ``dropped`` ``(B,)`` bool.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"drop probability p must be in [0, 1], got {p}")
    device = (y if y is not None else cond).device if (y is not None or cond is not None) else None
    dropped = torch.rand(batch, generator=generator) < p
    if device is not None:
        dropped = dropped.to(device)
    y_null, cond_null = null_condition(model, y, cond)
    y = torch.where(dropped, y_null, y) if y is not None else None
    cond = torch.where(dropped[:, None], cond_null, cond) if cond is not None else None
    return y, cond, dropped


def classifier_free_guidance(
    eps_c: torch.Tensor, eps_u: torch.Tensor, guidance: float
) -> torch.Tensor:
    """ε̃ = (1 + w)·ε_c − w·ε_u (Ho & Salimans; Graikos et al. eq. 3).

    ``w = 0`` is the plain conditional model, ``w = −1`` the unconditional one. diffusers'
    ``guidance_scale`` is ``1 + w``.

    Examples
    --------
    >>> classifier_free_guidance(torch.tensor([1.0]), torch.tensor([0.0]), 3.0)
    tensor([4.])
    """
    if eps_c.shape != eps_u.shape:
        raise ValueError(
            f"eps_c and eps_u must have the same shape, got {tuple(eps_c.shape)} and {tuple(eps_u.shape)}"
        )
    return (1 + guidance) * eps_c - guidance * eps_u


def guided_eps(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, *, y=None, cond=None, guidance: float = 0.0
) -> torch.Tensor:
    """ε̂ of ``model`` with classifier-free guidance, :func:`classifier_free_guidance` of the
    conditional and the null-condition predictions.

    With ``guidance == 0`` or no condition this is one plain call. Otherwise the conditional and
    unconditional halves go through the model as one batch of 2B.
    """
    if guidance == 0 or (y is None and cond is None):
        return model(x, t, y=y, cond=cond)
    y_null, cond_null = null_condition(model, y, cond)
    cat = lambda a, b: None if a is None else torch.cat([a, b])  # noqa: E731
    eps_c, eps_u = model(
        torch.cat([x, x]), torch.cat([t, t]), y=cat(y, y_null), cond=cat(cond, cond_null)
    ).chunk(2)
    return classifier_free_guidance(eps_c, eps_u, guidance)


# ---------------------------------------------------------------------------------------------
# the whole loop, for the notebooks after 03 (which writes it out itself)


@torch.no_grad()
def sample(
    model: nn.Module,
    shape: tuple[int, ...],
    *,
    schedule: Schedule,
    steps: int | None = None,
    sampler: str = "ddim",
    eta: float = 0.0,
    y: torch.Tensor | None = None,
    cond: torch.Tensor | None = None,
    guidance: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    clip_x0: bool = True,
    variance: str = "posterior",
    spacing: str = "leading",
    progress: bool = False,
    return_trajectory: bool = False,
    as_images: bool = True,
):
    """Draw samples with DDPM (ancestral, every step) or DDIM (a subset of steps).

    Parameters
    ----------
    model : nn.Module
        ``model(x, t, y=None, cond=None) -> ε̂`` (e.g. :class:`helpers.unet.UNet`).
    shape : tuple
        ``(B, C, H, W)`` of the result.
    schedule : Schedule
    steps : int, optional
        DDIM steps (default ``None``: 50, or ``T`` when smaller; ``0`` is an error); for DDPM it
        must be ``None`` or ``schedule.T``.
    sampler : {"ddim", "ddpm"}
    eta : float
        DDIM's η (0: deterministic).
    y : Tensor ``(B,)`` long, optional
        Class labels. ``cond`` : Tensor ``(B, D)``, optional, a conditioning vector.
    guidance : float
        Classifier-free guidance weight w; ε̂ = (1 + w) ε_c − w ε_u. 0 means no guidance.
    seed : int
        Seed of the initial noise and of every noise draw (a CPU ``torch.Generator``).
    device : optional
        Default: the model's device.
    clip_x0 : bool
        Clamp x̂₀ to ``[-1, 1]`` at every step.
    variance : {"posterior", "beta"}
        DDPM only. ``spacing`` : {"leading", "trailing"}, DDIM only (see :func:`ddim_timesteps`).
    progress : bool
        Show a progress bar.
    return_trajectory : bool
        Also return the list of ``(t, x_t)`` pairs on the CPU, in the model's ``[-1, 1]`` space,
        starting with the pure noise (t = T) and ending with the sample (t = −1 for DDIM, 0 →
        result for DDPM).
    as_images : bool
        Map the result to images in ``[0, 1]`` with :func:`to_unit` (default). ``False`` returns
        it in the model's own ``[-1, 1]`` space (e.g. for samples that are embeddings).

    Returns
    -------
    Tensor ``(B, C, H, W)``: images in ``[0, 1]`` (``as_images=False``: the model's space), or
    ``(samples, trajectory)``.

    Examples
    --------
    >>> from helpers import unet
    >>> net = unet.UNet(1, base_channels=8, channel_mults=(1,), attn_resolutions=())
    >>> s = Schedule.make("linear", T=20)
    >>> x = sample(net, (2, 1, 8, 8), schedule=s, steps=5)
    >>> tuple(x.shape), bool(x.min() >= 0 and x.max() <= 1)
    ((2, 1, 8, 8), True)
    """
    check_choice(sampler, "sampler", ("ddim", "ddpm"))
    if not isinstance(shape, tuple | list) or len(shape) < 3:
        raise ValueError(f"shape must be (B, C, H, W), got {shape!r}")
    check_int(shape[0], "shape[0] (the number of samples)", minimum=0)
    for k, side in enumerate(shape[1:], 1):
        check_int(side, f"shape[{k}]", minimum=1)
    want = getattr(model, "in_channels", None)
    if isinstance(want, int) and shape[1] != want:
        raise ValueError(f"shape {tuple(shape)} has {shape[1]} channels, the model takes {want}")
    if sampler == "ddpm" and steps not in (None, schedule.T):
        raise ValueError(
            f"DDPM visits every step: steps must be None or T={schedule.T}, got {steps}"
        )
    check_number(guidance, "guidance")
    check_number(eta, "eta", low=0)
    check_seed(seed)
    for name, c in (("y", y), ("cond", cond)):
        if c is not None and c.shape[0] != shape[0]:
            raise ValueError(f"{name} has {c.shape[0]} rows but shape asks for {shape[0]} samples")
    if cond is not None:
        check_finite(cond, "cond")
    device = as_device(device) or next(model.parameters()).device
    # the chain runs in float32 whatever the network's precision (bfloat16, float16): each call
    # gets x in the network's dtype and its ε̂ comes back to float32
    net_dtype = next(model.parameters()).dtype
    schedule = schedule.to(device)
    y = y.to(device) if y is not None else None
    cond = cond.to(device, net_dtype) if cond is not None else None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(tuple(shape), generator=gen).to(device)
    ts = (
        torch.arange(schedule.T - 1, -1, -1)
        if sampler == "ddpm"
        else ddim_timesteps(
            schedule.T, min(50, schedule.T) if steps is None else steps, spacing=spacing
        )
    )
    t_prevs = torch.cat([ts[1:], torch.tensor([-1])])
    trajectory = [(schedule.T, x.cpu())] if return_trajectory else None
    was_training = model.training
    model.eval()
    for t, t_prev in tqdm(
        list(zip(ts.tolist(), t_prevs.tolist(), strict=True)), disable=not progress, desc=sampler
    ):
        tb = torch.full((shape[0],), t, device=device, dtype=torch.long)
        eps = guided_eps(model, x.to(net_dtype), tb, y=y, cond=cond, guidance=guidance)
        eps = eps.to(x.dtype)
        z = (
            torch.randn(shape, generator=gen).to(device)
            if (sampler == "ddpm" and t > 0) or eta > 0
            else None
        )
        if sampler == "ddpm":
            x = ddpm_step(
                eps,
                tb,
                x,
                schedule,
                noise=z if z is not None else torch.zeros_like(x),
                variance=variance,
                clip_x0=clip_x0,
            )
        else:
            x = ddim_step(eps, tb, t_prev, x, schedule, eta=eta, noise=z, clip_x0=clip_x0)
        if trajectory is not None:
            trajectory.append((t_prev, x.cpu()))
    model.train(was_training)
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(
            "sampling produced NaN or Inf: the network returns non-finite predictions (a "
            "diverged or damaged model?)"
        )
    out = to_unit(x) if as_images else x
    return (out, trajectory) if return_trajectory else out
