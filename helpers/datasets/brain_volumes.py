"""A seeded generator of 3-D brain volumes from the MNI152 template, and out-of-distribution
families in the spirit of the MOOD challenge.

In-distribution volumes (:func:`generate`) are the 1 mm MNI152 T1 template shipped with nilearn,
resampled to a cube, each with its own mild random affine map and smooth 3-D displacement field,
a smooth multiplicative bias field, a global intensity gain, Rician-like noise and — in
``lesion_fraction`` of them — a tumour-like lesion: an irregular bright core, sometimes with a
dark necrotic centre, inside a darker oedema shell (the 3-D counterpart of the 2-D slices of
:mod:`helpers.datasets.brain_phantom`).

Out-of-distribution volumes are in-distribution ones passed through :func:`corrupt`, one of
:data:`OOD_FAMILIES`: other contrast, global noise, blur, an intensity offset, missing slices, a
foreign object, a small local anomaly. Each family has a :data:`SCOPE`: ``"global"`` (every voxel
changes), ``"regional"`` (a slab or a body of a few thousand voxels) or ``"local"`` (a few dozen
voxels) — the scale that decides whether a whole-volume summary such as the intensity histogram
can see it (Frolova et al.).

References
----------
.. [1] D. Zimmerer et al., "MOOD 2020: A Public Benchmark for Out-of-Distribution Detection and
   Localization on Medical Images", IEEE TMI 41(10), 2022.
.. [2] D. Frolova, A. Vasiliuk, M. Belyaev, B. Shirokikh, "Solving Sample-Level
   Out-of-Distribution Detection on 3D Medical Images", arXiv:2212.06506 (2022).

Examples
--------
>>> from helpers.datasets import brain_volumes
>>> vols, labels = brain_volumes.generate(2, 24, seed=0)
>>> tuple(vols.shape), vols.min() >= 0, vols.max() <= 1
((2, 24, 24, 24), tensor(True), tensor(True))
>>> tuple(brain_volumes.corrupt(vols, "blur", seed=0).shape)
(2, 24, 24, 24)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .base import Volumes, check_n, check_size, to_cube

__all__ = ["OOD_FAMILIES", "SCOPE", "corrupt", "generate", "template_volume"]

OOD_FAMILIES: dict[str, str] = {
    "contrast": "another contrast: intensities inverted inside the head (T2-like: fluid bright)",
    "noise": "global noise: Rician-like noise of σ 0.05–0.10 (the in-distribution σ is 0.01–0.02)",
    "blur": "global blur: a 3-D Gaussian of σ 1–2 voxels",
    "intensity_shift": "an intensity offset of +0.10 to +0.20 on every voxel",
    "missing_slices": "a block of 10–25 % of the brain's axial slices set to zero",
    "foreign_object": "a bright rod (radius 4–6 %, length 50 % of the side) through the head",
    "local_anomaly": "a small ball (radius 4–7 % of the side) of uniformly random voxels",
}
"""The out-of-distribution families of :func:`corrupt`, with what each does."""

SCOPE: dict[str, str] = {
    "contrast": "global",
    "noise": "global",
    "blur": "global",
    "intensity_shift": "global",
    "missing_slices": "regional",
    "foreign_object": "regional",
    "local_anomaly": "local",
}
"""How much of a volume each family changes: ``global``, ``regional`` or ``local``."""


@lru_cache(maxsize=4)
def template_volume(size: int) -> torch.Tensor:
    """The MNI152 T1 template (1 mm, nilearn) as a ``(size, size, size)`` cube in ``[0, 1]``.

    Scaled by its 99.5th percentile inside the brain, reoriented to axial slices first (inferior
    to superior, anterior at the top of each slice), cropped to the brain and resampled
    (:func:`helpers.datasets.to_cube`). Cached per size; treat the result as read-only.
    """
    from nilearn.datasets import load_mni152_template

    vol = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float32)  # (X, Y, Z)
    vol = np.clip(vol / np.percentile(vol[vol > 0], 99.5), 0, 1)
    vol = vol.transpose(2, 1, 0)[:, ::-1, :]  # (Z, Y, X), anterior first along Y
    return to_cube(np.ascontiguousarray(vol), size)


def _coords(size: int) -> torch.Tensor:
    """Voxel coordinates ``(3, size, size, size)`` in index units, (depth, row, column)."""
    r = torch.arange(size, dtype=torch.float32)
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"))


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` from three small angles (radians) about the three axes."""
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _deform(volumes: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """A random small affine map and a smooth displacement field per volume (``grid_sample``)."""
    n, d, h, w = volumes.shape
    theta = np.zeros((n, 3, 4))
    for i in range(n):
        rot = _rotation(np.deg2rad(rng.uniform(-6, 6, 3)) * strength)
        scale = 1 + rng.uniform(-0.04, 0.04) * strength
        theta[i, :, :3] = rot / scale
        theta[i, :, 3] = rng.uniform(-0.03, 0.03, 3) * strength
    grid = F.affine_grid(torch.from_numpy(theta).float(), (n, 1, d, h, w), align_corners=False)
    coarse = torch.from_numpy(rng.normal(0, 0.02 * strength, (n, 3, 4, 4, 4))).float()
    field = F.interpolate(coarse, size=(d, h, w), mode="trilinear", align_corners=False)
    grid = grid + field.permute(0, 2, 3, 4, 1)  # (N, D, H, W, 3)
    out = F.grid_sample(
        volumes[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out[:, 0]


def _smooth_field(n: int, size: int, rng: np.random.Generator, grid: int = 3) -> torch.Tensor:
    """Smooth random fields ``(n, size, size, size)`` of unit scale (a coarse normal grid,
    interpolated)."""
    coarse = torch.from_numpy(rng.normal(0, 1, (n, 1, grid, grid, grid))).float()
    return F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=False)[:, 0]


def _brain_mask(volume: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Voxels of the head: above ``threshold`` after a 3×3×3 average (noise does not count)."""
    smooth = F.avg_pool3d(volume[None, None], 3, stride=1, padding=1)[0, 0]
    return smooth > threshold


def _erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion of a ``(D, H, W)`` mask by a cube of side ``2·radius + 1`` (separable)."""
    x = (~mask).float()[None, None]
    for kernel in ((2 * radius + 1, 1, 1), (1, 2 * radius + 1, 1), (1, 1, 2 * radius + 1)):
        pad = tuple(k // 2 for k in kernel)
        x = F.max_pool3d(x, kernel, stride=1, padding=pad)
    return x[0, 0] < 0.5


def _random_inside(mask: torch.Tensor, rng: np.random.Generator, erode: int) -> tuple[float, ...]:
    """A random voxel of ``mask`` at least ``erode`` voxels from its border (else any voxel)."""
    inner = _erode(mask, erode)
    where = torch.nonzero(inner) if bool(inner.any()) else torch.nonzero(mask)
    if len(where) == 0:  # an empty volume: its centre
        return tuple(float(s) / 2 for s in mask.shape)
    return tuple(float(v) for v in where[int(rng.integers(len(where)))])


def _lesion(volume: torch.Tensor, rng: np.random.Generator, coords: torch.Tensor) -> torch.Tensor:
    """Paint one tumour-like lesion (core, optional necrosis, oedema shell) into ``volume``."""
    size = volume.shape[0]
    brain = _brain_mask(volume, 0.15).float()
    centre = torch.tensor(_random_inside(brain > 0, rng, max(1, size // 8))).view(3, 1, 1, 1)
    axes = torch.from_numpy(rng.uniform(0.8, 1.25, 3)).float().view(3, 1, 1, 1)
    dist = torch.sqrt((((coords - centre) / axes) ** 2).sum(0))  # ellipsoidal distance
    dist = dist * (1 + 0.15 * _smooth_field(1, size, rng, grid=4)[0])  # irregular outline
    r_core = rng.uniform(0.04, 0.09) * size
    r_oedema = r_core * rng.uniform(1.5, 2.2)
    edge = max(0.7, 0.015 * size)
    core = torch.sigmoid((r_core - dist) / edge) * brain
    oedema = torch.sigmoid((r_oedema - dist) / edge) * brain * (1 - core)
    out = volume * (1 - oedema) + oedema * volume * rng.uniform(0.45, 0.7)
    out = out * (1 - core) + core * rng.uniform(0.8, 1.0)
    if rng.random() < 0.5:  # dark necrotic centre
        necrosis = torch.sigmoid((0.5 * r_core - dist) / edge) * brain
        out = out * (1 - necrosis) + necrosis * rng.uniform(0.1, 0.3)
    return out


def _rician(volumes: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Magnitude of the volume plus complex Gaussian noise of std ``sigma`` (per volume):
    ``|x + n₁ + i n₂|``, the noise of magnitude MR images."""
    s = sigma.view(-1, 1, 1, 1)
    n1 = torch.randn(volumes.shape, generator=generator) * s
    n2 = torch.randn(volumes.shape, generator=generator) * s
    return torch.sqrt((volumes + n1) ** 2 + n2**2)


def generate(
    n: int,
    size: int,
    *,
    seed: int = 0,
    lesion_fraction: float = 0.5,
    deform: float = 1.0,
    noise: tuple[float, float] = (0.01, 0.02),
    batch: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` in-distribution brain volumes of ``size³`` voxels and their lesion labels.

    Parameters
    ----------
    n, size : int
        Number of volumes and their side in voxels (8 ≤ size ≤ 160).
    seed : int
        The same seed gives the same volumes.
    lesion_fraction : float
        Share of volumes (rounded) with a lesion, in ``[0, 1]``.
    deform : float
        Strength of the random geometry (0 = every volume is the template).
    noise : (float, float)
        Range of the per-volume noise σ.
    batch : int
        Volumes deformed at once (memory only; the result does not depend on it).

    Returns
    -------
    volumes : Tensor ``(n, size, size, size)`` float32 in ``[0, 1]``
    labels : Tensor ``(n,)`` int64, 1 where a lesion was painted

    Raises
    ------
    ValueError
        ``lesion_fraction`` outside ``[0, 1]``, a negative ``deform``, a bad noise range or an
        out-of-range ``n`` or ``size``.
    """
    n = check_n(n, n, "brain volumes")
    size = check_size(size, size, 160, "brain volumes")
    if size < 8:
        raise ValueError(f"size must be at least 8 voxels for brain volumes, got {size}")
    if not 0.0 <= lesion_fraction <= 1.0:
        raise ValueError(f"lesion_fraction must be in [0, 1], got {lesion_fraction}")
    if deform < 0:
        raise ValueError(f"deform must be ≥ 0, got {deform}")
    if len(noise) != 2 or not 0 <= noise[0] <= noise[1]:
        raise ValueError(f"noise must be a range (low, high) with 0 ≤ low ≤ high, got {noise}")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    template = template_volume(size)
    coords = _coords(size)
    has_lesion = np.zeros(n, dtype=bool)
    has_lesion[rng.permutation(n)[: round(lesion_fraction * n)]] = True
    out = []
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        vols = template.expand(stop - start, -1, -1, -1).clone()
        if deform > 0:
            vols = _deform(vols, rng, deform)
        vols = torch.stack(
            [_lesion(v, rng, coords) if has_lesion[start + i] else v for i, v in enumerate(vols)]
        )
        bias = 1 + 0.05 * _smooth_field(stop - start, size, rng)  # MR bias field
        gain = torch.from_numpy(rng.uniform(0.85, 1.0, stop - start)).float().view(-1, 1, 1, 1)
        vols = vols * bias * gain
        sigma = torch.from_numpy(rng.uniform(*noise, stop - start)).float()
        out.append(_rician(vols, sigma, gen).clamp(0, 1))
    return torch.cat(out).contiguous(), torch.from_numpy(has_lesion.astype(np.int64))


def _gaussian_blur3d(volumes: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable 3-D Gaussian blur of ``(N, D, H, W)`` volumes (zero padding)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = volumes[:, None]
    for dim in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + dim] = len(k)
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - dim)] = pad[2 * (2 - dim) + 1] = radius
        x = F.conv3d(F.pad(x, pad), k.view(shape))
    return x[:, 0]


def _sphere(coords: torch.Tensor, centre: tuple[float, ...], radius: float) -> torch.Tensor:
    """A soft-edged ball of ``radius`` voxels around ``centre``, values in [0, 1]."""
    c = torch.tensor(centre).view(3, 1, 1, 1)
    dist = torch.sqrt(((coords - c) ** 2).sum(0))
    ball = torch.sigmoid((radius - dist) / 0.3)
    return torch.where(ball > 0.05, ball, torch.zeros_like(ball))  # an edge under one voxel wide


def _rod(
    coords: torch.Tensor,
    centre: tuple[float, ...],
    direction: np.ndarray,
    radius: float,
    length: float,
) -> torch.Tensor:
    """A soft-edged cylinder of ``radius`` and ``length`` voxels along ``direction``."""
    c = torch.tensor(centre).view(3, 1, 1, 1)
    u = torch.from_numpy(direction / np.linalg.norm(direction)).float().view(3, 1, 1, 1)
    rel = coords - c
    along = (rel * u).sum(0)
    across = torch.sqrt(((rel - along * u) ** 2).sum(0))
    rod = torch.sigmoid((radius - across) / 0.3) * torch.sigmoid((length / 2 - along.abs()) / 0.3)
    return torch.where(rod > 0.05, rod, torch.zeros_like(rod))  # an edge under one voxel wide


def corrupt(
    volumes: torch.Tensor, family: str, *, seed: int = 0, strength: float = 1.0
) -> torch.Tensor:
    """Out-of-distribution versions of ``volumes``: one family of :data:`OOD_FAMILIES`.

    Each volume gets its own random strength and position, drawn from ``seed``.

    Parameters
    ----------
    volumes : Tensor ``(N, D, H, W)`` in ``[0, 1]``
        In-distribution volumes (:func:`generate` or :func:`helpers.datasets.load_volumes`).
    family : str
        A key of :data:`OOD_FAMILIES`.
    seed : int
        Seed of the random draws.
    strength : float
        Multiplies the size of the change (σ of the noise and of the blur, the offset, the
        share of missing slices, the radii); 1 is the documented range.

    Returns
    -------
    Tensor ``(N, D, H, W)`` in ``[0, 1]``

    Raises
    ------
    KeyError
        Unknown family (the message lists them).
    ValueError
        Volumes that are not ``(N, D, H, W)``, empty, or hold NaN; ``strength ≤ 0``.
    """
    if family not in OOD_FAMILIES:
        raise KeyError(f"unknown OOD family {family!r}; families: {', '.join(OOD_FAMILIES)}")
    if not isinstance(volumes, torch.Tensor) or volumes.ndim != 4:
        got = tuple(volumes.shape) if isinstance(volumes, torch.Tensor) else type(volumes).__name__
        raise ValueError(f"volumes must be an (N, D, H, W) tensor, got {got}")
    if volumes.shape[0] == 0:
        raise ValueError("volumes is empty (N = 0)")
    if torch.isnan(volumes).any():
        raise ValueError(f"volumes hold {int(torch.isnan(volumes).sum())} NaN voxels")
    if not strength > 0:
        raise ValueError(f"strength must be > 0, got {strength}")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    x = volumes.float()
    n, d, h, w = x.shape
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if family == "contrast":
        mask = torch.stack([_brain_mask(v) for v in x]).float()
        return (
            mask * (1 - x) * torch.from_numpy(rng.uniform(0.8, 1.0, (n, 1, 1, 1))).float()
        ).clamp(0, 1)
    if family == "noise":
        sigma = torch.from_numpy(rng.uniform(0.05, 0.10, n) * strength).float()
        return _rician(x, sigma, gen).clamp(0, 1)
    if family == "blur":
        return torch.cat([_gaussian_blur3d(v[None], u(1.0, 2.0) * strength) for v in x]).clamp(0, 1)
    if family == "intensity_shift":
        offset = torch.from_numpy(rng.uniform(0.10, 0.20, (n, 1, 1, 1)) * strength).float()
        return (x + offset).clamp(0, 1)
    out = x.clone()
    coords = _coords(d) if d == h == w else None
    for i in range(n):
        mask = _brain_mask(x[i])
        if family == "missing_slices":
            zs = torch.nonzero(mask.any(dim=(1, 2))).flatten()
            lo, hi = (int(zs.min()), int(zs.max()) + 1) if len(zs) else (0, d)
            count = max(1, round(min(1.0, u(0.10, 0.25) * strength) * (hi - lo)))
            start = int(rng.integers(lo, max(lo + 1, hi - count + 1)))
            out[i, start : start + count] = 0
            continue
        if coords is None:
            raise ValueError(f"{family!r} needs cubic volumes, got {d}×{h}×{w}")
        if family == "foreign_object":
            rod = _rod(coords, _random_inside(mask, rng, 0), rng.normal(size=3),
                       u(0.04, 0.06) * d * strength, 0.5 * d * strength)  # fmt: skip
            out[i] = x[i] * (1 - rod) + rod * u(0.9, 1.0)
        else:  # local_anomaly
            ball = _sphere(coords, _random_inside(mask, rng, 3), u(0.04, 0.07) * d * strength)
            out[i] = x[i] * (1 - ball) + ball * torch.rand(x[i].shape, generator=gen)
    return out.clamp(0, 1)


def load(n, size, seed, root, *, lesion_fraction: float = 0.5, deform: float = 1.0):
    """The ``"brain"`` volumes of :func:`helpers.datasets.load_volumes` (default 32 of 48³)."""
    n = check_n(n, 32, "brain volumes")
    size = check_size(size, 48, 160, "brain volumes")
    volumes, labels = generate(n, size, seed=seed, lesion_fraction=lesion_fraction, deform=deform)
    return Volumes(
        volumes,
        labels,
        f"{n} synthetic {size}³ brain volumes from the MNI152 T1 template (nilearn): mild random "
        "deformation, bias field, gain and Rician-like noise; label 1 = a tumour-like lesion",
        class_names=("healthy", "lesion"),
    )
