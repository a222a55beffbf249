"""Time the overlapping-window large-image sampler against naive tiling and a per-window loop.

Three ways to sample the same grid of embeddings with the same network and DDIM steps:

- ``overlap, batched``: windows at half-patch stride, all windows of a step in one batch
  (``helpers.large_image.sample_large``, the default);
- ``overlap, per-window loop``: the same windows, one model call per window (``window_batch=1``);
- ``naive tiling``: disjoint windows (stride = patch), batched — the baseline that leaves seams.

Prints seconds per image and the ratios. ``--quick`` keeps it well under two minutes on a CPU.

Usage::

    python benchmarks/large_image.py [--quick] [--grid 4] [--patch 32] [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from helpers import diffusion, large_image, runtime, unet


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid and few steps")
    parser.add_argument("--grid", type=int, default=4, help="grid side in patches")
    parser.add_argument("--patch", type=int, default=32, help="patch (window) side in pixels")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.grid, args.patch, args.steps = 3, 16, 4
    device = runtime.detect_device()
    net = (
        unet.UNet(
            3,
            cond_dim=64,
            cond_mode="cross_attention",
            context_tokens=4,
            base_channels=16,
            channel_mults=(1, 2, 2),
            seed=0,
        )  # fmt: skip
        .to(device)
        .eval()
    )
    schedule = diffusion.Schedule.make("linear", T=1000)
    grid = torch.nn.functional.normalize(torch.randn(args.grid, args.grid, 64), dim=-1)
    run = lambda stride, batch: large_image.sample_large(  # noqa: E731
        net,
        grid,
        schedule=schedule,
        patch=args.patch,
        stride=stride,
        steps=args.steps,
        guidance=2.0,
        window_batch=batch,
    )
    half = args.patch // 2
    n_overlap = len(
        large_image.window_positions(
            args.grid * args.patch, args.grid * args.patch, window=args.patch, stride=half
        )
    )
    t_batched = _time(lambda: run(half, 256), args.repeats)
    t_loop = _time(lambda: run(half, 1), args.repeats)
    t_naive = _time(lambda: run(args.patch, 256), args.repeats)
    side = args.grid * args.patch
    print(
        f"device {device}, threads {torch.get_num_threads()}, {side}x{side} image, {args.steps} DDIM steps, guidance on"
    )
    print(f"overlap, batched          ({n_overlap:3d} windows): {t_batched:8.2f} s")
    print(f"overlap, per-window loop  ({n_overlap:3d} windows): {t_loop:8.2f} s")
    print(f"naive tiling, batched     ({args.grid**2:3d} windows): {t_naive:8.2f} s")
    print(f"ratio per-window loop / batched: {t_loop / t_batched:.2f}x (speed-up of batching)")
    print(
        f"ratio overlap / naive tiling:    {t_batched / t_naive:.2f}x (price of seamless assembly)"
    )


if __name__ == "__main__":
    main()
