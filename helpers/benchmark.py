"""Timings that can be trusted on a shared machine: interleaved variants, load and contention.

A benchmark that times variant A and then variant B attributes any change of machine load in
between to the code. :func:`interleaved` instead runs the variants in alternation (the order
rotating from one round to the next), takes several repeats of each, and reads for every sample
how many cores *other* processes kept busy meanwhile (:func:`helpers.runtime.cpu_times`). A
sample during which other processes and this one's threads wanted more cores than there are is
*contended* (:func:`helpers.runtime.contended`): it measures the neighbours as much as the code.
Summaries (:class:`Comparison`) drop contended samples when clean ones remain, and say so; when
every sample was contended they keep them all and flag the result. Each sample also records the
CPU time this process used (:meth:`Comparison.cpu_ratio`), which waiting for a busy core does not
inflate: the steadier comparison when the machine is never quiet.

:func:`gemm_rates` measures the float32 matrix-product rate of every backend at hand (torch's
BLAS, oneDNN, NumPy's BLAS): the machine's limit that a product-bound search is compared with.

Examples
--------
>>> import torch
>>> c = interleaved({"sum": lambda: torch.ones(100).sum(), "mean": lambda: torch.ones(100).mean()},
...                 repeats=4)
>>> sorted(c.samples), len(c.samples["sum"])
(['mean', 'sum'], 4)
>>> c.min("sum") <= c.median("sum")
True
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import runtime


@dataclass(frozen=True)
class Sample:
    """One timed call.

    Attributes
    ----------
    seconds : float
        Wall time of the call (after a device sync).
    others : float or None
        Mean cores other processes kept busy during the call (``None``: the platform does not say).
    contended : bool or None
        Whether those cores and this process's threads added up to more than the machine has.
    cpu : float or None
        CPU-seconds this process used during the call (all threads). Waiting for a core does not
        count, so under contention it is the steadier measure of work (not of speed: cache and
        memory-bandwidth sharing still slow it somewhat); ``None`` when not read.
    """

    seconds: float
    others: float | None
    contended: bool | None
    cpu: float | None = None


@dataclass(frozen=True)
class Comparison:
    """Samples of several variants taken in alternation, and the machine's load around them.

    Attributes
    ----------
    samples : dict
        Variant name → its :class:`Sample` s, in the order taken.
    threads, cores : int
        PyTorch's thread count and the cores this process may use.
    load_start, load_end : tuple of float or None
        1-, 5-, 15-minute load averages before the first and after the last sample.
    """

    samples: dict[str, list[Sample]]
    threads: int
    cores: int
    load_start: tuple[float, float, float] | None = None
    load_end: tuple[float, float, float] | None = None
    scale: dict[str, float] = field(default_factory=dict)

    def kept(self, name: str) -> list[float]:
        """Seconds of ``name``'s clean samples (all samples when none is clean), scaled."""
        s = self.samples[name]
        clean = [x.seconds for x in s if not x.contended]
        return [t * self.scale.get(name, 1.0) for t in (clean or [x.seconds for x in s])]

    def dropped(self, name: str) -> int:
        """How many of ``name``'s samples were contended and left out (0 when all were)."""
        n = sum(bool(x.contended) for x in self.samples[name])
        return 0 if n == len(self.samples[name]) else n

    def all_contended(self) -> bool:
        """Whether every sample of some variant was contended (its numbers are then slow)."""
        return any(all(x.contended for x in s) for s in self.samples.values())

    def min(self, name: str) -> float:
        """Shortest kept time of ``name``."""
        return min(self.kept(name))

    def median(self, name: str) -> float:
        """Median kept time of ``name``."""
        return statistics.median(self.kept(name))

    def ratio(self, a: str, b: str) -> tuple[float, float]:
        """``(min a / min b, median a / median b)``."""
        return self.min(a) / self.min(b), self.median(a) / self.median(b)

    def cpu_median(self, name: str) -> float | None:
        """Median CPU-seconds of *all* of ``name``'s samples, scaled (``None`` if not read)."""
        cpu = [x.cpu for x in self.samples[name] if x.cpu is not None]
        return statistics.median(cpu) * self.scale.get(name, 1.0) if cpu else None

    def cpu_ratio(self, a: str, b: str) -> float | None:
        """Median CPU time of ``a`` over that of ``b``: a comparison that contention distorts
        less than wall time (every sample counts)."""
        ca, cb = self.cpu_median(a), self.cpu_median(b)
        return ca / cb if ca is not None and cb else None

    def load(self) -> str:
        """The load around the samples, e.g. ``"load 0.4 → 1.2, other processes 0.1–1.9 cores,
        3 of 8 samples contended"``."""
        fmt = lambda x: "?" if x is None else f"{x[0]:.1f}"  # noqa: E731
        others = [x.others for s in self.samples.values() for x in s if x.others is not None]
        n = sum(len(s) for s in self.samples.values())
        bad = sum(bool(x.contended) for s in self.samples.values() for x in s)
        busy = f"{min(others):.1f}–{max(others):.1f}" if others else "?"
        return (
            f"threads {self.threads} of {self.cores} cores, load {fmt(self.load_start)} → "
            f"{fmt(self.load_end)}, other processes {busy} cores, {bad} of {n} samples contended"
        )

    def line(self, name: str, unit: str = "s", factor: float = 1.0) -> str:
        """``name``: min and median of the kept samples, and how many were dropped."""
        kept = self.kept(name)
        note = f", {self.dropped(name)} contended dropped" if self.dropped(name) else ""
        if all(x.contended for x in self.samples[name]):
            note = ", ALL contended: slower than the machine"
        cpu = self.cpu_median(name)
        cpu_note = f", CPU median {cpu * factor:.4g}" if cpu is not None else ""
        return (
            f"min {min(kept) * factor:9.4g} {unit}  median {statistics.median(kept) * factor:9.4g} "
            f"{unit}  ({len(kept)} samples{note}{cpu_note})"
        )


def sync(device: torch.device | str | None) -> None:
    """Wait for queued device work (CUDA, MPS) so that wall times include it."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device is not None and device.type == "mps":
        torch.mps.synchronize()


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 4,
    warmup: int = 1,
    device: torch.device | str | None = None,
    scale: Mapping[str, float] | None = None,
) -> Comparison:
    """Time each variant ``repeats`` times, in alternation, recording contention per sample.

    Round ``r`` runs the variants in the order rotated by ``r`` (A B C, B C A, C A B, …), so
    that neither a fixed order nor a change of load favours one of them.

    Parameters
    ----------
    variants : mapping of str to callable
        The compared calls (no arguments; return value ignored).
    repeats : int
        Samples per variant (≥ 1; 4 or more for a trustworthy median).
    warmup : int
        Untimed calls of each variant first (allocator, kernel selection, caches).
    device : torch.device, optional
        Synchronised before and after each sample (CUDA, MPS).
    scale : mapping of str to float, optional
        Factor applied to a variant's seconds in summaries (e.g. ``1 / iterations``).

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        No variants, or ``repeats < 1`` or ``warmup < 0``.
    """
    if not variants:
        raise ValueError("variants must name at least one callable, got none")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    sync(device)
    threads, cores = torch.get_num_threads(), runtime.cpu_cores()[0]
    load_start = runtime.load_average()
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            sync(device)
            start = runtime.cpu_times()
            variants[name]()
            sync(device)
            end = runtime.cpu_times()
            others = runtime.others_between(start, end)
            if others is not None:  # busy time is counted in clock ticks: short samples overshoot
                others = min(others, float(cores))
            flag = runtime.contended(others, cores, threads)
            samples[name].append(Sample(end.wall - start.wall, others, flag, end.own - start.own))
    return Comparison(
        samples, threads, cores, load_start, runtime.load_average(), dict(scale or {})
    )


def gemm_rates(
    shapes: Sequence[tuple[int, int, int]],
    *,
    device: torch.device | str = "cpu",
    repeats: int = 4,
    clock: str = "wall",
) -> dict[str, float]:
    """Best float32 GFLOP/s of ``(m, k) @ (k, n)`` over ``shapes``, per backend at hand.

    ``clock="wall"`` divides by the shortest kept wall time; ``clock="cpu"`` by the median CPU
    time of this process (per core busy: with one thread, the rate a core reaches while it runs,
    which waiting for a busy machine does not lower).

    Backends: ``torch.mm`` (the BLAS torch was built with, or the device's library), and on the
    CPU oneDNN (``mkldnn_linear``, where torch has it) and NumPy's BLAS. The best of them is the
    machine's measured limit for a product-bound computation.

    Returns
    -------
    dict
        Backend name → GFLOP/s (best sample over shapes and repeats).
    """
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    device = torch.device(device)
    rates: dict[str, float] = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
        variants: dict[str, Callable[[], object]] = {"torch.mm": lambda a=a, b=b: torch.mm(a, b)}
        if device.type == "cpu":
            an, bn = a.numpy(), b.numpy()
            variants["numpy"] = lambda an=an, bn=bn: np.matmul(an, bn)
            if torch.backends.mkldnn.is_available():
                am, wm = a.to_mkldnn(), b.T.contiguous().to_mkldnn()
                variants["oneDNN"] = lambda am=am, wm=wm: torch._C._nn.mkldnn_linear(am, wm, None)
        c = interleaved(variants, repeats=repeats, device=device)
        for name in variants:
            seconds = c.min(name) if clock == "wall" else c.cpu_median(name)
            if not seconds:
                continue
            rate = 2 * m * k * n / seconds / 1e9
            rates[name] = max(rates.get(name, 0.0), rate)
    return rates
