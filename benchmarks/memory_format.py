"""Training steps in channels_last against the usual contiguous format, for each training loop.

``channels_last`` (NHWC strides) lets oneDNN and cuDNN pick other convolution kernels; whether
that pays depends on the network, the image size and the device. This script times the kit's
training loops at their laptop-profile sizes with ``channels_last=False`` and ``True``:

* ``diffusion_training.train``: notebook 03's digits U-Net (16×16, base 16, mults 1-2-2, batch
  32) and notebook 04's patch U-Net (32×32, cross-attention, batch 32);
* ``gan.train_gan``: the laptop GAN (32×32, widths 16, batch 32);
* ``self_supervised.train_encoder``: the laptop SimCLR encoder (32×32, width 16, batch 64).

The two formats run in alternation, the order rotating, 4 samples each by default
(``helpers.benchmark.interleaved``: samples taken while other processes used the CPU are dropped,
or flagged when all were). It prints min and median ms/step, the ratio contiguous / channels_last
(> 1: channels_last pays) and each loop's current default (``CHANNELS_LAST_FASTEST``).

Usage::

    python benchmarks/memory_format.py            # 20 steps per sample
    python benchmarks/memory_format.py --quick    # 5 steps per sample
"""

from __future__ import annotations

import argparse
from functools import partial

import torch

from helpers import benchmark, diffusion, diffusion_training, gan, runtime, self_supervised, unet
from helpers.course import experiments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 steps per sample")
    parser.add_argument("--steps", type=int, default=None, help="training steps per sample")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved samples per variant")
    parser.add_argument("--only", nargs="+", default=None, help="loops to time (default: all)")
    parser.add_argument("--device", default=None, help="cpu | cuda | mps (default: best available)")
    args = parser.parse_args()
    print(f"threads: {runtime.configure_threads().describe()}")  # COURSE_NUM_THREADS fixes it
    steps = args.steps or (5 if args.quick else 20)
    device = runtime.detect_device(args.device)
    g = torch.Generator().manual_seed(0)
    schedule = diffusion.Schedule.make("linear", T=1000)
    ddpm = experiments.DDPMConfig.preset("laptop")
    cond = experiments.CondConfig.preset("laptop")
    digits = torch.rand(256, 1, ddpm.image_size, ddpm.image_size, generator=g) * 2 - 1
    patches = torch.rand(256, 3, cond.size, cond.size, generator=g) * 2 - 1
    vectors = torch.randn(256, 64, generator=g)
    labels = torch.randint(0, 10, (256,), generator=g)
    gan_cfg = gan.GANConfig.preset("laptop")
    gan_images = torch.rand(
        256, gan_cfg.channels, gan_cfg.image_size, gan_cfg.image_size, generator=g
    )
    ssl_cfg = self_supervised.SSLConfig.preset("laptop")
    ssl_images = torch.rand(256, 3, ssl_cfg.size, ssl_cfg.size, generator=g)

    def diffusion_digits(channels_last: bool) -> None:
        model = unet.UNet(1, base_channels=ddpm.base_channels, channel_mults=ddpm.channel_mults,
                          attn_resolutions=ddpm.attn_resolutions, num_classes=10, seed=0)  # fmt: skip
        diffusion_training.train(
            model.to(device), digits, schedule=schedule, steps=steps, batch_size=ddpm.batch_size,
            labels=labels, progress=False, channels_last=channels_last,
        )  # fmt: skip

    def diffusion_patches(channels_last: bool) -> None:
        model = unet.UNet(3, cond_dim=64, seed=0, **cond.unet_kwargs())
        diffusion_training.train(
            model.to(device), patches, schedule=schedule, steps=steps, batch_size=cond.batch_size,
            cond=vectors, progress=False, channels_last=channels_last,
        )  # fmt: skip

    def gan_loop(channels_last: bool) -> None:
        gan.train_gan(gan_images, config=gan_cfg, steps=steps, device=device, progress=False,
                      channels_last=channels_last)  # fmt: skip

    def ssl_loop(channels_last: bool) -> None:
        self_supervised.train_encoder(ssl_images, ssl_cfg, device=device, progress=False,
                                      channels_last=channels_last)  # fmt: skip

    ssl_steps = min(steps, ssl_cfg.steps)
    ssl_cfg = type(ssl_cfg).preset("laptop", steps=ssl_steps)
    loops = {
        "diffusion (03 digits)": (diffusion_digits, diffusion_training, steps),
        "diffusion (04 patches)": (diffusion_patches, diffusion_training, steps),
        "gan": (gan_loop, gan, steps),
        "ssl encoder": (ssl_loop, self_supervised, ssl_steps),
    }
    print(f"device={device} threads={torch.get_num_threads()} steps per sample={steps}")
    for name, (fn, module, n) in loops.items():
        if args.only and not any(o in name for o in args.only):
            continue
        c = benchmark.interleaved(
            {"contiguous": partial(fn, False), "channels_last": partial(fn, True)},
            repeats=args.repeats,
            device=device,
            scale={"contiguous": 1 / n, "channels_last": 1 / n},
        )
        r_min, r_med = c.ratio("contiguous", "channels_last")
        default = module.CHANNELS_LAST_FASTEST.get(device.type, False)
        print(f"{name}: {c.load()}")
        for side in c.samples:
            print(f"  {side:13s}: {c.line(side, unit='ms/step', factor=1e3)}")
        print(
            f"  ratio contiguous / channels_last: {r_min:.3f} at min, {r_med:.3f} at median, "
            f"{c.cpu_ratio('contiguous', 'channels_last'):.3f} in CPU time "
            f"(> 1: channels_last pays; default on {device.type}: "
            f"{'channels_last' if default else 'contiguous'})"
        )


if __name__ == "__main__":
    main()
