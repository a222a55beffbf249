"""Time the overlapping-window large-image sampler against naive tiling and a per-window loop.

Three ways to sample the same grid of embeddings with the same network and DDIM steps:

- ``overlap, batched``: windows at half-patch stride, all windows of a step in one batch
  (``helpers.large_image.sample_large``, the default);
- ``overlap, per-window loop``: the same windows, one model call per window (``window_batch=1``);
- ``naive tiling``: disjoint windows (stride = patch), batched — the baseline that leaves seams.

The three run in alternation, the order rotating, 4 samples each by default
(``helpers.benchmark.interleaved``: contended samples dropped, or flagged when all were). Prints
min and median seconds per image, the ratios at both and the load. ``--quick`` keeps it well under two minutes on a CPU.

Usage::

    python benchmarks/large_image.py [--quick] [--grid 4] [--patch 32] [--steps 10]
"""

from __future__ import annotations

import argparse

import torch

from helpers import benchmark, diffusion, large_image, runtime, unet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid and few steps")
    parser.add_argument("--grid", type=int, default=4, help="grid side in patches")
    parser.add_argument("--patch", type=int, default=32, help="patch (window) side in pixels")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved samples per variant")
    args = parser.parse_args()
    print(f"threads: {runtime.configure_threads().describe()}")  # COURSE_NUM_THREADS fixes it
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
    c = benchmark.interleaved(
        {
            "overlap, batched": lambda: run(half, 256),
            "overlap, per-window loop": lambda: run(half, 1),
            "naive tiling, batched": lambda: run(args.patch, 256),
        },
        repeats=args.repeats,
        device=device,
    )
    side = args.grid * args.patch
    print(
        f"device {device}, threads {torch.get_num_threads()}, {side}x{side} image, "
        f"{args.steps} DDIM steps, guidance on"
    )
    print(f"load: {c.load()}")
    windows = {"overlap, batched": n_overlap, "overlap, per-window loop": n_overlap}
    for name in c.samples:
        print(f"{name:25s} ({windows.get(name, args.grid**2):3d} windows): {c.line(name)}")
    r_min, r_med = c.ratio("overlap, per-window loop", "overlap, batched")
    print(
        f"ratio per-window loop / batched: {r_min:.2f}x at min, {r_med:.2f}x at median "
        "(speed-up of batching)"
    )
    cpu = c.cpu_ratio("overlap, per-window loop", "overlap, batched")
    print(f"  (in CPU time: {cpu:.2f}x)")
    r_min, r_med = c.ratio("overlap, batched", "naive tiling, batched")
    print(
        f"ratio overlap / naive tiling:    {r_min:.2f}x at min, {r_med:.2f}x at median "
        "(price of seamless assembly)"
    )


if __name__ == "__main__":
    main()
