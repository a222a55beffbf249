"""Benchmark: dense (explicit) vs fused SDPA vs three dilated-attention settings across N.

Prints, for each method and N, the fastest repeat and the quartiles of all repeats, the ratio to
dense attention measured in the same run, and the fitted log–log exponent of each method with a
bootstrap interval over the repeats; warns when the machine was too busy to conclude.

    python benchmarks/attention.py            # N = 2048 … 8192 (about a minute on 2 CPU cores)
    python benchmarks/attention.py --quick    # N = 256 … 1024 (seconds)
"""

from __future__ import annotations

import argparse

import torch

from helpers import attention_cost, runtime


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
    print(
        f"device={device} threads={torch.get_num_threads()} heads={cfg.heads} d={cfg.head_dim} "
        f"local segments={cfg.segment_lengths} rates={cfg.dilation_rates}, {cfg.repeats} repeats"
    )
    res = attention_cost.measure(
        cfg, generator=torch.Generator().manual_seed(0), device=device, memory=False, progress=False
    )
    dense = res["dense"].seconds
    print(
        f"{'method':>17} {'N':>6} {'min ms':>9} {'q1 ms':>9} {'median':>9} {'q3 ms':>9} {'dense/method':>13}"
    )
    for name, t in res.items():
        for i, n in enumerate(t.n):
            q1, med, q3 = 1e3 * t.quartiles()[i]
            print(
                f"{name:>17} {n:>6} {1e3 * t.seconds[i]:>9.2f} {q1:>9.2f} {med:>9.2f} {q3:>9.2f} "
                f"{dense[i] / t.seconds[i]:>13.2f}"
            )
    fits = {m: attention_cost.fit_exponent_interval(t.n, t.times) for m, t in res.items()}
    for name, f in fits.items():
        print(f"exponent {name:>17}: {f.slope:.2f} [{f.interval[0]:.2f}, {f.interval[1]:.2f}]")
    warning = attention_cost.timing_warning(res, fits)
    if warning:
        print(warning)


if __name__ == "__main__":
    main()
