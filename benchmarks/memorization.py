"""Time ``memorization.max_correlation`` against a per-pair loop and the machine's matmul rate.

The search over N generated × M training images of D pixels costs about 2·N·M·D floating-point
operations (one matrix product of standardised rows). This script measures

* the chunked search itself (seconds, GFLOP/s),
* a direct per-pair loop (``np.corrcoef`` on one pair at a time) on a subsample, extrapolated to
  all N·M pairs, and the speed-up of the chunked search over it,
* the machine's matrix-multiplication rate (best of square and chunk-shaped ``torch.mm``) and the
  fraction of it that the search reaches.

Usage::

    python benchmarks/memorization.py            # quick: 500 × 5 000 images of 64×64
    python benchmarks/memorization.py --full     # the issue's size: 2 000 × 20 000 of 64×64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from helpers import memorization


def best_time(fn, repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device: torch.device, shapes: list[tuple[int, int, int]], repeats: int) -> float:
    """Best GFLOP/s of float32 ``(m, k) @ (k, n)`` products over ``shapes``."""
    best = 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)

        def run(a=a, b=b):
            torch.mm(a, b)
            sync(device)

        best = max(best, 2 * m * k * n / best_time(run, repeats) / 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full", action="store_true", help="2 000 generated × 20 000 training images"
    )
    parser.add_argument("--generated", type=int, default=None, help="number of generated images")
    parser.add_argument("--training", type=int, default=None, help="number of training images")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=1024, help="chunk size of the search")
    parser.add_argument("--pairs", type=int, default=4000, help="pairs timed in the per-pair loop")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions (best counts)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    args = parser.parse_args()

    n = args.generated or (2000 if args.full else 500)
    m = args.training or (20000 if args.full else 5000)
    repeats = args.repeats or (1 if args.full else 3)
    d = args.size * args.size
    device = torch.device(args.device)
    rng = torch.Generator().manual_seed(0)
    generated = torch.rand(n, 1, args.size, args.size, generator=rng)
    training = torch.rand(m, 1, args.size, args.size, generator=rng)
    flops = 2.0 * n * m * d
    print(
        f"max_correlation: {n} generated × {m} training images of {args.size}×{args.size} (D={d})"
    )
    print(f"device={device} torch threads={torch.get_num_threads()} batch_size={args.batch_size}")

    def search():
        memorization.max_correlation(generated, training, batch_size=args.batch_size, device=device)
        sync(device)

    t_search = best_time(search, repeats)
    result = memorization.max_correlation(
        generated, training, batch_size=args.batch_size, device=device
    )

    # baseline 1: a direct per-pair loop on a subsample, extrapolated to all pairs
    g_np = generated.flatten(1).double().numpy()
    t_np = training.flatten(1).double().numpy()
    n_gen = max(1, min(n, args.pairs // m or 1))
    n_train = min(m, max(1, args.pairs // n_gen))
    start = time.perf_counter()
    direct = np.array(
        [[np.corrcoef(g_np[i], t_np[j])[0, 1] for j in range(n_train)] for i in range(n_gen)]
    )
    t_pairs = time.perf_counter() - start
    per_pair = t_pairs / (n_gen * n_train)
    t_loop = per_pair * n * m
    sub = memorization.max_correlation(generated[:n_gen], training[:n_train])
    agree = np.allclose(sub.values.numpy(), direct.max(1), atol=1e-5) and np.array_equal(
        sub.indices.numpy(), direct.argmax(1)
    )

    # baseline 2: the machine's matrix-multiplication rate
    b = args.batch_size
    peak = matmul_rate(device, [(2048, 2048, 2048), (min(b, n), d, min(b, m))], max(repeats, 2))
    rate = flops / t_search / 1e9

    print(f"chunked search        : {t_search:9.3f} s   {rate:8.1f} GFLOP/s")
    print(
        f"per-pair loop         : {per_pair * 1e6:9.1f} µs/pair on {n_gen}×{n_train} pairs → "
        f"{t_loop:9.1f} s extrapolated to {n}×{m}"
    )
    print(
        f"speed-up over loop    : {t_loop / t_search:9.0f}×   (values and indices agree: {agree})"
    )
    print(f"measured matmul peak  : {peak:9.1f} GFLOP/s (float32 torch.mm)")
    print(f"fraction of peak      : {rate / peak:9.2f}")
    print(f"mean max correlation  : {float(result.values.mean()):.4f} (random images: close to 0)")


if __name__ == "__main__":
    main()
