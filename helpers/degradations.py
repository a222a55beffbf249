"""Degradations: how a clean image becomes the noisy, low-resolution or incomplete one we observe.

The forward models of the restoration tasks of notebook 01 (and of every later notebook that
degrades an image):

* :func:`add_noise` — additive white Gaussian noise of one level σ;
* :func:`lanczos_kernel` and :class:`LanczosDownsampler` — the differentiable downsampler ``d``
  of super-resolution (Deep Image Prior's ``lanczos2`` kernel, phase 0.5);
* :func:`random_mask`, :func:`text_mask` — missing pixels for inpainting;
* :func:`shuffle_pixels` — the same pixels in a random order (Fig. 2 of Deep Image Prior).

References
----------
Ulyanov, D., Vedaldi, A., Lempitsky, V. "Deep Image Prior." CVPR 2018.

Examples
--------
>>> import torch
>>> from helpers import degradations
>>> down = degradations.LanczosDownsampler(4, channels=1)
>>> tuple(down(torch.rand(1, 1, 32, 32)).shape)
(1, 1, 8, 8)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_floating, check_int, check_number, check_tensor


def check_image(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"{name} must have shape (1, C, H, W), got {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------
# the Lanczos downsampler


def lanczos_kernel(factor: int, *, support: int = 2) -> torch.Tensor:
    """The separable Lanczos kernel used for downsampling by ``factor``.

    Weight at distance ``d`` (in low-resolution pixels) is ``sinc(d) · sinc(d / support)``,
    normalised to sum 1, centred on the centre of a ``factor × factor`` block: for an even factor
    that centre falls between two pixels (phase 0.5, ``d = (k + 0.5) / factor``, an even width
    ``2 · support · factor``, as the reference code); for an odd factor it is a pixel, so the
    kernel has the odd width ``2 · support · factor + 1`` (``d = k / factor``). Either way
    :class:`LanczosDownsampler` maps ``H`` to exactly ``H / factor``.

    Parameters
    ----------
    factor : int
        Downsampling factor (≥ 2).
    support : int
        Lobes of the window: 2 (``lanczos2``, the reference code's choice) or 3 (PIL's ``LANCZOS``).

    Returns
    -------
    Tensor
        ``(w, w)`` float64 with ``w = 2 · support · factor`` (``+ 1`` for odd factors), sums to 1.

    References
    ----------
    DmitryUlyanov/deep-image-prior, ``models/downsampler.py`` (``get_kernel``).

    Examples
    --------
    >>> k = lanczos_kernel(4)
    >>> tuple(k.shape), round(float(k.sum()), 6)
    ((16, 16), 1.0)
    """
    if not isinstance(factor, int) or isinstance(factor, bool) or factor < 2:
        raise ValueError(f"factor must be an int ≥ 2, got {factor!r}")
    if support not in (2, 3):
        raise ValueError(f"support must be 2 or 3, got {support!r}")
    width = 2 * support * factor + factor % 2  # odd factors: centred on a pixel
    d = (np.arange(width) - (width - 1) / 2) / factor  # (k + 0.5) / factor or k / factor
    w1 = np.sinc(d) * np.sinc(d / support)
    k = np.outer(w1, w1)
    return torch.from_numpy(k / k.sum())


class LanczosDownsampler(nn.Module):
    """Differentiable downsampling by an integer factor: replicate-pad, Lanczos blur, stride.

    Parameters
    ----------
    factor : int
        Downsampling factor; the input height and width must be multiples of it.
    channels : int
        Number of image channels (the kernel is applied to each channel separately).
    support : int
        2 (``lanczos2``, default, as in the reference code) or 3 (as PIL's ``LANCZOS``).

    Examples
    --------
    >>> d = LanczosDownsampler(2, channels=3)
    >>> tuple(d(torch.rand(1, 3, 16, 16)).shape)
    (1, 3, 8, 8)
    """

    def __init__(self, factor: int, *, channels: int = 3, support: int = 2) -> None:
        super().__init__()
        kernel = lanczos_kernel(factor, support=support).float()
        check_int(channels, "channels", minimum=1)
        self.factor = factor
        self.channels = channels
        self.pad = (kernel.shape[0] - factor) // 2  # exact: width − factor is even
        self.register_buffer("weight", kernel.expand(channels, 1, *kernel.shape).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", ndim=4, floating=True, layout="(B, C, H, W)")
        h, w = x.shape[-2:]
        if h < 1 or w < 1:
            raise ValueError(f"image size {h}×{w} is empty")
        if h % self.factor or w % self.factor:
            raise ValueError(f"image size {h}×{w} is not divisible by the factor {self.factor}")
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        x = F.pad(x, (self.pad,) * 4, mode="replicate")  # (B, C, H + 2p, W + 2p)
        return F.conv2d(
            x, self.weight, stride=self.factor, groups=self.channels
        )  # (B, C, H/f, W/f)


# --------------------------------------------------------------------------------------------
# degradations


def add_noise(
    image: torch.Tensor, sigma: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``image + N(0, sigma²)``, not clipped (as in the paper's denoising experiments).

    Parameters
    ----------
    image : Tensor
        Any shape, values in [0, 1].
    sigma : float
        Noise standard deviation in the same units (σ = 25/255 in the paper).
    generator : torch.Generator, optional
        Source of the noise (CPU generator; the noise is drawn on the CPU).
    """
    check_number(sigma, "sigma", low=0)
    check_tensor(image, "image")
    check_floating(
        image, "image", "convert integer images to [0, 1] first, e.g. image.float() / 255"
    )
    noise = torch.randn(image.shape, generator=generator, dtype=torch.float32)
    return image + sigma * noise.to(image.device)


def random_mask(
    shape: tuple[int, int], fraction_missing: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A ``(1, 1, H, W)`` mask with 1 = known pixel; each pixel missing with the given probability."""
    if not 0 <= fraction_missing < 1:
        raise ValueError(f"fraction_missing must be in [0, 1), got {fraction_missing}")
    if not isinstance(shape, tuple | list) or len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {shape!r}")
    for name, side in zip(("H", "W"), shape, strict=True):
        check_int(side, f"mask {name}", minimum=1)
    u = torch.rand((1, 1, *shape), generator=generator)
    return (u >= fraction_missing).float()


def text_mask(
    size: int, *, text: str = "Deep\nImage\nPrior", font_size: int | None = None, stroke: int = 0
) -> torch.Tensor:
    """A ``(1, 1, size, size)`` mask with 1 = known pixel and 0 under large printed text.

    Parameters
    ----------
    size : int
        Height and width in pixels.
    text : str
        Lines of text written over the image.
    font_size : int, optional
        Pixel height of the letters (default ``size // 5``).
    stroke : int
        Extra stroke width in pixels (thicker letters).
    """
    from PIL import Image, ImageDraw, ImageFont

    check_int(size, "size", minimum=16)
    check_int(font_size, "font_size", minimum=1, none_ok=True)
    check_int(stroke, "stroke", minimum=0)
    font_size = max(size // 5, 8) if font_size is None else font_size
    canvas = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=font_size)
    box = draw.multiline_textbbox((0, 0), text, font=font, stroke_width=stroke, align="center")
    left = (size - (box[2] - box[0])) / 2 - box[0]
    top = (size - (box[3] - box[1])) / 2 - box[1]
    draw.multiline_text((left, top), text, fill=0, font=font, stroke_width=stroke, align="center")
    mask = np.asarray(canvas, dtype=np.float32) > 127
    return torch.from_numpy(mask.astype(np.float32))[None, None]


def shuffle_pixels(
    image: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The same pixels in a random spatial order (same permutation for every channel)."""
    check_image(image, "image")
    _, c, h, w = image.shape
    perm = torch.randperm(h * w, generator=generator).to(image.device)
    return image.reshape(1, c, h * w)[..., perm].reshape(1, c, h, w)
