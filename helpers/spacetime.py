"""Spacetime patches: a video cut into tubelets, the tokens of a video transformer (ViViT, Sora).

A video ``(B, C, T, H, W)`` is cut into non-overlapping tubelets of ``p_t × p_h × p_w`` voxels
(:func:`patchify`, exactly inverted by :func:`unpatchify`); each tubelet is mapped linearly to a
``D``-dimensional token (:class:`TubeletEmbed`, a ``Conv3d`` with kernel = stride = the tubelet,
as in ViViT's "tubelet embedding"). OpenAI's Sora report describes the same step applied to the
latent of a video autoencoder: "spacetime patches" as the tokens of a diffusion transformer,
which lets one model take any duration, resolution and aspect ratio.

The number of tokens is ``N = (T/p_t)·(H/p_h)·(W/p_w)``: it grows with frames *times* pixels,
and dense self-attention over them costs ``O(N²·d)`` (notebook 02), so doubling both the frame
count and the side of the frame multiplies ``N`` by 8 and attention by 64
(:func:`token_count`, :func:`attention_flops`).

:func:`sliding_video` makes a short seeded test video: a window gliding over a still image, as a
camera panning across a slide.

References
----------
.. [1] A. Arnab, M. Dehghani, G. Heigold, C. Sun, M. Lučić, C. Schmid, "ViViT: A Video Vision
   Transformer", ICCV 2021 (tubelet embedding).
.. [2] T. Brooks, B. Peebles et al., "Video generation models as world simulators", OpenAI
   technical report, 2024 (Sora: spacetime patches of a compressed latent video).
.. [3] A. Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021.

Examples
--------
>>> import torch
>>> from helpers import spacetime
>>> video = torch.rand(1, 3, 8, 32, 32)                      # (B, C, T, H, W)
>>> tokens = spacetime.patchify(video, (2, 8, 8))
>>> tuple(tokens.shape), spacetime.token_count((8, 32, 32), (2, 8, 8))
((1, 64, 384), 64)
>>> torch.equal(spacetime.unpatchify(tokens, (2, 8, 8), (8, 32, 32)), video)
True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "TubeletEmbed",
    "attention_flops",
    "patchify",
    "sliding_video",
    "token_count",
    "unpatchify",
]

Triple = tuple[int, int, int]


def _triple(value: int | tuple[int, int, int], name: str) -> Triple:
    triple = (value,) * 3 if isinstance(value, int) else tuple(value)
    if len(triple) != 3 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in triple
    ):
        raise ValueError(f"{name} must be a positive int or three of them (t, h, w), got {value!r}")
    return triple  # type: ignore[return-value]


def _check_divisible(size: Triple, patch: Triple) -> None:
    bad = [f"{axis} {s} by {p}" for axis, s, p in zip("THW", size, patch, strict=True) if s % p]
    if bad:
        raise ValueError(
            f"video of T×H×W = {size[0]}×{size[1]}×{size[2]} is not divisible by the tubelet "
            f"{patch[0]}×{patch[1]}×{patch[2]} ({', '.join(bad)}): crop or pad the video"
        )


def token_count(size: tuple[int, int, int], patch: int | tuple[int, int, int]) -> int:
    """Number of spacetime tokens ``N = (T/p_t)·(H/p_h)·(W/p_w)`` of a ``T × H × W`` video.

    Raises
    ------
    ValueError
        When a side is not divisible by the tubelet.

    Examples
    --------
    >>> token_count((16, 64, 64), (2, 8, 8)), token_count((1, 64, 64), (1, 8, 8))
    (512, 64)
    """
    t, h, w = _triple(size, "size")
    pt, ph, pw = _triple(patch, "patch")
    _check_divisible((t, h, w), (pt, ph, pw))
    return (t // pt) * (h // ph) * (w // pw)


def attention_flops(n_tokens: int, dim: int, *, layers: int = 1) -> int:
    """Floating-point operations of dense self-attention's two matrix products, ``4·N²·d``.

    ``QKᵀ`` and ``softmax(·)V`` are each ``N²·d`` multiply–adds (2 flops each), per layer; the
    linear maps (``O(N·d²)``) are left out: they grow only linearly with ``N``.

    Examples
    --------
    >>> attention_flops(2, 3)
    48
    """
    for name, v in (("n_tokens", n_tokens), ("dim", dim), ("layers", layers)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return 4 * n_tokens * n_tokens * dim * layers


def patchify(video: torch.Tensor, patch: int | tuple[int, int, int]) -> torch.Tensor:
    """Cut videos into tubelets, flattened in (time, row, column) raster order.

    Parameters
    ----------
    video : Tensor ``(B, C, T, H, W)``
        ``T, H, W`` divisible by the tubelet.
    patch : int or (int, int, int)
        The tubelet ``(p_t, p_h, p_w)``.

    Returns
    -------
    Tensor ``(B, N, C·p_t·p_h·p_w)``
        ``N = (T/p_t)(H/p_h)(W/p_w)`` tokens; each laid out as ``(C, p_t, p_h, p_w)``, the order
        of a ``Conv3d`` kernel (so :meth:`TubeletEmbed.as_linear` applies to it).
    """
    if not isinstance(video, torch.Tensor) or video.ndim != 5:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"video must be a (B, C, T, H, W) tensor, got {got}")
    pt, ph, pw = _triple(patch, "patch")
    b, c, t, h, w = video.shape
    _check_divisible((t, h, w), (pt, ph, pw))
    x = video.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw)  # (B, C, T', pt, H', ph, W', pw)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, pt, ph, pw)
    return x.reshape(b, (t // pt) * (h // ph) * (w // pw), c * pt * ph * pw)  # (B, N, C·pt·ph·pw)


def unpatchify(
    tokens: torch.Tensor, patch: int | tuple[int, int, int], size: tuple[int, int, int]
) -> torch.Tensor:
    """Exact inverse of :func:`patchify`.

    Parameters
    ----------
    tokens : Tensor ``(B, N, C·p_t·p_h·p_w)``
    patch : int or (int, int, int)
    size : (int, int, int)
        ``(T, H, W)`` of the video.

    Returns
    -------
    Tensor ``(B, C, T, H, W)``
    """
    pt, ph, pw = _triple(patch, "patch")
    t, h, w = _triple(size, "size")
    _check_divisible((t, h, w), (pt, ph, pw))
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 3:
        got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be a (B, N, C·pt·ph·pw) tensor, got {got}")
    b, n, f = tokens.shape
    gt, gh, gw = t // pt, h // ph, w // pw
    if n != gt * gh * gw or f % (pt * ph * pw):
        raise ValueError(
            f"tokens of shape {tuple(tokens.shape)} do not fit a {t}×{h}×{w} video with tubelet "
            f"{pt}×{ph}×{pw}: expected {gt * gh * gw} tokens of a multiple of {pt * ph * pw} values"
        )
    c = f // (pt * ph * pw)
    x = tokens.reshape(b, gt, gh, gw, c, pt, ph, pw)  # (B, T', H', W', C, pt, ph, pw)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', pt, H', ph, W', pw)
    return x.reshape(b, c, t, h, w)


class TubeletEmbed(nn.Module):
    """Tubelet embedding: a ``Conv3d`` with kernel = stride = the tubelet, then flatten.

    The 3-D analogue of :class:`helpers.vit.PatchEmbed`: the same linear map is applied to every
    tubelet, so it equals :func:`patchify` followed by :meth:`as_linear`.

    Parameters
    ----------
    patch : int or (int, int, int)
        ``(p_t, p_h, p_w)``.
    in_channels : int
        ``C`` (3 for RGB frames, 4 for the latent of Stable Diffusion's autoencoder).
    embed_dim : int
        ``D``.

    Examples
    --------
    >>> emb = TubeletEmbed((2, 8, 8), 3, 32)
    >>> tuple(emb(torch.rand(2, 3, 4, 16, 16)).shape)
    (2, 8, 32)
    """

    def __init__(self, patch: int | tuple[int, int, int], in_channels: int, embed_dim: int):
        super().__init__()
        self.patch = _triple(patch, "patch")
        for name, v in (("in_channels", in_channels), ("embed_dim", embed_dim)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.proj = nn.Conv3d(in_channels, embed_dim, kernel_size=self.patch, stride=self.patch)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 5 or video.shape[1] != self.proj.in_channels:
            raise ValueError(
                f"expected (B, {self.proj.in_channels}, T, H, W) videos, got {tuple(video.shape)}"
            )
        _check_divisible(tuple(video.shape[2:]), self.patch)  # type: ignore[arg-type]
        x = self.proj(video)  # (B, D, T', H', W')
        return x.flatten(2).transpose(1, 2)  # (B, N, D)

    def as_linear(self) -> nn.Linear:
        """The same map as a ``Linear`` layer acting on :func:`patchify` tokens."""
        d = self.proj.out_channels
        linear = nn.Linear(self.proj.weight[0].numel(), d)
        with torch.no_grad():
            linear.weight.copy_(self.proj.weight.reshape(d, -1))  # (D, C·pt·ph·pw)
            linear.bias.copy_(self.proj.bias)
        return linear


def sliding_video(
    image: torch.Tensor | np.ndarray,
    *,
    frames: int,
    size: int,
    speed: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A short video of a ``size × size`` window gliding over ``image`` (a camera panning a slide).

    The start point and the direction are drawn from ``generator``; the window moves ``speed``
    pixels per frame in a straight line (rounded to whole pixels), turning back at the borders.

    Parameters
    ----------
    image : Tensor ``(C, H, W)`` in ``[0, 1]`` or array ``(H, W[, C])``
    frames : int
        ``T``.
    size : int
        Side of the window (≤ the image's height and width).
    speed : float
        Pixels per frame.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor ``(1, C, T, size, size)``: one video, batch first, as :func:`patchify` expects.
    """
    x = torch.as_tensor(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if x.ndim == 2:
        x = x[None]
    elif x.ndim == 3 and isinstance(image, np.ndarray):
        x = x.permute(2, 0, 1)  # (H, W, C) → (C, H, W)
    if x.ndim != 3:
        raise ValueError(f"image must be (C, H, W) or (H, W[, C]), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float() / 255
    _, h, w = x.shape
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive int, got {frames!r}")
    if not isinstance(size, int) or not 1 <= size <= min(h, w):
        raise ValueError(
            f"size must be an int in [1, {min(h, w)}] for a {h}×{w} image, got {size!r}"
        )
    if not speed >= 0:
        raise ValueError(f"speed must be ≥ 0, got {speed!r}")
    r = torch.rand(3, generator=generator)
    start = torch.stack([r[0] * (h - size), r[1] * (w - size)])
    angle = float(r[2]) * 2 * np.pi
    step = speed * torch.tensor([np.sin(angle), np.cos(angle)])
    out = []
    for k in range(frames):
        pos = start + k * step
        top, left = (
            int(round(_bounce(float(p), float(m))))
            for p, m in zip(pos, (h - size, w - size), strict=True)
        )
        out.append(x[:, top : top + size, left : left + size])
    return torch.stack(out, dim=1)[None].float().contiguous()  # (1, C, T, size, size)


def _bounce(p: float, limit: float) -> float:
    """Fold a coordinate into ``[0, limit]`` by reflecting at the ends (a bouncing camera)."""
    if limit <= 0:
        return 0.0
    p = abs(p) % (2 * limit)
    return 2 * limit - p if p > limit else p
