"""Benchmark: dense (explicit) vs fused SDPA vs three dilated-attention settings across N.

For each N the methods run in alternation, the order rotating, 4 samples each at least
(``helpers.benchmark.interleaved``: samples taken while other processes used the CPU are dropped,
or flagged when all were). Prints min and median time of each method, the ratios against dense
attention (of the min times), how many samples were contended, the load, and the fitted log–log
exponent of each method (from the min times) with a bootstrap interval over all repeats.

    python benchmarks/attention.py            # N = 2048 … 8192 (about a minute on 2 CPU cores)
    python benchmarks/attention.py --quick    # N = 256 … 1024 (seconds)
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch

from helpers import attention_cost, benchmark, runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small token counts (smoke preset)")
    parser.add_argument(
        "--tokens", type=int, nargs="+", help="token counts to measure, e.g. 1024 2048 4096"
    )
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    args = parser.parse_args()
    print(f"threads: {runtime.configure_threads().describe()}")  # COURSE_NUM_THREADS fixes it

    overrides = {}
    if args.tokens:
        overrides["token_counts"] = tuple(sorted(args.tokens))
    if args.heads:
        overrides["heads"] = args.heads
    if args.repeats:
        overrides["repeats"] = args.repeats
    cfg = attention_cost.AttentionCostConfig.preset(
        "smoke" if args.quick else "laptop", **overrides
    )
    device = runtime.detect_device(args.device)
    repeats = max(4, cfg.repeats) if not args.repeats else args.repeats
    print(
        f"device={device} threads={torch.get_num_threads()} heads={cfg.heads} d={cfg.head_dim} "
        f"segments={cfg.segment_lengths} rates={cfg.dilation_rates} {repeats} interleaved repeats"
    )
    generator = torch.Generator().manual_seed(0)
    seconds: dict[str, list[float]] = {m: [] for m in cfg.methods}
    every: dict[str, list[list[float]]] = {m: [] for m in cfg.methods}  # all repeats, per N
    print(
        f"{'N':>7} "
        + " ".join(f"{m + ' ms (min/med)':>22}" for m in cfg.methods)
        + " "
        + " ".join(f"{'dense/' + m:>14}" for m in cfg.methods if m != "dense")
        + "  contended"
    )
    for n in cfg.token_counts:
        q, k, v = (
            torch.randn(1, cfg.heads, n, cfg.head_dim, generator=generator).to(device)
            for _ in range(3)
        )
        fns = {m: partial(attention_cost.METHODS[m], q, k, v, cfg) for m in cfg.methods}
        with torch.no_grad():
            c = benchmark.interleaved(fns, repeats=repeats, warmup=cfg.warmup, device=device)
        for m in cfg.methods:
            seconds[m].append(c.min(m))
            every[m].append([s.seconds for s in c.samples[m]])
        cells = " ".join(
            f"{1e3 * c.min(m):>10.2f} /{1e3 * c.median(m):>10.2f}" for m in cfg.methods
        )
        ratios = " ".join(
            f"{c.min('dense') / c.min(m):>14.2f}" for m in cfg.methods if m != "dense"
        )
        bad = sum(bool(x.contended) for s in c.samples.values() for x in s)
        total = sum(len(s) for s in c.samples.values())
        print(f"{n:>7} {cells} {ratios}  {bad}/{total}")
    print(f"load: {c.load()} (last N)")
    for name in cfg.methods:
        fit = attention_cost.fit_exponent_interval(
            np.asarray(cfg.token_counts), np.asarray(every[name])
        )
        print(
            f"exponent {name:>8}: {fit.slope:.2f} [{fit.interval[0]:.2f}, {fit.interval[1]:.2f}] "
            "(min times; bootstrap over the repeats)"
        )


if __name__ == "__main__":
    main()
