"""Deep Image Prior: the "skip" hourglass network, its fixed input, and the fitting loop.

A randomly initialised network ``f_θ`` is fitted to one degraded image ``x₀`` from a fixed random
input ``z``: θ* = argmin_θ E(f_θ(z); x₀). The network fits natural structure long before it fits
noise, so stopping early (and averaging the outputs) restores the image without training data.
The degradations (noise, the Lanczos downsampler, masks) are in :mod:`helpers.degradations`; this
module holds the network, its fixed input, the data terms E(x; x₀) and the fitting loop :func:`fit`.

References
----------
Ulyanov, D., Vedaldi, A., Lempitsky, V. "Deep Image Prior." CVPR 2018 (code:
DmitryUlyanov/deep-image-prior, ``models/skip.py``, ``denoising.ipynb``).

Examples
--------
>>> import torch
>>> from helpers import dip
>>> cfg = dip.DIPConfig.preset("smoke")
>>> net = dip.SkipNet(cfg.input_channels, 1, scales=cfg.scales, channels=cfg.channels,
...                   skip_channels=cfg.skip_channels, seed=0)
>>> z = dip.make_input(cfg.input_channels, (32, 32), generator=torch.Generator().manual_seed(0))
>>> tuple(net(z).shape)
(1, 1, 32, 32)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .degradations import LanczosDownsampler, check_image
from .metrics import mse_to_psnr
from .runtime import Presets, seeded
from .validation import (
    as_device,
    check_input_dtype,
    check_int,
    check_number,
    check_tensor,
)

logger = logging.getLogger(__name__)

__all__ = [
    "TASKS",
    "DIPConfig",
    "FitResult",
    "SkipNet",
    "check_task",
    "count_parameters",
    "data_term",
    "fit",
    "make_input",
]

TASKS: tuple[str, ...] = ("denoise", "super_resolution", "inpaint")
"""The data terms :func:`data_term` knows."""


@dataclass(frozen=True)
class DIPConfig(Presets):
    """Network and fitting settings of one profile.

    Attributes
    ----------
    size : int
        Side of the working images (denoising, super-resolution, inpainting).
    scales, channels, skip_channels : int
        Hourglass depth, channels of each down/up scale, channels of each 1×1 skip branch.
    upsample, pad : str
        ``"bilinear"`` or ``"nearest"``; ``"reflection"`` or ``"zero"``.
    input_channels : int
        Channels of the fixed noise input ``z`` (32 in the paper).
    lr : float
        Adam learning rate (0.01).
    ema : float
        Decay of the exponential average of outputs (0.99).
    iters_fig2, iters_denoise, iters_sr : int
        Iterations of the Fig. 2 curves, of denoising and of ×4 super-resolution (the paper:
        –, 3000 for F16, 2000).
    iters_inpaint, iters_inpaint_text : int
        Iterations of inpainting 50 % missing pixels and a text mask (the paper: 6001 for text).
    reg_noise_denoise, reg_noise_sr, reg_noise_inpaint : float
        Standard deviation of the per-iteration jitter of ``z`` (1/30, 0.03, 0.03).
    fig2_size : int
        Side of the images of the Fig. 2 fitting-curve experiment.
    snapshot_every : int
        Keep the averaged output every this many iterations (0: none).
    """

    size: int
    scales: int
    channels: int
    skip_channels: int = 4
    upsample: str = "bilinear"
    pad: str = "reflection"
    input_channels: int = 32
    lr: float = 0.01
    ema: float = 0.99
    iters_fig2: int = 1000
    iters_denoise: int = 3000
    iters_sr: int = 2000
    iters_inpaint: int = 3000
    iters_inpaint_text: int = 3000
    reg_noise_denoise: float = 1 / 30
    reg_noise_sr: float = 0.03
    reg_noise_inpaint: float = 0.03
    fig2_size: int = 256
    snapshot_every: int = 100

    def __post_init__(self) -> None:
        for name in ("size", "scales", "channels", "input_channels", "fig2_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in (
            "skip_channels",
            "iters_fig2",
            "iters_denoise",
            "iters_sr",
            "iters_inpaint",
            "iters_inpaint_text",
            "snapshot_every",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an int ≥ 0, got {value!r}")
        for name in ("size", "fig2_size"):
            if getattr(self, name) % 2**self.scales:
                raise ValueError(
                    f"{name} {getattr(self, name)} is not divisible by 2**scales = {2**self.scales}"
                )
        if self.upsample not in ("bilinear", "nearest"):
            raise ValueError(f"upsample must be 'bilinear' or 'nearest', got {self.upsample!r}")
        if self.pad not in ("reflection", "zero"):
            raise ValueError(f"pad must be 'reflection' or 'zero', got {self.pad!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not self.lr > 0:  # NaN too
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("reg_noise_denoise", "reg_noise_sr", "reg_noise_inpaint"):
            check_number(getattr(self, name), name, low=0)

    STEP_FIELDS: ClassVar[tuple[str, ...]] = (
        "iters_fig2",
        "iters_denoise",
        "iters_sr",
        "iters_inpaint",
        "iters_inpaint_text",
    )
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, DIPConfig]:
        """One preset per profile (use ``DIPConfig.preset(profile, **overrides)``).

        ``gpu`` is the paper's setting: 5 scales × 128 channels, 4 skip channels, 512×512 images,
        3000 denoising iterations. ``laptop`` and ``smoke`` shrink the network and the images.
        """
        return {
            "smoke": cls(
                size=32,
                scales=3,
                channels=16,
                iters_fig2=60,
                iters_denoise=120,
                iters_sr=100,
                iters_inpaint=120,
                iters_inpaint_text=120,
                fig2_size=32,
                snapshot_every=20,
            ),
            "laptop": cls(
                size=128,
                scales=4,
                channels=32,
                iters_fig2=300,
                iters_denoise=1200,
                iters_sr=600,
                iters_inpaint=1800,
                iters_inpaint_text=600,
                fig2_size=64,
                snapshot_every=50,
            ),
            "gpu": cls(
                size=512,
                scales=5,
                channels=128,
                iters_fig2=2000,
                iters_denoise=3000,
                iters_sr=2000,
                iters_inpaint=4000,
                iters_inpaint_text=4000,
                fig2_size=256,
                snapshot_every=100,
            ),
        }


# --------------------------------------------------------------------------------------------
# the network


def _per_scale(value: int | Sequence[int], scales: int, name: str) -> list[int]:
    values = [value] * scales if isinstance(value, int) else list(value)
    if len(values) != scales or any(not isinstance(v, int) or v < 0 for v in values):
        raise ValueError(f"{name} must be an int or {scales} ints ≥ 0, got {value!r}")
    return values


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, pad: str = "reflection") -> nn.Module:
    p = (k - 1) // 2
    if p == 0:
        return nn.Conv2d(c_in, c_out, k, stride=stride)
    if pad == "reflection":
        return nn.Sequential(nn.ReflectionPad2d(p), nn.Conv2d(c_in, c_out, k, stride=stride))
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=p)


def _block(
    c_in: int, c_out: int, k: int, stride: int = 1, pad: str = "reflection"
) -> list[nn.Module]:
    """conv → BN → LeakyReLU(0.2)."""
    return [
        _conv(c_in, c_out, k, stride, pad),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    ]


class _Scale(nn.Module):
    """One level of the hourglass: skip branch ‖ (down → deeper → upsample), then up path."""

    def __init__(self, c_in, down, up, skip, deeper_out, deeper, upsample, pad):
        super().__init__()
        self.skip = nn.Sequential(*_block(c_in, skip, 1, pad=pad)) if skip else None
        self.down = nn.Sequential(*_block(c_in, down, 3, 2, pad), *_block(down, down, 3, pad=pad))
        self.deeper = deeper  # the next scale, or None at the bottom
        self.upsample = nn.Upsample(scale_factor=2, mode=upsample)
        self.up = nn.Sequential(
            nn.BatchNorm2d(skip + deeper_out),
            *_block(skip + deeper_out, up, 3, pad=pad),
            *_block(up, up, 1, pad=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)  # (B, down, H/2, W/2)
        if self.deeper is not None:
            y = self.deeper(y)  # (B, up of next scale, H/2, W/2)
        y = self.upsample(y)  # (B, ·, H, W)
        if self.skip is not None:
            y = torch.cat([self.skip(x), y], dim=1)  # (B, skip + ·, H, W)
        return self.up(y)  # (B, up, H, W)


class SkipNet(nn.Module):
    """The paper's encoder–decoder ("skip" hourglass) with a sigmoid output.

    Per scale: down path stride-2 3×3 conv → BN → LeakyReLU → 3×3 conv → BN → LeakyReLU; a 1×1
    skip branch (conv → BN → LeakyReLU) concatenated after upsampling; up path BN → 3×3 conv →
    BN → LeakyReLU → 1×1 conv → BN → LeakyReLU. Output: 1×1 conv → sigmoid.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of ``z`` (32) and of the image (1 or 3).
    scales : int
        Number of scales (5 in the paper); input height and width must be divisible by 2**scales.
    channels : int or sequence of int
        Down/up channels per scale (128 in the paper).
    skip_channels : int or sequence of int
        Skip channels per scale (4 in the paper; 0 removes the skip connection).
    upsample : str
        ``"bilinear"`` (paper's denoising and super-resolution) or ``"nearest"``.
    pad : str
        ``"reflection"`` (paper) or ``"zero"``.
    sigmoid : bool
        Squash the output to (0, 1).
    seed : int, optional
        Initialise the weights from this seed without touching the global random state.

    Examples
    --------
    >>> net = SkipNet(32, 3, scales=5, channels=128, skip_channels=4, seed=0)
    >>> count_parameters(net)
    2217831
    """

    def __init__(
        self,
        in_channels: int = 32,
        out_channels: int = 3,
        *,
        scales: int = 5,
        channels: int | Sequence[int] = 128,
        skip_channels: int | Sequence[int] = 4,
        upsample: str = "bilinear",
        pad: str = "reflection",
        sigmoid: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(scales, int) or scales < 1:
            raise ValueError(f"scales must be a positive int, got {scales!r}")
        check_int(in_channels, "in_channels", minimum=1)
        check_int(out_channels, "out_channels", minimum=1)
        if upsample not in ("bilinear", "nearest") or pad not in ("reflection", "zero"):
            raise ValueError(
                f"upsample/pad must be bilinear|nearest and reflection|zero, got {upsample!r}, {pad!r}"
            )
        ch = _per_scale(channels, scales, "channels")
        sk = _per_scale(skip_channels, scales, "skip_channels")
        if min(ch) < 1:
            raise ValueError(f"channels must be ≥ 1, got {channels!r}")
        self.scales, self.in_channels, self.out_channels = scales, in_channels, out_channels
        with torch.random.fork_rng(devices=[]), seeded(seed):  # global state untouched
            deeper = None
            for i in reversed(range(scales)):  # build from the bottom up
                c_in = in_channels if i == 0 else ch[i - 1]
                deeper_out = ch[i] if i == scales - 1 else ch[i + 1]
                deeper = _Scale(c_in, ch[i], ch[i], sk[i], deeper_out, deeper, upsample, pad)
            self.body = deeper
            self.head = nn.Conv2d(ch[0], out_channels, 1)
        self.sigmoid = sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_input_dtype(self, z, "z")
        if z.ndim != 4 or z.shape[1] != self.in_channels:
            raise ValueError(f"input must be (B, {self.in_channels}, H, W), got {tuple(z.shape)}")
        h, w = z.shape[-2:]
        if h < 1 or w < 1:
            raise ValueError(f"input size {h}×{w} is empty")
        if h % 2**self.scales or w % 2**self.scales:
            raise ValueError(f"input size {h}×{w} is not divisible by 2**scales = {2**self.scales}")
        if self.training and h * w <= 4**self.scales:
            raise ValueError(
                f"input size {h}×{w} is too small for {self.scales} scales in training mode: "
                f"batch norm needs more than one pixel at the bottom ({h >> self.scales}×{w >> self.scales})"
            )
        x = self.head(self.body(z))  # (B, out_channels, H, W)
        return torch.sigmoid(x) if self.sigmoid else x

    @classmethod
    def from_config(
        cls, config: DIPConfig, out_channels: int, *, seed: int | None = None
    ) -> SkipNet:
        """The network described by ``config``."""
        return cls(
            config.input_channels,
            out_channels,
            scales=config.scales,
            channels=config.channels,
            skip_channels=config.skip_channels,
            upsample=config.upsample,
            pad=config.pad,
            seed=seed,
        )


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def make_input(
    channels: int,
    size: tuple[int, int],
    *,
    kind: str = "noise",
    scale: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The fixed network input ``z``.

    Parameters
    ----------
    channels : int
        Channels of uniform noise (32 in the paper); ignored for ``"meshgrid"`` (2 channels).
    size : (int, int) or int
        Height and width (those of the output image); one int for a square.
    kind : str
        ``"noise"``: uniform in ``[0, scale]``; ``"meshgrid"``: x and y coordinates in [0, 1].
    scale : float
        Range of the noise (1/10 in the paper).
    generator : torch.Generator, optional
        Source of the noise.

    Returns
    -------
    Tensor
        ``(1, channels, H, W)`` (``(1, 2, H, W)`` for the meshgrid), float32, on the CPU.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, tuple | list) or len(size) != 2:
        raise ValueError(f"size must be (H, W) or one int, got {size!r}")
    h, w = (check_int(side, "size", minimum=1) for side in size)
    check_number(scale, "scale", low=0)
    if kind == "noise":
        check_int(channels, "channels", minimum=1)
        return scale * torch.rand((1, channels, h, w), generator=generator)
    if kind == "meshgrid":
        ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        return torch.stack([xs, ys])[None]
    raise ValueError(f"kind must be 'noise' or 'meshgrid', got {kind!r}")


# --------------------------------------------------------------------------------------------
# data terms


def check_task(
    task: str,
    target: torch.Tensor,
    *,
    out_shape: tuple[int, ...],
    mask: torch.Tensor | None = None,
    factor: int | None = None,
) -> None:
    """Validate that ``target`` (and ``mask`` / ``factor``) fit a network output of ``out_shape``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    check_image(target, "target")
    _, c, h, w = out_shape
    if target.shape[1] != c:
        raise ValueError(f"target has {target.shape[1]} channels, the network outputs {c}")
    if task == "super_resolution":
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 2:
            raise ValueError(f"super_resolution needs an int factor ≥ 2, got {factor!r}")
        if h % factor or w % factor:
            raise ValueError(f"output size {h}×{w} is not divisible by the factor {factor}")
        if tuple(target.shape[-2:]) != (h // factor, w // factor):
            raise ValueError(
                f"low-resolution target is {tuple(target.shape[-2:])}, expected "
                f"{(h // factor, w // factor)} (output {h}×{w} divided by {factor})"
            )
    elif tuple(target.shape[-2:]) != (h, w):
        raise ValueError(f"target is {tuple(target.shape[-2:])}, the network output is {(h, w)}")
    if task == "inpaint":
        if mask is None:
            raise ValueError("inpaint needs a mask (1 = known pixel)")
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.ndim != 4 or mask.shape[0] != 1 or mask.shape[1] not in (1, c):
            channels = "1" if c == 1 else f"1 or {c}"
            raise ValueError(f"mask must have shape (1, {channels}, H, W), got {tuple(mask.shape)}")
        if tuple(mask.shape[-2:]) != tuple(target.shape[-2:]):
            raise ValueError(
                f"mask is {tuple(mask.shape[-2:])}, it must match the image {tuple(target.shape[-2:])}"
            )


def data_term(
    x: torch.Tensor,
    target: torch.Tensor,
    task: str = "denoise",
    *,
    mask: torch.Tensor | None = None,
    downsampler: nn.Module | None = None,
) -> torch.Tensor:
    """The energy ``E(x; x₀)`` of the paper, as a mean over pixels.

    Parameters
    ----------
    x : Tensor ``(1, C, H, W)``
        The network output.
    target : Tensor
        ``x₀``: ``(1, C, H, W)``, or ``(1, C, H/f, W/f)`` for super-resolution.
    task : str
        ``"denoise"`` ‖x − x₀‖², ``"super_resolution"`` ‖d(x) − x₀‖², ``"inpaint"`` ‖(x − x₀) ⊙ m‖².
    mask : Tensor ``(1, 1 or C, H, W)``, optional
        1 = known pixel (inpainting).
    downsampler : nn.Module, optional
        ``d`` (super-resolution), e.g. :class:`LanczosDownsampler`.

    Returns
    -------
    Tensor
        Scalar loss.
    """
    if task == "denoise":
        return F.mse_loss(x, target)
    if task == "super_resolution":
        if downsampler is None:
            raise ValueError("super_resolution needs a downsampler")
        return F.mse_loss(downsampler(x), target)
    if task == "inpaint":
        if mask is None:
            raise ValueError("inpaint needs a mask")
        return F.mse_loss(x * mask, target * mask)
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


# --------------------------------------------------------------------------------------------
# the fitting loop


@dataclass
class FitResult:
    """What :func:`fit` returns. Images are ``(1, C, H, W)`` CPU tensors, each an independent copy.

    Attributes
    ----------
    output, average : Tensor
        The last raw output and the exponential average of outputs.
    loss : list of float
        Data term per iteration.
    psnr, psnr_average : list of float
        PSNR of the raw and averaged outputs against ``clean`` per iteration (empty without it).
    best_iteration, best_psnr : int, float
        Iteration (1-based) and PSNR of the best averaged output (``-1``, ``nan`` without
        ``clean``). Choosing it needs the clean image: an **oracle**, an upper bound on what the
        method gives, never what a user gets.
    best : Tensor or None
        The best averaged output.
    snapshots : list of (int, Tensor)
        ``(iteration, averaged output)`` at every ``snapshot_every``-th iteration and at the
        iterations of ``snapshot_at``, in increasing order of iteration.
    raw_snapshots : list of (int, Tensor)
        ``(iteration, raw output)`` at the same iterations.
    loss_target_iteration : int
        First iteration (1-based) whose data term fell to ``loss_target`` (``-1``: never, or no
        target given). A stopping rule that needs no clean image.
    at_loss_target : Tensor or None
        The averaged output at that iteration.
    seconds : float
        Wall time of the loop.
    stopped_at : int
        Iteration (1-based) at which ``stop_below`` stopped the loop (``-1``: it ran to the end).
    """

    output: torch.Tensor
    average: torch.Tensor
    loss: list[float]
    psnr: list[float] = field(default_factory=list)
    psnr_average: list[float] = field(default_factory=list)
    best_iteration: int = -1
    best_psnr: float = math.nan
    best: torch.Tensor | None = None
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    raw_snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    loss_target_iteration: int = -1
    at_loss_target: torch.Tensor | None = None
    seconds: float = 0.0
    stopped_at: int = -1


def _copy_to_cpu(x: torch.Tensor) -> torch.Tensor:
    """An independent CPU copy. ``x.cpu()`` returns ``x`` itself for a CPU tensor, so a tensor
    that is later updated in place (the running average) would change every stored "copy"."""
    return x.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)


def fit(
    net: nn.Module,
    z: torch.Tensor,
    target: torch.Tensor,
    *,
    task: str = "denoise",
    mask: torch.Tensor | None = None,
    factor: int | None = None,
    clean: torch.Tensor | None = None,
    iterations: int = 3000,
    lr: float = 0.01,
    reg_noise_std: float = 0.0,
    ema: float = 0.99,
    snapshot_every: int = 0,
    snapshot_at: Sequence[int] = (),
    loss_target: float | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    channels_last: bool | None = None,
    progress: bool = True,
    stop_below: float | None = None,
) -> FitResult:
    """Fit ``net(z)`` to a degraded image with Adam: the Deep Image Prior loop.

    Each iteration: ``x = net(z + N(0, reg_noise_std²))``, loss = data term, Adam step,
    ``average = ema · average + (1 − ema) · x``.

    Parameters
    ----------
    net : nn.Module
        E.g. :class:`SkipNet`; trained in place (keep it in train mode, as the paper does).
    z : Tensor ``(1, C_in, H, W)``
        Fixed input (:func:`make_input`).
    target : Tensor
        ``x₀``: ``(1, C, H, W)``, or ``(1, C, H/factor, W/factor)`` for super-resolution.
    task : str
        ``"denoise"``, ``"super_resolution"`` or ``"inpaint"`` (see :func:`data_term`).
    mask : Tensor ``(1, 1 or C, H, W)``, optional
        Inpainting mask, 1 = known pixel.
    factor : int, optional
        Super-resolution factor (Lanczos downsampler, :class:`helpers.degradations.LanczosDownsampler`).
    clean : Tensor ``(1, C, H, W)``, optional
        Ground truth: PSNR of raw and averaged outputs is recorded every iteration (for
        evaluation only; nothing in the loop uses it).
    iterations, lr, reg_noise_std, ema : int, float, float, float
        Number of Adam steps, learning rate, jitter of ``z``, decay of the output average.
    snapshot_every : int
        Keep copies of the raw and averaged outputs every this many iterations (0: none).
    snapshot_at : sequence of int
        Also keep them at these iterations (1-based), e.g. log-spaced ones.
    loss_target : float, optional
        Note the first iteration whose data term falls to this value, and keep the averaged
        output there (:attr:`FitResult.at_loss_target`): a stopping rule that needs no clean
        image. For Gaussian noise of known σ the clean image itself has loss σ² in expectation.
        The loop goes on (to compare the rule with the fixed budget); ``stop_below`` ends it.
    generator : torch.Generator, optional
        Seeds the jitter of ``z``.
    device : str or torch.device, optional
        Default: the device of the network's parameters.
    channels_last : bool, optional
        Convert the network and ``z`` to the channels-last memory format (same maths up to
        rounding, faster convolutions on CPU and CUDA: about a quarter less time per iteration for
        the ``laptop`` network on one CPU thread; the network stays converted). Default (``None``):
        yes except on MPS.
    progress : bool
        Show a ``tqdm.auto`` progress bar.
    stop_below : float, optional
        Stop at the first iteration whose data term is at or below this value (and return the
        averages so far). For denoising, the discrepancy principle: the clean image has a mean
        squared distance σ² to the noisy one, so a fit below σ² has started to reproduce noise.
        Snapshots, history and :attr:`FitResult.stopped_at` end at that iteration; with
        ``loss_target`` at the same value, ``average`` equals the ``at_loss_target`` of a full run.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        For shapes that do not fit together, a mask unlike the image, a factor that does not
        divide the output size, NaN or Inf in an image, snapshot iterations outside
        ``1 … iterations``, or an option out of range (``ema`` outside ``[0, 1)``, ``lr ≤ 0``,
        negative ``reg_noise_std`` or ``snapshot_every``).
    TypeError
        For integer images (convert them to ``[0, 1]`` floats; float16 is converted to the
        network's dtype).
    FloatingPointError
        When the loss becomes NaN or Inf (named with its iteration).

    Examples
    --------
    >>> from helpers.dip import SkipNet, make_input
    >>> net = SkipNet(8, 1, scales=2, channels=8, seed=0)
    >>> z = make_input(8, (16, 16), generator=torch.Generator().manual_seed(0))
    >>> res = fit(net, z, torch.rand(1, 1, 16, 16), iterations=5, snapshot_at=[1, 5], progress=False)
    >>> len(res.loss), [it for it, _ in res.snapshots]
    (5, [1, 5])
    """
    if not isinstance(z, torch.Tensor) or z.ndim != 4 or z.shape[0] != 1:
        raise ValueError(
            f"z must be a (1, C, H, W) tensor, got {getattr(z, 'shape', type(z).__name__)}"
        )
    check_int(iterations, "iterations", minimum=1)
    check_number(lr, "lr", low=0, low_open=True)
    check_number(reg_noise_std, "reg_noise_std", low=0)
    check_number(ema, "ema", low=0, high=1, high_open=True)
    check_int(snapshot_every, "snapshot_every", minimum=0)
    if loss_target is not None:
        check_number(loss_target, "loss_target", low=0)
    if stop_below is not None:
        check_number(stop_below, "stop_below", low=0)
    if channels_last is not None and not isinstance(channels_last, bool):
        raise TypeError(f"channels_last must be a bool or None, got {channels_last!r}")
    for name, x in (("z", z), ("target", target), ("clean", clean)):
        if x is not None:  # float16 is converted to the network's dtype; integers are refused
            check_tensor(x, name, floating=True, finite=True)
    if mask is not None:
        check_tensor(mask, "mask", finite=True)
    keep = sorted({int(i) for i in snapshot_at})
    if keep and (keep[0] < 1 or keep[-1] > iterations):
        raise ValueError(
            f"snapshot_at must lie in 1 … {iterations} (the iterations), got {list(snapshot_at)}"
        )
    if snapshot_every:
        keep = sorted(set(keep) | set(range(snapshot_every, iterations + 1, snapshot_every)))
    keep_set = set(keep)
    device = torch.device(as_device(device) or next(net.parameters()).device)
    dtype = next(net.parameters()).dtype
    out_shape = (1, getattr(net, "out_channels", target.shape[1]), *z.shape[-2:])
    check_task(task, target, out_shape=out_shape, mask=mask, factor=factor)
    if clean is not None and tuple(clean.shape) != out_shape:
        raise ValueError(
            f"clean image is {tuple(clean.shape)}, expected the output shape {out_shape}"
        )

    if channels_last is None:
        channels_last = device.type != "mps"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device, memory_format=fmt).train()
    z, target = z.to(device, dtype, memory_format=fmt), target.to(device, dtype)
    mask = mask.to(device, dtype) if mask is not None else None
    clean = clean.to(device, dtype) if clean is not None else None
    down = (
        LanczosDownsampler(factor, channels=target.shape[1]).to(device)
        if task == "super_resolution"
        else None
    )
    seed = (
        int(torch.randint(0, 2**62, (1,), generator=generator).item())
        if generator is not None
        else 0
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    history = torch.full((iterations, 3), math.nan, device=device)  # loss, psnr, psnr of average
    avg = best = at_target = None
    best_value = torch.tensor(-math.inf, device=device)
    best_step = torch.tensor(0, device=device)
    target_step = torch.tensor(-1, device=device)
    snapshots: list[tuple[int, torch.Tensor]] = []
    raw_snapshots: list[tuple[int, torch.Tensor]] = []
    stopped_at = -1
    bar = tqdm(range(iterations), disable=not progress, desc=f"DIP {task}", leave=False)
    start = time.perf_counter()
    for i in bar:
        z_in = z
        if reg_noise_std > 0:
            z_in = z + reg_noise_std * torch.randn(z.shape, generator=gen, device=device)
        optimizer.zero_grad(set_to_none=True)
        x = net(z_in)
        loss = data_term(x, target, task, mask=mask, downsampler=down)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x = x.detach()
            # the average is updated in place below: whatever is kept of it must be a copy
            avg = x.clone() if avg is None else avg.mul_(ema).add_(x, alpha=1 - ema)
            history[i, 0] = loss.detach()
            if clean is not None:
                history[i, 1] = mse_to_psnr(torch.mean((x - clean) ** 2))
                p = mse_to_psnr(torch.mean((avg - clean) ** 2))  # 0-d: no sync
                history[i, 2] = p
                better = p > best_value
                best_value = torch.where(better, p, best_value)
                best_step = torch.where(better, torch.tensor(i + 1, device=device), best_step)
                best = avg.clone() if best is None else torch.where(better, avg, best)
            if loss_target is not None:  # first time the data term reaches the target (no sync)
                hit = (loss.detach() <= loss_target) & (target_step < 0)
                target_step = torch.where(hit, torch.tensor(i + 1, device=device), target_step)
                at_target = avg.clone() if at_target is None else torch.where(hit, avg, at_target)
        if i + 1 in keep_set:
            snapshots.append((i + 1, _copy_to_cpu(avg)))
            raw_snapshots.append((i + 1, _copy_to_cpu(x)))
        if progress and (i % 50 == 0 or i == iterations - 1):
            bar.set_postfix(loss=f"{loss.item():.2e}")
        if stop_below is not None and loss.item() <= stop_below:
            stopped_at = i + 1
            break
    seconds = time.perf_counter() - start
    hist = history[:stopped_at] if stopped_at > 0 else history
    hist = hist.cpu()
    bad = (~torch.isfinite(hist[:, 0])).nonzero()
    if len(bad):
        raise FloatingPointError(
            f"the DIP loss became {float(hist[int(bad[0]), 0])} at iteration {int(bad[0]) + 1} "
            f"of {iterations} (lower lr)"
        )
    result = FitResult(
        output=_copy_to_cpu(x),
        average=_copy_to_cpu(avg),
        loss=hist[:, 0].tolist(),
        snapshots=snapshots,
        raw_snapshots=raw_snapshots,
        seconds=seconds,
        stopped_at=stopped_at,
    )
    if clean is not None:
        result.psnr, result.psnr_average = hist[:, 1].tolist(), hist[:, 2].tolist()
        result.best_iteration, result.best_psnr, result.best = (
            int(best_step),
            float(best_value),
            _copy_to_cpu(best),
        )
    if loss_target is not None and int(target_step) > 0:
        result.loss_target_iteration = int(target_step)
        result.at_loss_target = _copy_to_cpu(at_target)
    logger.info("DIP %s: %d iterations in %.1f s", task, iterations, seconds)
    return result
