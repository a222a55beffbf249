"""Noise schedules of diffusion models as pure functions, and the object holding every per-step quantity.

:func:`linear_betas` is the schedule of DDPM (Ho et al. 2020), :func:`cosine_betas` the one of
Nichol & Dhariwal (2021); :class:`Schedule` holds β, α, ᾱ, √ᾱ, √(1−ᾱ), the posterior variance β̃
and the posterior-mean weights. Also reachable as ``helpers.diffusion.Schedule`` etc.

References
----------
.. [1] J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
.. [2] A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021.

Examples
--------
>>> from helpers.schedules import Schedule
>>> s = Schedule.make("cosine", T=1000)
>>> round(float(s.alpha_bars[499]), 4)
0.4938
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

__all__ = ["Schedule", "cosine_betas", "linear_betas"]


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
