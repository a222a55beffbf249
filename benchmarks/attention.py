"""Benchmark: dense (explicit) vs fused SDPA vs dilated attention across the number of tokens.

Prints the median time of each method for each N, the ratios against dense attention measured
in the same run, and the fitted log–log exponent of each method.

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
        f"segments={cfg.segment_lengths} rates={cfg.dilation_rates} best of {cfg.repeats}"
    )
    res = attention_cost.measure(
        cfg, generator=torch.Generator().manual_seed(0), device=device, progress=False
    )
    dense = res["dense"]["seconds"]
    print(
        f"{'N':>7} {'dense ms':>10} {'sdpa ms':>10} {'dilated ms':>11} {'dense/sdpa':>11} {'dense/dilated':>14}"
    )
    for i, n in enumerate(cfg.token_counts):
        s, dl = res["sdpa"]["seconds"][i], res["dilated"]["seconds"][i]
        print(
            f"{n:>7} {1e3 * dense[i]:>10.2f} {1e3 * s:>10.2f} {1e3 * dl:>11.2f} {dense[i] / s:>11.2f} {dense[i] / dl:>14.2f}"
        )
    for name, d in res.items():
        print(f"exponent {name:>8}: {attention_cost.fit_exponent(d['n'], d['seconds']):.2f}")


if __name__ == "__main__":
    main()
