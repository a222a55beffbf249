"""Measuring what attention costs: time and memory against the number of tokens.

Dense attention is ``O(N²·d)`` in time and stores an ``N × N`` matrix per head; dilated attention
with fixed branches is ``O(N·d)``. On a log–log plot the slope of time against ``N`` is the
exponent: about 2 for dense attention once ``N`` is large enough for the arithmetic to dominate,
about 1 for dilated attention once ``N`` exceeds its longest segment.

Timings keep the fastest of several repeats after a warm-up: other processes on a shared machine
only ever add time, so the minimum is the estimate they disturb least. Peak
memory is measured with ``torch.cuda.max_memory_allocated`` on CUDA; on other devices it is the
analytic size of the score tensors the method materialises (labelled as such).

Examples
--------
>>> import numpy as np
>>> from helpers import attention_cost
>>> round(attention_cost.fit_exponent([1, 2, 4], [3.0, 12.0, 48.0]), 6)
2.0
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from . import attention
from .runtime import Presets

logger = logging.getLogger(__name__)


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
        Branches of the dilated attention (LongNet-style geometric growth).
    repeats, warmup : int
        Timed runs (the fastest is kept) and untimed runs before them.
    """

    token_counts: tuple[int, ...] = (2048, 3072, 4096, 6144, 8192)
    heads: int = 2
    head_dim: int = 64
    segment_lengths: tuple[int, ...] = (128, 256, 512, 1024)
    dilation_rates: tuple[int, ...] = (1, 2, 4, 8)
    repeats: int = 7
    warmup: int = 1
    methods: tuple[str, ...] = field(default=("dense", "sdpa", "dilated"))

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
                repeats=2,
            ),
            "laptop": cls(),
            "gpu": cls(
                token_counts=(2048, 4096, 8192, 16384, 32768), heads=8, repeats=10, warmup=3
            ),
        }


def _dense(q, k, v, cfg):
    return attention.attention(q, k, v)


def _sdpa(q, k, v, cfg):
    return attention.sdpa(q, k, v)


def _dilated(q, k, v, cfg):
    return attention.dilated_attention(q, k, v, cfg.segment_lengths, cfg.dilation_rates)


METHODS: dict[str, Callable] = {"dense": _dense, "sdpa": _sdpa, "dilated": _dilated}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def best_time(
    fn: Callable[[], object],
    *,
    repeats: int = 7,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> float:
    """Shortest wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
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
    return min(times)


def analytic_bytes(method: str, n: int, cfg: AttentionCostConfig) -> int:
    """Bytes of the score tensors ``method`` materialises (0 for the fused kernel)."""
    if method == "dense":
        return attention.score_bytes(n, heads=cfg.heads)
    if method == "dilated":
        return attention.dilated_score_bytes(
            n, cfg.segment_lengths, cfg.dilation_rates, heads=cfg.heads
        )
    return 0


def _fits(method: str, n: int, cfg: AttentionCostConfig, device: torch.device) -> bool:
    """Whether ``method`` at ``N = n`` fits in the free memory of a CUDA device (always on CPU).

    The explicit path holds the scores and the softmax weights at once: twice the analytic size.
    """
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return 2 * analytic_bytes(method, n, cfg) < 0.8 * free


def measure(
    cfg: AttentionCostConfig,
    *,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Time each method for each ``N`` and record its memory.

    Parameters
    ----------
    cfg : AttentionCostConfig
    generator : torch.Generator
        Seeds the random q, k, v (CPU generator; tensors are moved to ``device``).
    device : torch.device or str
    progress : bool

    Returns
    -------
    dict
        ``{method: {"n": (K,), "seconds": (K,), "bytes": (K,)}}``; ``bytes`` is the measured peak
        (``torch.cuda.max_memory_allocated`` minus the inputs) on CUDA, else :func:`analytic_bytes`.
        On a GPU too small for the explicit path at some ``N``, that time is NaN (skipped).
    """
    device = torch.device(device)
    out = {m: {"n": [], "seconds": [], "bytes": []} for m in cfg.methods}
    for n in tqdm(cfg.token_counts, disable=not progress, desc="N"):
        q, k, v = (
            torch.randn(1, cfg.heads, n, cfg.head_dim, generator=generator).to(device)
            for _ in range(3)
        )
        for name in cfg.methods:
            fn = METHODS[name]
            if not _fits(name, n, cfg, device):
                logger.warning("%s attention at N=%d does not fit in GPU memory: skipped", name, n)
                out[name]["n"].append(n)
                out[name]["seconds"].append(float("nan"))
                out[name]["bytes"].append(analytic_bytes(name, n, cfg))
                continue
            with torch.no_grad():
                seconds = best_time(
                    lambda fn=fn, q=q, k=k, v=v: fn(q, k, v, cfg),
                    repeats=cfg.repeats,
                    warmup=cfg.warmup,
                    device=device,
                )
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    base = torch.cuda.memory_allocated(device)
                    fn(q, k, v, cfg)
                    used = torch.cuda.max_memory_allocated(device) - base
                else:
                    used = analytic_bytes(name, n, cfg)
            out[name]["n"].append(n)
            out[name]["seconds"].append(seconds)
            out[name]["bytes"].append(used)
        logger.info("N=%d: %s", n, {m: out[m]["seconds"][-1] for m in cfg.methods})
    return {m: {key: np.asarray(val) for key, val in d.items()} for m, d in out.items()}


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
