"""Time our sampling loop against diffusers' loops with the same U-Net and the same step count.

Compared, in one run, on one diffusers ``UNet2DModel`` (through the ``helpers.unet`` wrapper for
our loop):

* DDPM: ``helpers.diffusion.sample(sampler="ddpm")`` against ``diffusers.DDPMPipeline``;
* DDIM: ``helpers.diffusion.sample(sampler="ddim")`` against the usual loop over
  ``DDIMScheduler.timesteps`` with ``scheduler.step``.

The two sides run in alternation, 4 samples each by default (``helpers.benchmark.interleaved``:
the order rotates, samples taken while other processes used the CPU are dropped or flagged). It
prints min and median seconds, the ratio ours / diffusers at both (≤ 1.0 expected), the share of
each loop's time spent outside U-Net calls (the sampler's own overhead) and the load.

Usage::

    python benchmarks/sampling.py            # defaults: 16×16, batch 16, DDPM 1000 steps, DDIM 50
    python benchmarks/sampling.py --quick    # DDPM 200 steps (T = 200), 4 repeats
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler

from helpers import benchmark, diffusion, runtime, unet


class Clock:
    """Accumulates the wall time spent inside the U-Net's forward (with a device sync)."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, 0.0

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def wrap(self, module: torch.nn.Module) -> None:
        def before(*_):
            self.sync()
            self._start = time.perf_counter()

        def after(*_):
            self.sync()
            self.seconds += time.perf_counter() - self._start

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)


def compare(fns: dict, repeats: int, clock: Clock, device: torch.device) -> dict:
    """Interleaved repeats of each function (``helpers.benchmark.interleaved``: the order rotates,
    contended samples are dropped); also the U-Net's share of each sample."""
    unet_seconds: dict = {name: [] for name in fns}

    def counted(name, fn):
        def run():
            clock.seconds = 0.0
            fn()
            unet_seconds[name].append(clock.seconds)

        return run

    c = benchmark.interleaved(
        {name: counted(name, fn) for name, fn in fns.items()}, repeats=repeats, device=device
    )
    return {"comparison": c, "unet": {k: v[1:] for k, v in unet_seconds.items()}}  # no warm-up


def report(name: str, r: dict) -> None:
    c, unet_s = r["comparison"], r["unet"]
    for side in c.samples:
        totals = [x.seconds for x in c.samples[side]]
        share = 1 - statistics.median(u / t for u, t in zip(unet_s[side], totals, strict=True))
        print(f"{name:5s} {side:9s}: {c.line(side)}  outside U-Net {share:5.1%}")
    r_min, r_med = c.ratio("ours", "diffusers")
    print(
        f"{name:5s} ratio ours/diffusers {r_min:.3f} at min, {r_med:.3f} at median, "
        f"{c.cpu_ratio('ours', 'diffusers'):.3f} in CPU time"
    )
    print(f"{name:5s} load: {c.load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 200")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved samples per variant")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    print(f"threads: {runtime.configure_threads().describe()}")  # COURSE_NUM_THREADS fixes it
    T = 200 if args.quick else 1000
    repeats = args.repeats
    device = (
        torch.device(args.device)
        if args.device
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )

    torch.manual_seed(0)
    model = unet.make_model(
        "diffusers",
        in_channels=1,
        base_channels=16,
        channel_mults=(1, 2, 2),
        attn_resolutions=(4,),
        image_size=args.size,
    )
    model = model.to(device).eval()
    net = model.net  # the bare UNet2DModel, shared by both sides
    clock = Clock(device)
    clock.wrap(net)
    schedule = diffusion.Schedule.make("linear", T=T)
    shape = (args.batch, 1, args.size, args.size)
    print(
        f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} shape={shape} T={T}"
    )

    # warm-up (allocator, kernels)
    with torch.no_grad():
        net(
            torch.randn(shape, device=device),
            torch.zeros(args.batch, dtype=torch.long, device=device),
        )

    # DDPM: every step
    pipe = DDPMPipeline(unet=net, scheduler=DDPMScheduler(num_train_timesteps=T)).to(device)
    pipe.set_progress_bar_config(disable=True)
    ddpm = {
        "ours": lambda: diffusion.sample(
            model, shape, schedule=schedule, sampler="ddpm", device=device
        ),
        "diffusers": lambda: pipe(
            batch_size=args.batch,
            num_inference_steps=T,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        ),
    }
    report("DDPM", compare(ddpm, repeats, clock, device))

    # DDIM: the same number of steps on both sides
    sched = DDIMScheduler(num_train_timesteps=T)
    sched.set_timesteps(args.ddim_steps)

    @torch.no_grad()
    def diffusers_ddim():
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
        for t in sched.timesteps:
            eps = net(x, t).sample
            x = sched.step(eps, t, x).prev_sample
        return x

    ddim = {
        "ours": lambda: diffusion.sample(
            model, shape, schedule=schedule, steps=args.ddim_steps, device=device
        ),
        "diffusers": diffusers_ddim,
    }
    report("DDIM", compare(ddim, repeats, clock, device))


if __name__ == "__main__":
    main()
