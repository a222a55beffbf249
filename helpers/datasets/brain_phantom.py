"""A seeded generator of BraTS-like brain slices from the MNI152 template shipped with nilearn.

Each image is an axial slice of the 1 mm MNI152 T1 template (a slice drawn from the central band
of the brain), mildly deformed by a random affine map and a smooth displacement field. Half of the
slices (``lesion_fraction``) receive a tumour-like lesion: an irregular bright core, optionally with
a dark necrotic centre, surrounded by a darker oedema ring, at a random position inside the brain,
of random size and intensity. The result is a "BraTS-like" set of any size, offline.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


@lru_cache(maxsize=1)
def template_slices() -> torch.Tensor:
    """Axial slices of the central brain band, ``(S, 1, L, L)`` float32 in [0, 1], cropped to the brain.

    Anterior is at the top of each image. Only slices whose brain area is at least 60 % of the
    largest slice's are kept.
    """
    from nilearn.datasets import load_mni152_template

    vol = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float32)
    vol = vol / np.percentile(vol[vol > 0], 99.5)
    area = (vol > 0.1).sum(axis=(0, 1))
    keep = np.flatnonzero(area >= 0.6 * area.max())
    slices = np.rot90(vol[:, :, keep], k=1, axes=(0, 1))  # (Y, X, S), anterior up
    slices = np.moveaxis(slices, -1, 0)  # (S, Y, X)
    ys, xs = np.nonzero((slices > 0.1).any(axis=0))  # bounding box of the brain, 4 px margin
    slices = slices[:, max(ys.min() - 4, 0) : ys.max() + 5, max(xs.min() - 4, 0) : xs.max() + 5]
    s, h, w = slices.shape
    side = max(h, w)
    out = np.zeros((s, side, side), dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    out[:, top : top + h, left : left + w] = slices
    return torch.from_numpy(np.clip(out, 0, 1))[:, None]


def _deform(images: torch.Tensor, rng: np.random.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random small affine maps plus a smooth displacement field, applied with ``grid_sample``."""
    n, _, h, w = images.shape
    angle = np.deg2rad(rng.uniform(-8, 8, n)) * strength
    scale = 1 + rng.uniform(-0.05, 0.05, n) * strength
    shift = rng.uniform(-0.03, 0.03, (n, 2)) * strength
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    theta = np.stack(
        [np.stack([cos, -sin, shift[:, 0]], 1), np.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(torch.from_numpy(theta).float(), (n, 1, h, w), align_corners=False)
    coarse = torch.from_numpy(rng.normal(0, 0.02 * strength, (n, 2, 4, 4))).float()
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    grid = grid + field.permute(0, 2, 3, 1)  # (N, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def add_lesions(
    images: torch.Tensor, has_lesion: np.ndarray, rng: np.random.Generator
) -> torch.Tensor:
    """Paint a tumour-like lesion (core + oedema ring) into the images where ``has_lesion``."""
    n, _, h, w = images.shape
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    out = images.clone()
    for i in np.flatnonzero(has_lesion):
        brain = images[i, 0] > 0.15
        # centre: a brain pixel far enough from the edge (eroded mask)
        inner = -F.max_pool2d(
            -brain.float()[None, None], kernel_size=2 * (h // 8) + 1, stride=1, padding=h // 8
        )[0, 0]
        ys, xs = torch.nonzero(inner > 0.5 if inner.any() else brain, as_tuple=True)
        k = int(rng.integers(len(ys)))
        cy, cx = float(ys[k]), float(xs[k])
        r_core = rng.uniform(0.05, 0.12) * h
        r_oed = r_core * rng.uniform(1.5, 2.2)
        theta = torch.atan2(yy - cy, xx - cx)
        wobble = torch.ones_like(theta)
        for harmonic in (2, 3, 4):
            wobble = wobble + rng.uniform(0, 0.12) * torch.cos(
                harmonic * theta + rng.uniform(0, 2 * math.pi)
            )
        dist = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / wobble
        edge = max(1.0, 0.015 * h)
        core = torch.sigmoid((r_core - dist) / edge) * brain
        oedema = torch.sigmoid((r_oed - dist) / edge) * brain * (1 - core)
        img = out[i, 0]
        img = img * (1 - oedema) + oedema * img * rng.uniform(0.45, 0.7)
        img = img * (1 - core) + core * rng.uniform(0.8, 1.0)
        if rng.random() < 0.5:  # dark necrotic centre
            necrosis = torch.sigmoid((0.5 * r_core - dist) / edge) * brain
            img = img * (1 - necrosis) + necrosis * rng.uniform(0.1, 0.3)
        out[i, 0] = img
    return out


def generate(
    n: int, size: int, *, seed: int = 0, lesion_fraction: float = 0.5, deform: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` BraTS-like slices of ``size × size`` and their lesion labels.

    Parameters
    ----------
    n, size : int
        Number of images and their side in pixels.
    seed : int
        The same seed gives the same images.
    lesion_fraction : float
        Share of slices (rounded) that receive a lesion, in ``[0, 1]``.
    deform : float
        Strength of the random deformation (0 = none).

    Returns
    -------
    images : torch.Tensor
        ``(n, 1, size, size)`` float32 in [0, 1].
    labels : torch.Tensor
        ``(n,)`` int64: 1 where a lesion was painted.
    """
    if not 0.0 <= lesion_fraction <= 1.0:
        raise ValueError(f"lesion_fraction must be in [0, 1], got {lesion_fraction}")
    rng = np.random.default_rng(seed)
    slices = template_slices()
    idx = torch.from_numpy(rng.integers(0, len(slices), n))
    images = F.interpolate(
        slices[idx], size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    if deform > 0:
        images = _deform(images, rng, deform)
    has_lesion = np.zeros(n, dtype=bool)
    has_lesion[rng.permutation(n)[: round(lesion_fraction * n)]] = True
    images = add_lesions(images, has_lesion, rng)
    return images.clamp(0, 1).contiguous(), torch.from_numpy(has_lesion.astype(np.int64))


def lesion_maps(
    n: int, size: int, *, seed: int = 0, lesion_fraction: float = 0.5, deform: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The slices of :func:`generate`, their labels, and where each lesion is.

    The phantom knows its lesions: the same seed with ``lesion_fraction=0`` gives the same slices
    without them (the random draws that place the lesions come after everything else), so their
    difference is the lesion itself.

    Returns
    -------
    images : Tensor ``(n, 1, size, size)`` in [0, 1], as :func:`generate` returns them.
    labels : Tensor ``(n,)`` int64, 1 where a lesion was painted.
    healthy : Tensor ``(n, 1, size, size)``: the same slices without any lesion.
    """
    images, labels = generate(n, size, seed=seed, lesion_fraction=lesion_fraction, deform=deform)
    healthy, _ = generate(n, size, seed=seed, lesion_fraction=0.0, deform=deform)
    same = (images == healthy).flatten(1).all(1)
    if bool((same != (labels == 0)).any()):  # the draw order this relies on has changed
        raise RuntimeError("brain_phantom.generate no longer draws lesions last; fix lesion_maps")
    return images, labels, healthy
