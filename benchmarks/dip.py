"""Seconds per iteration of ``helpers.dip.fit`` against a plain PyTorch loop over the same network.

The plain loop does the same work per step (jitter of z, forward, MSE, backward, Adam step); ``fit``
adds the output average, the PSNR of raw and averaged outputs, the best-output bookkeeping and the
history. Runs alternate (plain, fit, plain, fit, …) so both see the same machine load; the median
of the repeats is reported.

Usage::

    python benchmarks/dip.py --quick          # smoke network, 64×64, < 1 min on a 2-core CPU
    python benchmarks/dip.py                  # laptop network, 128×128
    python benchmarks/dip.py --preset gpu     # the paper's network at 512×512 (use a GPU)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from helpers import dip, runtime


def plain_loop(net, z, target, iterations, *, lr, reg_noise_std, generator) -> float:
    """The textbook loop; returns seconds per iteration."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    sync(z.device)
    start = time.perf_counter()
    for _ in range(iterations):
        z_in = z + reg_noise_std * torch.randn(z.shape, generator=generator, device=z.device)
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(z_in), target)
        loss.backward()
        optimizer.step()
    sync(z.device)
    return (time.perf_counter() - start) / iterations


def helper_loop(net, z, target, clean, iterations, *, lr, reg_noise_std) -> float:
    sync(z.device)
    start = time.perf_counter()
    dip.fit(
        net,
        z,
        target,
        clean=clean,
        iterations=iterations,
        lr=lr,
        reg_noise_std=reg_noise_std,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    sync(z.device)
    return (time.perf_counter() - start) / iterations


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke network, 64×64, few iterations")
    parser.add_argument("--preset", default=None, help="smoke | laptop | gpu (default: laptop)")
    parser.add_argument("--size", type=int, default=None, help="image side (default: the preset's)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: best available)")
    args = parser.parse_args()

    preset = args.preset or ("smoke" if args.quick else "laptop")
    cfg = dip.DIPConfig.preset(preset)
    size = args.size or (64 if args.quick else cfg.size)
    iterations = args.iterations or (30 if args.quick else 50)
    device = runtime.detect_device(args.device)
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 3, size, size, generator=g)
    target = (clean + 0.1 * torch.randn(clean.shape, generator=g)).to(device)
    clean = clean.to(device)
    z = dip.make_input(cfg.input_channels, (size, size), generator=g).to(device)
    net = dip.SkipNet.from_config(cfg, 3, seed=0).to(device)
    print(
        f"device={device} threads={torch.get_num_threads()} preset={preset} size={size} "
        f"params={dip.count_parameters(net)} iterations={iterations} repeats={args.repeats}"
    )

    kw = dict(lr=cfg.lr, reg_noise_std=cfg.reg_noise_denoise)
    plain_loop(
        net, z, target, 5, generator=torch.Generator(device=device).manual_seed(0), **kw
    )  # warm-up
    plain, helper = [], []
    for _ in range(args.repeats):
        gen = torch.Generator(device=device).manual_seed(0)
        plain.append(plain_loop(net, z, target, iterations, generator=gen, **kw))
        helper.append(helper_loop(net, z, target, clean, iterations, **kw))
    p, h = statistics.median(plain), statistics.median(helper)
    print(
        f"plain PyTorch loop : {p * 1e3:8.2f} ms/iteration  (repeats: {', '.join(f'{t * 1e3:.1f}' for t in plain)})"
    )
    print(
        f"helpers.dip.fit    : {h * 1e3:8.2f} ms/iteration  (repeats: {', '.join(f'{t * 1e3:.1f}' for t in helper)})"
    )
    print(f"ratio fit / plain  : {h / p:.3f}  (overhead {100 * (h / p - 1):+.1f} %)")


if __name__ == "__main__":
    main()
