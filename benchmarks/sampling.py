"""Time our sampling loop against diffusers' loops with the same U-Net and the same step count.

Compared, in one run, on one diffusers ``UNet2DModel`` (through the ``helpers.unet`` wrapper for
our loop):

* DDPM: ``helpers.diffusion.sample(sampler="ddpm")`` against ``diffusers.DDPMPipeline``;
* DDIM: ``helpers.diffusion.sample(sampler="ddim")`` against the usual loop over
  ``DDIMScheduler.timesteps`` with ``scheduler.step``.

It prints seconds, the ratio ours / diffusers (≤ 1.0 expected) and the share of each loop's time
spent outside U-Net calls (the sampler's own overhead).

Usage::

    python benchmarks/sampling.py            # defaults: 16×16, batch 16, DDPM 1000 steps, DDIM 50
    python benchmarks/sampling.py --quick    # DDPM 200 steps (T = 200), fewer repeats
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler

from helpers import diffusion, unet


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


@contextmanager
def timed(clock: Clock, out: dict):
    clock.seconds = 0.0
    clock.sync()
    start = time.perf_counter()
    yield
    clock.sync()
    out["total"] = time.perf_counter() - start
    out["unet"] = clock.seconds


def best_of(fns: dict, repeats: int, clock: Clock) -> dict:
    """The fastest of ``repeats`` runs of each function (total and U-Net seconds), run in
    alternation so that a change of machine load hits both sides alike."""
    runs: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            out: dict = {}
            with timed(clock, out):
                fn()
            runs[name].append(out)
    return {name: min(r, key=lambda x: x["total"]) for name, r in runs.items()}


def report(name: str, ours: dict, theirs: dict) -> None:
    share = lambda r: 1 - r["unet"] / r["total"]  # noqa: E731
    print(
        f"{name:5s} ours {ours['total']:7.2f} s (outside U-Net {share(ours):5.1%}) | "
        f"diffusers {theirs['total']:7.2f} s (outside U-Net {share(theirs):5.1%}) | "
        f"ratio ours/diffusers {ours['total'] / theirs['total']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 200 and one repeat")
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    T = 200 if args.quick else 1000
    repeats = 1 if args.quick else 2
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
    r = best_of(ddpm, repeats, clock)
    report("DDPM", r["ours"], r["diffusers"])

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
    r = best_of(ddim, repeats, clock)
    report("DDIM", r["ours"], r["diffusers"])


if __name__ == "__main__":
    main()
