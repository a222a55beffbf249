"""A tiny diffusion training under ``accelerate``, started by tests/test_accelerate.py as
``accelerate launch --cpu --num_processes 2 tests/accelerate_train.py OUT CKPT STEPS [CRASH]``.

The main process writes the loss history and the final weights to ``OUT`` (safetensors); with
``CRASH`` the network raises on its ``CRASH + 1``-th forward call in every process, like a job
killed mid-training, and the next launch resumes from ``CKPT``.
"""

from __future__ import annotations

import sys

import torch


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """32 images 8×8 in [-1, 1] of two classes (a horizontal and a vertical gradient)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(32) % 2
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 8), torch.linspace(-1, 1, 8), indexing="ij")
    base = torch.stack([xx, yy])[labels][:, None]
    return (base + 0.05 * torch.randn(base.shape, generator=g)).clamp(-1, 1), labels


def net():
    from helpers.unet import UNet

    return UNet(
        1, base_channels=8, channel_mults=(1, 2), attn_resolutions=(), num_classes=2, seed=0
    )


def settings(steps: int) -> dict:
    from helpers.diffusion import Schedule

    return dict(schedule=Schedule.make("cosine", T=50), steps=steps, batch_size=8, lr=3e-3,
                checkpoint_every=3, warmup=2, seed=5, progress=False)  # fmt: skip


def main() -> None:
    from accelerate import Accelerator
    from safetensors.torch import save_file

    from helpers import diffusion_training

    out, ckpt, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    crash = int(sys.argv[4]) if len(sys.argv) > 4 else None
    accelerator = Accelerator(cpu=True)
    model = net()
    if crash is not None:
        forward, calls = model.forward, [0]

        def crashing(*args, **kwargs):
            calls[0] += 1
            if calls[0] > crash:
                raise SystemExit(3)  # a job killed mid-training
            return forward(*args, **kwargs)

        model.forward = crashing
    images, labels = data()
    result = diffusion_training.train(
        model, images, labels=labels, checkpoint_path=ckpt, accelerator=accelerator,
        **settings(steps),
    )  # fmt: skip
    if accelerator.is_main_process:
        tensors = {f"model.{k}": v.contiguous() for k, v in result.model.state_dict().items()}
        tensors["loss_history"] = torch.tensor(result.loss_history, dtype=torch.float64)
        tensors["resumed_from"] = torch.tensor(result.resumed_from)
        tensors["processes"] = torch.tensor(accelerator.num_processes)
        save_file(tensors, out)


if __name__ == "__main__":
    main()
