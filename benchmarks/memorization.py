"""Time ``memorization.max_correlation`` against a per-pair loop and the machine's matmul limit.

The search over N generated × M training images of D pixels costs about 2·N·M·D floating-point
operations (one matrix product of standardised rows). This script measures, with the variants
interleaved and repeated (``helpers.benchmark.interleaved``: contended samples dropped, the load
printed):

* the kit's search (block products in float32, float64 re-scoring of near-ties) and a bare
  float32 product of the same standardised rows without any bookkeeping (what a search that
  gives up exactness costs),
* the float32 matrix-product rate of every backend at hand (torch's BLAS, oneDNN, NumPy's BLAS,
  best of a square and the search's block shape) and the fraction of the *best* of them that
  the search reaches,
* a direct per-pair loop (``np.corrcoef`` on one pair at a time) on a subsample, extrapolated to
  all N·M pairs, and the speed-up of the search over it.

Usage::

    python benchmarks/memorization.py            # quick: 500 × 5 000 images of 64×64
    python benchmarks/memorization.py --full     # 2 000 × 20 000 images of 64×64
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from helpers import benchmark, memorization, nearest_neighbours, runtime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full", action="store_true", help="2 000 generated × 20 000 training images"
    )
    parser.add_argument("--quick", action="store_true", help="the default sizes (500 × 5 000)")
    parser.add_argument("--generated", type=int, default=None, help="number of generated images")
    parser.add_argument("--training", type=int, default=None, help="number of training images")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=None, help="chunk size of the search")
    parser.add_argument("--pairs", type=int, default=4000, help="pairs timed in the per-pair loop")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved samples per variant")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    args = parser.parse_args()
    print(f"threads: {runtime.configure_threads().describe()}")  # COURSE_NUM_THREADS fixes it

    n = args.generated or (2000 if args.full else 500)
    m = args.training or (20000 if args.full else 5000)
    d = args.size * args.size
    device = torch.device(args.device)
    rng = torch.Generator().manual_seed(0)
    generated = torch.rand(n, 1, args.size, args.size, generator=rng)
    training = torch.rand(m, 1, args.size, args.size, generator=rng)
    batch = args.batch_size or 1024
    flops = 2.0 * n * m * d
    print(
        f"max_correlation: {n} generated × {m} training images of {args.size}×{args.size} (D={d})"
    )
    print(f"device={device} torch threads={torch.get_num_threads()} batch_size={batch}")

    def search():
        memorization.max_correlation(generated, training, batch_size=batch, device=device)

    g_rows = nearest_neighbours.standardize(generated.flatten(1).to(device))
    t_rows = nearest_neighbours.standardize(training.flatten(1).to(device))

    def bare():  # the same block products, no candidates, no re-scoring
        for s in range(0, m, batch):
            torch.mm(g_rows, t_rows[s : s + batch].T).amax(dim=1)

    c = benchmark.interleaved(
        {"search": search, "bare products": bare}, repeats=args.repeats, device=device
    )
    rates = benchmark.gemm_rates(
        [(1024, 1024, 1024), (min(batch, n), d, min(batch, m))],
        device=device,
        repeats=args.repeats,
    )
    best_backend = max(rates, key=rates.get)
    peak = rates[best_backend]
    cpu_rates = benchmark.gemm_rates(
        [(1024, 1024, 1024), (min(batch, n), d, min(batch, m))],
        device=device,
        repeats=args.repeats,
        clock="cpu",
    )

    # baseline: a direct per-pair loop on a subsample, extrapolated to all pairs
    g_np = generated.flatten(1).double().numpy()
    t_np = training.flatten(1).double().numpy()
    n_gen = max(1, min(n, args.pairs // m or 1))
    n_train = min(m, max(1, args.pairs // n_gen))
    start = time.perf_counter()
    direct = np.array(
        [[np.corrcoef(g_np[i], t_np[j])[0, 1] for j in range(n_train)] for i in range(n_gen)]
    )
    per_pair = (time.perf_counter() - start) / (n_gen * n_train)
    t_loop = per_pair * n * m
    sub = memorization.max_correlation(generated[:n_gen], training[:n_train])
    agree = np.allclose(sub.values.numpy(), direct.max(1), atol=1e-5) and np.array_equal(
        sub.indices.numpy(), direct.argmax(1)
    )

    gflops = lambda t: flops / t / 1e9  # noqa: E731
    print(f"load: {c.load()}")
    for name in c.samples:
        print(f"{name:15s}: {c.line(name)}")
        print(
            f"{'':15s}  {gflops(c.min(name)):7.1f} GFLOP/s at min, "
            f"{gflops(c.median(name)):7.1f} at median"
        )
    print(
        "matmul rates (float32, GFLOP/s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(rates.items(), key=lambda kv: -kv[1]))
    )
    frac_min, frac_med = gflops(c.min("search")) / peak, gflops(c.median("search")) / peak
    print(
        f"fraction of peak      : {frac_min:.2f} at min, {frac_med:.2f} at median "
        f"(of {best_backend}, {peak:.1f} GFLOP/s)"
        + (
            "  [contended: wall-time rates are not the machine's; read the CPU-time line]"
            if c.all_contended()
            else ""
        )
    )
    if device.type == "cpu" and cpu_rates:
        # the same fraction in CPU time: what a core reaches while it runs, steadier on a busy
        # machine (both the search and the products are timed on this process's CPU clock)
        cpu_best = max(cpu_rates, key=cpu_rates.get)
        frac_cpu = gflops(c.cpu_median("search")) / cpu_rates[cpu_best]
        print(
            f"fraction of peak, CPU time: {frac_cpu:.2f} (search "
            f"{gflops(c.cpu_median('search')):.1f} GFLOP/s per CPU-second; {cpu_best} "
            f"{cpu_rates[cpu_best]:.1f}; "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu_rates.items(), key=lambda kv: -kv[1]))
            + ")"
        )
    r_min, r_med = c.ratio("search", "bare products")
    print(
        f"ratio search / bare   : {r_min:.3f} at min, {r_med:.3f} at median, "
        f"{c.cpu_ratio('search', 'bare products'):.3f} in CPU time"
    )
    print(
        f"per-pair loop         : {per_pair * 1e6:9.1f} µs/pair on {n_gen}×{n_train} pairs → "
        f"{t_loop:9.1f} s extrapolated to {n}×{m}"
    )
    print(
        f"speed-up over loop    : {t_loop / c.min('search'):9.0f}×   "
        f"(values and indices agree: {agree})"
    )
    if c.all_contended():
        print("WARNING: every sample of a variant was taken under contention")


if __name__ == "__main__":
    main()
