"""Measuring what attention costs: time and memory against the number of tokens.

Dense attention is ``O(N²·d)`` in time and stores an ``N × N`` matrix per head; dilated attention
costs ``Σ (N/w)·(w/r)²`` query–key pairs per head. Three dilated settings are measured:

* ``dilated_local`` — fixed branches whose segments stop at ``max(segment_lengths)`` (1024 in
  the ``laptop`` preset): linear in ``N``, but a token reaches only its neighbourhood;
* ``dilated_longnet`` — LongNet's geometric branches up to the whole sequence, ``w`` and ``r``
  growing by the same ratio (:func:`helpers.attention.longnet_branches`): still linear, and the
  longest branch spans the sequence;
* ``dilated_gigapath`` — Prov-GigaPath's setting, fixed for slides of up to 1024² tiles: five
  segments log-spaced from 1024 to 1,048,576 with rates 1 … 16
  (:func:`helpers.attention.gigapath_branches`). On a sequence shorter than a segment the segment
  is the whole sequence, so at laptop sizes three branches are global and sparse by only 4, 8
  and 16: the cost grows like ``N²/16`` there, and like ``N²/256`` at ``N`` = 10⁶.

On a log–log plot the slope of time against ``N`` is the exponent. **Timing is measured, never
asserted**: every repeat is kept (:class:`Timing`: minimum and quartiles), the exponent is fitted
to the minima with a bootstrap interval over the repeats (:func:`fit_exponent_interval`), and
:func:`timing_warning` says when the machine was too busy for the numbers to mean much. Memory is
measured on every device: ``torch.cuda.max_memory_allocated`` on CUDA, the allocation events of
``torch.profiler`` on the CPU (:func:`peak_cpu_bytes`); :func:`analytic_bytes` is the size of the
score tensors alone.

Examples
--------
>>> import numpy as np
>>> from helpers import attention_cost
>>> round(attention_cost.fit_exponent([1, 2, 4], [3.0, 12.0, 48.0]), 6)
2.0
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from . import attention
from .runtime import Presets

logger = logging.getLogger(__name__)

__all__ = [
    "METHODS",
    "AttentionCostConfig",
    "ExponentFit",
    "Timing",
    "analytic_bytes",
    "best_time",
    "branches",
    "fit_exponent",
    "fit_exponent_interval",
    "measure",
    "peak_cpu_bytes",
    "time_repeats",
    "timing_warning",
]


@dataclass(frozen=True)
class AttentionCostConfig(Presets):
    """What to measure, one preset per profile.

    Attributes
    ----------
    token_counts : tuple of int
        The ``N`` values (increasing).
    heads, head_dim : int
        ``H`` and ``d`` of the q, k, v tensors ``(1, H, N, d)``.
    segment_lengths, dilation_rates : tuple of int
        Branches of the local dilated setting (``dilated_local``).
    first_segment : int
        ``w₀`` of the LongNet setting (1024 in the paper).
    gigapath_max_tokens : int
        Longest sequence Prov-GigaPath's segments are set for (1024² tiles).
    repeats, warmup : int
        Timed runs (all kept) and untimed runs before them.
    methods : tuple of str
        Keys of :data:`METHODS` to measure.
    """

    token_counts: tuple[int, ...] = (2048, 3072, 4096, 6144, 8192)
    heads: int = 2
    head_dim: int = 64
    segment_lengths: tuple[int, ...] = (128, 256, 512, 1024)
    dilation_rates: tuple[int, ...] = (1, 2, 4, 8)
    first_segment: int = 1024
    gigapath_max_tokens: int = 1024**2
    repeats: int = 7
    warmup: int = 1
    methods: tuple[str, ...] = field(
        default=("dense", "sdpa", "dilated_local", "dilated_longnet", "dilated_gigapath")
    )

    def __post_init__(self) -> None:
        ns = list(self.token_counts)
        if len(ns) < 2 or any(n < 1 for n in ns) or ns != sorted(set(ns)):
            raise ValueError(
                f"token_counts must be ≥ 2 increasing positive ints, got {self.token_counts}"
            )
        if self.heads < 1 or self.head_dim < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError(
                f"heads, head_dim, repeats must be ≥ 1 and warmup ≥ 0, got heads={self.heads}, "
                f"head_dim={self.head_dim}, repeats={self.repeats}, warmup={self.warmup}"
            )
        attention.check_branches(self.segment_lengths, self.dilation_rates)
        if not 1 <= self.first_segment <= ns[0]:
            raise ValueError(
                f"first_segment must lie in 1 … {ns[0]} (the smallest N), got {self.first_segment}"
            )
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(
                f"unknown methods {sorted(unknown)}; expected some of {sorted(METHODS)}"
            )

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("repeats", "warmup")
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, AttentionCostConfig]:
        """``smoke`` (tiny, only proves it runs), ``laptop`` (N = 2048…8192, past the cache knee),
        ``gpu`` (N up to 32768); use ``AttentionCostConfig.preset(profile, **overrides)``."""
        return {
            "smoke": cls(
                token_counts=(256, 512, 1024),
                segment_lengths=(64, 128),
                dilation_rates=(1, 2),
                first_segment=128,
                repeats=3,
            ),
            "laptop": cls(),
            "gpu": cls(
                token_counts=(2048, 4096, 8192, 16384, 32768), heads=8, repeats=10, warmup=3
            ),
        }


def branches(method: str, n: int, cfg: AttentionCostConfig) -> list[tuple[int, int]]:
    """The ``(w, r)`` branches of a dilated ``method`` at ``N = n`` (empty for dense and sdpa)."""
    if method == "dilated_local":
        return attention.check_branches(cfg.segment_lengths, cfg.dilation_rates)
    if method == "dilated_longnet":
        return attention.longnet_branches(n, first_segment=cfg.first_segment)
    if method == "dilated_gigapath":
        return attention.gigapath_branches(cfg.gigapath_max_tokens)
    return []


def _dilated(method: str) -> Callable:
    def run(q, k, v, cfg):
        ws, rs = zip(*branches(method, q.shape[2], cfg), strict=True)
        return attention.dilated_attention(q, k, v, ws, rs)

    return run


METHODS: dict[str, Callable] = {
    "dense": lambda q, k, v, cfg: attention.attention(q, k, v),
    "sdpa": lambda q, k, v, cfg: attention.sdpa(q, k, v),
    "dilated_local": _dilated("dilated_local"),
    "dilated_longnet": _dilated("dilated_longnet"),
    "dilated_gigapath": _dilated("dilated_gigapath"),
}
"""The measured methods: ``method(q, k, v, cfg) → output``."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_repeats(
    fn: Callable[[], object],
    *,
    repeats: int = 7,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Wall times in seconds of ``repeats`` runs of ``fn()`` after ``warmup`` untimed runs."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def best_time(
    fn: Callable[[], object],
    *,
    repeats: int = 7,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> float:
    """Shortest wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    return float(time_repeats(fn, repeats=repeats, warmup=warmup, device=device).min())


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to the null device for a moment: the profiler's native library
    logs its start and stop there (not through Python), which would clutter notebook outputs."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_cpu_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated on the CPU while ``fn()`` runs, from ``torch.profiler``'s allocation
    events (allocations by each operator minus frees, accumulated in time order); the inputs,
    allocated before, are not counted. Operator granularity: a peak inside one operator that it
    frees before returning is not seen."""
    from torch.profiler import ProfilerActivity, profile

    with (
        _native_stderr_silenced(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return int(peak)


def analytic_bytes(method: str, n: int, cfg: AttentionCostConfig) -> int:
    """Bytes of the score tensors ``method`` materialises once (0 for the fused kernel). The
    explicit paths also hold the softmax weights at the same time: about twice this."""
    if method == "dense":
        return attention.score_bytes(n, heads=cfg.heads)
    if method.startswith("dilated"):
        ws, rs = zip(*branches(method, n, cfg), strict=True)
        return attention.dilated_score_bytes(n, ws, rs, heads=cfg.heads)
    return 0


def _fits(method: str, n: int, cfg: AttentionCostConfig, device: torch.device) -> bool:
    """Whether ``method`` at ``N = n`` fits in the free memory of a CUDA device (always on CPU).

    The explicit path holds the scores and the softmax weights at once: twice the analytic size.
    """
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return 2 * analytic_bytes(method, n, cfg) < 0.8 * free


@dataclass(frozen=True)
class Timing:
    """Every timed repeat of one method.

    Attributes
    ----------
    n : ndarray ``(K,)``
        Token counts.
    times : ndarray ``(K, R)``
        Seconds of each repeat (NaN rows: skipped, did not fit).
    bytes : ndarray ``(K,)``
        Peak memory of one call, measured (see :func:`measure`).
    """

    n: np.ndarray
    times: np.ndarray
    bytes: np.ndarray

    @property
    def seconds(self) -> np.ndarray:
        """Fastest repeat per ``N``: other programs only ever add time, so the minimum is the
        estimate they disturb least."""
        return self.times.min(axis=1)

    def quartiles(self) -> np.ndarray:
        """``(K, 3)``: first quartile, median and third quartile of the repeats per ``N``."""
        return np.quantile(self.times, [0.25, 0.5, 0.75], axis=1).T

    def spread(self) -> np.ndarray:
        """Interquartile range over the median per ``N``: 0 on an idle machine."""
        q1, med, q3 = self.quartiles().T
        return (q3 - q1) / med


def measure(
    cfg: AttentionCostConfig,
    *,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    memory: bool = True,
    progress: bool = True,
) -> dict[str, Timing]:
    """Time each method for each ``N`` (every repeat kept) and measure its peak memory.

    Parameters
    ----------
    cfg : AttentionCostConfig
    generator : torch.Generator
        Seeds the random q, k, v (CPU generator; tensors are moved to ``device``).
    device : torch.device or str
    memory : bool
        Measure the peak memory of one more call (CUDA: ``max_memory_allocated`` minus the
        inputs; CPU: :func:`peak_cpu_bytes`; elsewhere :func:`analytic_bytes`).
    progress : bool

    Returns
    -------
    dict
        ``{method: Timing}``. On a GPU too small for the explicit path at some ``N``, that row
        of times is NaN (skipped).
    """
    device = torch.device(device)
    times = {m: [] for m in cfg.methods}
    peaks = {m: [] for m in cfg.methods}
    for n in tqdm(cfg.token_counts, disable=not progress, desc="N"):
        q, k, v = (
            torch.randn(1, cfg.heads, n, cfg.head_dim, generator=generator).to(device)
            for _ in range(3)
        )
        for name in cfg.methods:
            fn = METHODS[name]
            if not _fits(name, n, cfg, device):
                logger.warning("%s attention at N=%d does not fit in GPU memory: skipped", name, n)
                times[name].append(np.full(cfg.repeats, np.nan))
                peaks[name].append(analytic_bytes(name, n, cfg))
                continue
            call = lambda fn=fn, q=q, k=k, v=v: fn(q, k, v, cfg)  # noqa: E731
            with torch.no_grad():
                times[name].append(
                    time_repeats(call, repeats=cfg.repeats, warmup=cfg.warmup, device=device)
                )
                if not memory:
                    used = 0
                elif device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                    call()
                    used = torch.cuda.max_memory_allocated(device) - base
                elif device.type == "cpu":
                    used = peak_cpu_bytes(call)
                else:
                    used = analytic_bytes(name, n, cfg)
            peaks[name].append(used)
        logger.info("N=%d: %s", n, {m: float(np.min(times[m][-1])) for m in cfg.methods})
    ns = np.asarray(cfg.token_counts)
    return {
        m: Timing(n=ns, times=np.stack(times[m]), bytes=np.asarray(peaks[m])) for m in cfg.methods
    }


def fit_exponent(n: Sequence[float], values: Sequence[float]) -> float:
    """Slope of ``log(values)`` against ``log(n)`` by least squares: ``values ≈ c·n^slope``.

    NaN values (sizes that were skipped) are left out of the fit.
    """
    n_arr, v_arr = np.asarray(n, dtype=float), np.asarray(values, dtype=float)
    if n_arr.shape == v_arr.shape:
        n_arr, v_arr = n_arr[~np.isnan(v_arr)], v_arr[~np.isnan(v_arr)]
    if n_arr.size < 2 or n_arr.shape != v_arr.shape or np.any(n_arr <= 0) or np.any(v_arr <= 0):
        raise ValueError(
            f"need ≥ 2 positive values to fit an exponent, got n={list(n)}, values={list(values)}"
        )
    return float(np.polyfit(np.log(n_arr), np.log(v_arr), 1)[0])


@dataclass(frozen=True)
class ExponentFit:
    """A fitted exponent and how sure it is.

    Attributes
    ----------
    slope : float
        Fitted to the fastest repeat of each ``N``.
    interval : (float, float)
        Bootstrap interval: the repeats of each ``N`` resampled with replacement, the minimum
        taken and the slope refitted, many times.
    """

    slope: float
    interval: tuple[float, float]

    @property
    def width(self) -> float:
        return self.interval[1] - self.interval[0]


def fit_exponent_interval(
    n: Sequence[float],
    times: np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> ExponentFit:
    """The exponent of the fastest repeats with a bootstrap interval over the repeats.

    Parameters
    ----------
    n : sequence of float ``(K,)``
    times : ndarray ``(K, R)``
        Every repeat (NaN rows are left out).
    level : float
        Coverage of the interval.
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seeds the resampling.

    Examples
    --------
    >>> n = np.array([1.0, 2.0, 4.0])
    >>> fit = fit_exponent_interval(n, np.stack([n**2, n**2 * 1.01]).T)
    >>> round(fit.slope, 3), fit.interval[0] <= fit.slope <= fit.interval[1]
    (2.0, True)
    """
    n_arr, t = np.asarray(n, dtype=float), np.asarray(times, dtype=float)
    if t.ndim != 2 or t.shape[0] != n_arr.size:
        raise ValueError(f"times must be (K, R) with K = {n_arr.size} sizes, got {t.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    rows = ~np.isnan(t).any(axis=1)
    n_arr, t = n_arr[rows], t[rows]
    slope = fit_exponent(n_arr, t.min(axis=1))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, t.shape[1], size=(n_boot, *t.shape))  # (B, K, R)
    mins = np.take_along_axis(t[None].repeat(n_boot, 0), picks, axis=2).min(axis=2)  # (B, K)
    x = np.log(n_arr) - np.log(n_arr).mean()
    slopes = (np.log(mins) - np.log(mins).mean(axis=1, keepdims=True)) @ x / (x @ x)
    lo, hi = np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])
    return ExponentFit(slope, (float(min(lo, slope)), float(max(hi, slope))))


def timing_warning(
    timings: Mapping[str, Timing],
    fits: Mapping[str, ExponentFit] | None = None,
    *,
    max_spread: float = 0.25,
    max_width: float = 0.4,
) -> str | None:
    """A warning when the machine was too noisy to conclude, else ``None``.

    Noisy means: at some ``N`` the repeats of a method varied by more than ``max_spread`` of
    their median (interquartile range), or an exponent's interval is wider than ``max_width``.

    Examples
    --------
    >>> quiet = Timing(np.array([1, 2]), np.array([[1.0, 1.01, 1.02], [4.0, 4.02, 4.01]]), np.zeros(2))
    >>> timing_warning({"dense": quiet}) is None
    True
    >>> busy = Timing(np.array([1, 2]), np.array([[1.0, 1.9, 3.0], [4.0, 4.02, 4.01]]), np.zeros(2))
    >>> timing_warning({"dense": busy})[:8]
    'WARNING:'
    """
    problems = []
    for name, t in timings.items():
        spread = np.nanmax(t.spread()) if np.isfinite(t.times).any() else 0.0
        if spread > max_spread:
            problems.append(f"{name} repeats varied by {spread:.0%} of their median")
    for name, f in (fits or {}).items():
        if f.width > max_width:
            problems.append(
                f"{name} exponent {f.slope:.2f} has a wide interval "
                f"[{f.interval[0]:.2f}, {f.interval[1]:.2f}]"
            )
    if not problems:
        return None
    return (
        "WARNING: the machine was too busy to conclude from these timings ("
        + "; ".join(problems)
        + "). Correctness does not depend on it; rerun this cell on an idle machine for "
        "trustworthy exponents."
    )
