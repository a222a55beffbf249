"""What every loader returns: :class:`Dataset`, and the conversions the loaders share.

``images`` are a float32 tensor ``(N, C, H, W)`` with values in ``[0, 1]``; :func:`to_tensor`
turns arrays as image libraries give them into that layout, :func:`resize` and
:func:`center_square` bring them to a common size. Whole 3-D scans come as :class:`Volumes`
``(N, D, H, W)``, brought to a common cube by :func:`to_cube`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Dataset",
    "Volumes",
    "center_square",
    "check_n",
    "check_size",
    "resize",
    "to_cube",
    "to_tensor",
]


@dataclass
class Dataset:
    """Images with optional labels.

    Attributes
    ----------
    images : torch.Tensor
        ``(N, C, H, W)`` float32 in ``[0, 1]``.
    labels : torch.Tensor or None
        ``(N,)`` int64 class indices, or ``None``.
    description : str
        One sentence saying what the images are and where they come from.
    name : str
        The name passed to :func:`load`.
    class_names : tuple of str
        Names of the label values (empty when unlabelled).
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    description: str
    name: str = ""
    class_names: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        lab = "unlabelled" if self.labels is None else f"{len(self.class_names) or 'int'} classes"
        return f"Dataset({self.name!r}: {n} images, {c}×{h}×{w}, {lab})"


@dataclass
class Volumes:
    """3-D scans with optional labels (what :func:`helpers.datasets.load_volumes` returns).

    Attributes
    ----------
    volumes : torch.Tensor
        ``(N, D, H, W)`` float32 in ``[0, 1]``: ``D`` axial slices from inferior to superior,
        each ``H × W`` with anterior at the top (the orientation of the 2-D slices).
    labels : torch.Tensor or None
        ``(N,)`` int64 class indices, or ``None``.
    description : str
        One sentence saying what the volumes are and where they come from.
    name : str
        The name passed to :func:`helpers.datasets.load_volumes`.
    class_names : tuple of str
        Names of the label values (empty when unlabelled).
    """

    volumes: torch.Tensor
    labels: torch.Tensor | None
    description: str
    name: str = ""
    class_names: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.volumes.shape[0])

    def __repr__(self) -> str:
        n, d, h, w = self.volumes.shape
        lab = "unlabelled" if self.labels is None else f"{len(self.class_names) or 'int'} classes"
        return f"Volumes({self.name!r}: {n} volumes, {d}×{h}×{w}, {lab})"


# --------------------------------------------------------------------------------------------
# small utilities shared by the loaders


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W) / (H, W, C) / (N, H, W) / (N, H, W, C) array → float32 tensor (N, C, H, W) in [0, 1].

    Unsigned integers are divided by their type's maximum (255 for ``uint8``, 65535 for
    ``uint16``), booleans give 0 and 1, floats must already lie in ``[0, 1]``. A fourth channel is
    alpha: the image is composited over white, as a viewer shows it.

    Raises
    ------
    TypeError
        Signed integers (their range is unknown: scale them to ``[0, 1]`` floats first).
    ValueError
        NaN or Inf, or floats outside ``[0, 1]``.
    """
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.unsignedinteger):
        a = a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"image holds {int((~np.isfinite(a)).sum())} NaN or Inf value(s)")
        if a.size and (a.min() < -1e-6 or a.max() > 1 + 1e-6):
            raise ValueError(
                f"float images must lie in [0, 1], got values from {a.min():.4g} to {a.max():.4g}"
            )
    else:
        raise TypeError(
            f"expected an unsigned-integer, boolean or float image, got dtype {a.dtype}; scale it "
            "to floats in [0, 1] first"
        )
    if a.ndim == 2:
        a = a[None, :, :, None]
    elif (
        a.ndim == 3
        and a.shape[-1] in (1, 3, 4)
        and a.shape[0] not in (1,)
        and a.shape[-1] != a.shape[-2]
    ):
        a = a[None]
    elif a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise ValueError(f"expected (H, W), (H, W, C), (N, H, W) or (N, H, W, C), got {a.shape}")
    if a.shape[-1] == 4:  # RGBA over white
        a = a[..., :3] * a[..., 3:] + (1 - a[..., 3:])
    t = torch.from_numpy(np.ascontiguousarray(a[..., :3])).permute(0, 3, 1, 2)
    return t.clamp(0, 1).contiguous()


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` images to ``size × size`` (antialiased bilinear), values kept in [0, 1]."""
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return out.clamp(0, 1)


def center_square(images: torch.Tensor) -> torch.Tensor:
    """Crop ``(N, C, H, W)`` images to their central square."""
    h, w = images.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return images[..., top : top + s, left : left + s]


def check_size(size: int | None, default: int, maximum: int, name: str) -> int:
    """``size`` (``None``: ``default``) as an int in ``[4, maximum]``; ``0`` is an error, never
    the default."""
    if size is None:
        return default
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"size must be an int, got {type(size).__name__}")
    if not 4 <= size <= maximum:
        raise ValueError(f"size {size} is out of range for {name!r}: expected 4 ≤ size ≤ {maximum}")
    return size


def check_n(n: int | None, default: int, name: str, maximum: int | None = None) -> int:
    """``n`` (``None``: ``default``) as an int in ``[1, maximum]``."""
    if n is None:
        return default
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if maximum is not None and n > maximum:
        raise ValueError(f"n={n} is more than {name!r} holds ({maximum} images)")
    return n


def to_cube(
    volume: np.ndarray, size: int, *, threshold: float = 0.05, margin: int = 2
) -> torch.Tensor:
    """Crop a ``(D, H, W)`` volume in ``[0, 1]`` to the box of its voxels above ``threshold``
    (plus ``margin`` voxels), pad it to a cube around its centre and resample it to
    ``size × size × size`` (area averaging when shrinking, which is anti-aliased; trilinear
    interpolation when enlarging).

    Returns a float32 tensor ``(size, size, size)`` in ``[0, 1]``.
    """
    v = np.asarray(volume, dtype=np.float32)
    if v.ndim != 3:
        raise ValueError(f"expected a (D, H, W) volume, got shape {v.shape}")
    inside = np.argwhere(v > threshold)
    if len(inside):
        lo = np.maximum(inside.min(0) - margin, 0)
        hi = np.minimum(inside.max(0) + margin + 1, v.shape)
        v = v[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    side = max(v.shape)
    cube = np.zeros((side,) * 3, dtype=np.float32)
    starts = [(side - s) // 2 for s in v.shape]
    cube[tuple(slice(a, a + s) for a, s in zip(starts, v.shape, strict=True))] = v
    out = torch.from_numpy(cube)[None, None]
    if side > size:
        out = F.interpolate(out, size=(size,) * 3, mode="area")
    elif side < size:
        out = F.interpolate(out, size=(size,) * 3, mode="trilinear", align_corners=False)
    return out[0, 0].clamp(0, 1).contiguous()
