"""Seconds per iteration of ``helpers.dip.fit`` against a plain PyTorch loop over the same network.

The plain loop does the same work per step (jitter of z, forward, MSE, backward, Adam step); ``fit``
adds the output average, the PSNR of raw and averaged outputs, the best-output bookkeeping and the
history. Each is also timed with the network, its input and target in channels_last memory format
(converted here). The four variants run in alternation, the order rotating
(``helpers.benchmark.interleaved``), 4 samples each by default; samples taken while other
processes used the CPU are dropped (or, when all were, flagged). Min and median ms/iteration,
the ratios and the load are printed.

Usage::

    python benchmarks/dip.py --quick          # smoke network, 64×64, < 1 min on a 2-core CPU
    python benchmarks/dip.py                  # laptop network, 128×128
    python benchmarks/dip.py --preset gpu     # the paper's network at 512×512 (use a GPU)
"""

from __future__ import annotations

import argparse
import copy
import inspect
from functools import partial

import torch

from helpers import benchmark, dip, runtime


def plain_loop(net, z, target, iterations, *, lr, reg_noise_std, generator) -> None:
    """The textbook loop: jitter of z, forward, MSE, backward, Adam step."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(iterations):
        z_in = z + reg_noise_std * torch.randn(z.shape, generator=generator, device=z.device)
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(z_in), target)
        loss.backward()
        optimizer.step()


def helper_loop(net, z, target, clean, iterations, *, lr, reg_noise_std, channels_last) -> None:
    # where fit chooses the memory format itself, it is told the one this variant times
    fmt = {}
    if "channels_last" in inspect.signature(dip.fit).parameters:
        fmt["channels_last"] = channels_last
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
        **fmt,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke network, 64×64, few iterations")
    parser.add_argument("--preset", default=None, help="smoke | laptop | gpu (default: laptop)")
    parser.add_argument("--size", type=int, default=None, help="image side (default: the preset's)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per repeat")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved samples per variant")
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: best available)")
    args = parser.parse_args()
    print(f"threads: {runtime.configure_threads().describe()}")  # COURSE_NUM_THREADS fixes it

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
    last = torch.channels_last
    variants = {}
    for fmt_name, fmt in (("", torch.contiguous_format), (", channels_last", last)):
        # each variant fits its own copy of the network, in its memory format
        n_plain = copy.deepcopy(net).to(memory_format=fmt)
        n_fit = copy.deepcopy(net).to(memory_format=fmt)
        z_f, t_f, c_f = (x.contiguous(memory_format=fmt) for x in (z, target, clean))
        variants[f"plain loop{fmt_name}"] = partial(
            plain_loop,
            n_plain,
            z_f,
            t_f,
            iterations,
            generator=torch.Generator(device=device).manual_seed(0),
            **kw,
        )
        variants[f"dip.fit{fmt_name}"] = partial(
            helper_loop, n_fit, z_f, t_f, c_f, iterations, channels_last=fmt is last, **kw
        )
    c = benchmark.interleaved(
        variants,
        repeats=args.repeats,
        device=device,
        scale={name: 1 / iterations for name in variants},
    )
    print(f"load: {c.load()}")
    for name in variants:
        print(f"{name:28s}: {c.line(name, unit='ms/it', factor=1e3)}")
    for a, b in (
        ("dip.fit", "plain loop"),
        ("dip.fit, channels_last", "plain loop, channels_last"),
        ("dip.fit", "dip.fit, channels_last"),
        ("plain loop", "plain loop, channels_last"),
    ):
        r_min, r_med = c.ratio(a, b)
        print(
            f"ratio {a} / {b}: {r_min:.3f} at min, {r_med:.3f} at median, "
            f"{c.cpu_ratio(a, b):.3f} in CPU time"
        )
    if c.all_contended():
        print("WARNING: every sample of a variant was taken under contention")


if __name__ == "__main__":
    main()
