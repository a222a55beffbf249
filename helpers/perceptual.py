"""Perceptual similarity: synthetic two-alternative (2AFC) triplets with a known answer, SSIM on
batches, LPIPS-style feature distances, and a DreamSim-style ensemble of encoders.

A **triplet** is a reference patch, a variant that keeps its content but moves its pixels (a
shift, a crop-and-resize, a stain change, JPEG, blur: :data:`FAMILIES`) and a *different* patch
chosen to have the reference's low-level statistics (colour means and spreads, edge density). A
measure of similarity answers the triplet correctly when it calls the variant closer; its 2AFC
accuracy is the share of triplets answered correctly (:func:`two_afc`).

**LPIPS** (Zhang et al. 2018) compares the feature maps of a network layer by layer: each
position's channel vector is scaled to unit length, the squared differences are averaged over
positions and summed over layers (:func:`lpips_distance`; the paper also learns a weight per
channel, which we leave at 1). **DreamSim** (Fu et al. 2023) concatenates the embeddings of
several encoders, each normalised, and calls ``1 − cos`` of the concatenations the distance; it
tunes the encoders on synthetic triplets. Our :class:`Ensemble` keeps the encoders frozen and
tunes a small head instead: one weight per block of the concatenated features (an encoder's
normalised embedding, or one channel of an LPIPS layer), so that the distance is the squared
distance of the weighted concatenations, ``Σ_k w_k ‖a_k − b_k‖²`` (``2(1 − cos)`` per
unit-length block); :func:`fit_ensemble` tunes the weights on training triplets.

References
----------
.. [1] R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The Unreasonable Effectiveness
   of Deep Features as a Perceptual Metric", CVPR 2018 (LPIPS, 2AFC).
.. [2] S. Fu, N. Tamir, S. Sundaram, L. Chai, R. Zhang, T. Dekel, P. Isola, "DreamSim: Learning
   New Dimensions of Human Visual Similarity using Synthetic Data", NeurIPS 2023.
.. [3] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
   error visibility to structural similarity", IEEE TIP 13(4), 2004 (SSIM).

Examples
--------
>>> import numpy as np
>>> from helpers import perceptual
>>> image = np.random.default_rng(0).random((96, 96, 3))
>>> t = perceptual.make_triplets(image, n_per_family=2, size=16, seed=0)
>>> len(t), tuple(t.reference.shape), t.families()
(10, (10, 3, 16, 16), ('shift', 'crop_resize', 'stain_jitter', 'jpeg', 'blur'))
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "EDITS",
    "FAMILIES",
    "Ensemble",
    "Triplets",
    "cosine_distances",
    "edit",
    "fit_ensemble",
    "layer_features",
    "load_lpips",
    "low_level_statistics",
    "lpips_blocks",
    "lpips_distance",
    "make_triplets",
    "margin_for",
    "recall_at_1",
    "ssim",
    "two_afc",
]

EDITS: dict[str, str] = {
    "shift": "the crop moved by 1/8–1/4 of its side along both axes",
    "crop_resize": "a crop of 60–80 % of the side, resized back (a zoom of 1.25–1.7×)",
    "stain_jitter": "haematoxylin and DAB stain amounts scaled by 0.6–1.5, a little eosin added",
    "jpeg": "JPEG compression at quality 5–15",
    "blur": "a Gaussian blur of σ 1–2 pixels",
    "flip": "a left–right mirror image",
}
"""Edits that keep a patch's content, with what each does (strengths are drawn per patch)."""

FAMILIES: tuple[str, ...] = ("shift", "crop_resize", "stain_jitter", "jpeg", "blur")
"""The distortion families of the 2AFC triplets (:data:`EDITS` without the flip)."""


def _as_float_image(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (H, W) or (H, W, 1 or 3), got shape {a.shape}")
    a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
    if np.isnan(a).any():
        raise ValueError("image holds NaN values")
    return a


def margin_for(size: int) -> int:
    """Pixels kept free around a reference crop: the largest shift, ``size // 4``."""
    return max(1, size // 4)


def edit(
    image: np.ndarray, top: int, left: int, size: int, family: str, rng: np.random.Generator
) -> np.ndarray:
    """The ``size × size`` crop of ``image`` at ``(top, left)``, edited by ``family``.

    Parameters
    ----------
    image : ndarray ``(H, W, C)`` in ``[0, 1]`` (or uint8)
        The source image; shifts and blurs read the pixels around the crop from it.
    top, left, size : int
        The reference crop; it must lie :func:`margin_for` pixels inside the image for a shift.
    family : str
        A key of :data:`EDITS`.
    rng : numpy.random.Generator
        Draws the edit's strength (and direction).

    Returns
    -------
    ndarray ``(size, size, C)`` float64 in ``[0, 1]``
    """
    if family not in EDITS:
        raise KeyError(f"unknown edit {family!r}; edits: {', '.join(EDITS)}")
    return _edit(_as_float_image(image), top, left, size, family, rng)


def _edit(
    img: np.ndarray, top: int, left: int, size: int, family: str, rng: np.random.Generator
) -> np.ndarray:
    """:func:`edit` on an image already converted by :func:`_as_float_image`."""
    from scipy import ndimage

    h, w, c = img.shape
    if not (0 <= top <= h - size and 0 <= left <= w - size):
        raise ValueError(f"crop ({top}, {left}) of side {size} leaves the {h}×{w} image")
    patch = img[top : top + size, left : left + size]
    if family == "shift":
        m = margin_for(size)
        lo = max(1, size // 8)
        dy, dx = (int(rng.integers(lo, m + 1)) * int(rng.choice([-1, 1])) for _ in range(2))
        t, l2 = int(np.clip(top + dy, 0, h - size)), int(np.clip(left + dx, 0, w - size))
        return img[t : t + size, l2 : l2 + size].copy()
    if family == "crop_resize":
        side = max(2, round(size * rng.uniform(0.6, 0.8)))
        t, l2 = (int(rng.integers(0, size - side + 1)) for _ in range(2))
        crop = torch.from_numpy(np.ascontiguousarray(patch[t : t + side, l2 : l2 + side])).permute(
            2, 0, 1
        )
        out = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)
        return out[0].permute(1, 2, 0).numpy().clip(0, 1)
    if family == "stain_jitter":
        if c != 3:
            raise ValueError(f"stain_jitter needs RGB images, got {c} channel(s)")
        from skimage.color import hed2rgb, rgb2hed

        hed = rgb2hed(patch)
        hed[..., 0] *= rng.uniform(0.6, 1.5)  # haematoxylin
        hed[..., 1] += rng.uniform(0.0, 0.02)  # a little eosin
        hed[..., 2] *= rng.uniform(0.6, 1.5)  # DAB
        return hed2rgb(hed).clip(0, 1)
    if family == "jpeg":
        from PIL import Image

        quality = int(rng.integers(5, 16))
        pixels = np.round(patch * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels[..., 0] if c == 1 else pixels).save(buffer, "JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float64) / 255.0
        return decoded.reshape(size, size, c)
    if family == "blur":
        sigma = rng.uniform(1.0, 2.0)
        r = int(math.ceil(3 * sigma))
        t0, l0 = max(0, top - r), max(0, left - r)
        context = img[t0 : top + size + r, l0 : left + size + r]
        blurred = ndimage.gaussian_filter(context, sigma=(sigma, sigma, 0), mode="reflect")
        return blurred[top - t0 : top - t0 + size, left - l0 : left - l0 + size].clip(0, 1)
    return patch[:, ::-1].copy()  # flip


def low_level_statistics(patches: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per patch: the mean and standard deviation of each channel and the mean gradient
    magnitude of the grey image (its edge density), ``(N, 2C + 1)``.

    Parameters
    ----------
    patches : ``(N, H, W, C)`` array or ``(N, C, H, W)`` tensor, values in ``[0, 1]``
    """
    if isinstance(patches, torch.Tensor):
        patches = patches.detach().cpu().permute(0, 2, 3, 1).numpy()
    p = np.asarray(patches, dtype=np.float64)
    if p.ndim != 4:
        raise ValueError(f"patches must be (N, H, W, C), got shape {p.shape}")
    grey = p.mean(-1)
    gy, gx = np.gradient(grey, axis=(1, 2))
    edges = np.sqrt(gx**2 + gy**2).mean(axis=(1, 2))
    return np.concatenate([p.mean(axis=(1, 2)), p.std(axis=(1, 2)), edges[:, None]], axis=1)


@dataclass(frozen=True)
class Triplets:
    """Two-alternative triplets with a known answer: ``same`` is closer in content than ``other``.

    Attributes
    ----------
    reference, same, other : Tensor ``(N, C, S, S)`` float32 in ``[0, 1]``
        The reference, its content-keeping variant (the right answer), and a different patch
        with matched low-level statistics.
    family : tuple of str
        The edit that made each ``same`` (a key of :data:`EDITS`).
    positions : ndarray ``(N, 4)`` int
        ``(top, left)`` of the reference and of ``other`` in the source image.
    """

    reference: torch.Tensor
    same: torch.Tensor
    other: torch.Tensor
    family: tuple[str, ...]
    positions: np.ndarray

    def __len__(self) -> int:
        return len(self.family)

    def families(self) -> tuple[str, ...]:
        """The families present, in order of first appearance."""
        return tuple(dict.fromkeys(self.family))

    def mask(self, family: str) -> np.ndarray:
        """Boolean ``(N,)``: the triplets of ``family``."""
        if family not in self.family:
            raise KeyError(
                f"no triplets of family {family!r}; families: {', '.join(self.families())}"
            )
        return np.array([f == family for f in self.family])


def _candidate_grid(h: int, columns: tuple[int, int], size: int, m: int, stride: int) -> np.ndarray:
    tops = np.arange(m, h - size - m + 1, stride)
    lefts = np.arange(columns[0] + m, columns[1] - size - m + 1, stride)
    if not len(tops) or not len(lefts):
        raise ValueError(
            f"columns {columns} of a {h}-pixel-high image cannot hold a {size}-pixel crop with a "
            f"{m}-pixel margin"
        )
    return np.stack(np.meshgrid(tops, lefts, indexing="ij"), -1).reshape(-1, 2)


def _to_tensor(patches: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float().clamp(0, 1).contiguous()


def make_triplets(
    image: np.ndarray,
    *,
    n_per_family: int,
    size: int = 32,
    families: Sequence[str] = FAMILIES,
    columns: tuple[int, int] | None = None,
    pool: int = 64,
    seed: int = 0,
) -> Triplets:
    """Triplets (reference, content-keeping variant, look-alike other patch) from one image.

    For each family and triplet: a reference crop at a random position of the ``columns``
    region (with a margin for shifts); its variant by :func:`edit`; and, among ``pool`` random
    crops of the same region that do not overlap the reference, the one whose
    :func:`low_level_statistics` (each standardised over the region) are closest to the
    reference's. Crops sit on a grid with a step of a quarter of their side. The answer is known
    by construction: the variant shares at least 56 % of its pixels' content with the reference
    (a shift moves it by at most a quarter of the side per axis), the other patch none.

    Parameters
    ----------
    image : ndarray ``(H, W, C)``, uint8 or float in ``[0, 1]``
    n_per_family : int
        Triplets per family.
    size : int
        Side of the crops (≥ 8).
    families : sequence of str
        Keys of :data:`EDITS`.
    columns : (int, int), optional
        Column range ``[start, stop)`` to crop from (default: the whole width), e.g.
        :func:`helpers.datasets.histology_columns` ``("test")`` for held-out triplets.
    pool : int
        Candidates for the other patch.
    seed : int
        The same seed gives the same triplets.

    Returns
    -------
    Triplets
    """
    img = _as_float_image(image)
    h, w, _ = img.shape
    columns = (0, w) if columns is None else (int(columns[0]), int(columns[1]))
    if not 0 <= columns[0] < columns[1] <= w:
        raise ValueError(f"columns must satisfy 0 ≤ start < stop ≤ {w}, got {columns}")
    for name, v, lo in (("n_per_family", n_per_family, 1), ("size", size, 8), ("pool", pool, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an int ≥ {lo}, got {v!r}")
    unknown = [f for f in families if f not in EDITS]
    if unknown or not families:
        raise ValueError(
            f"families must be a non-empty choice of {', '.join(EDITS)}, got {list(families)}"
        )
    rng = np.random.default_rng(seed)
    m = margin_for(size)
    grid = _candidate_grid(h, columns, size, m, max(1, size // 4))
    crops = np.stack([img[t : t + size, left : left + size] for t, left in grid])
    stats = low_level_statistics(crops)
    stats = (stats - stats.mean(0)) / (stats.std(0) + 1e-8)
    refs, sames, others, fams, pos = [], [], [], [], []
    for family in families:
        for _ in range(n_per_family):
            r = int(rng.integers(len(grid)))
            top, left = grid[r]
            free = np.flatnonzero((np.abs(grid - grid[r]) >= size).any(1))  # no overlap
            if not len(free):
                raise ValueError(f"the region is too small for a non-overlapping {size}-pixel crop")
            cand = rng.choice(free, size=min(pool, len(free)), replace=False)
            best = cand[np.argmin(((stats[cand] - stats[r]) ** 2).sum(1))]
            refs.append(crops[r])
            sames.append(_edit(img, int(top), int(left), size, family, rng))
            others.append(crops[best])
            fams.append(family)
            pos.append([top, left, *grid[best]])
    return Triplets(
        _to_tensor(refs),
        _to_tensor(sames),
        _to_tensor(others),
        tuple(fams),
        np.array(pos, dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------
# measures


def _pairs(a: torch.Tensor, b: torch.Tensor, name: str = "images") -> None:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError(f"{name} must be tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"{name} differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim != 4 or a.shape[0] == 0:
        raise ValueError(f"{name} must be non-empty (N, C, H, W) batches, got {tuple(a.shape)}")


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    data_range: float = 1.0,
    win_size: int = 7,
    pairwise: bool = False,
) -> torch.Tensor:
    """SSIM of ``(N, C, H, W)`` images, vectorised in PyTorch.

    The formula of Wang et al. with scikit-image's defaults — a ``win_size × win_size`` uniform
    window, sample covariances (``N/(N − 1)``), ``K₁ = 0.01``, ``K₂ = 0.03`` — averaged over the
    positions where the window fits and over channels: equal to
    ``skimage.metrics.structural_similarity(…, channel_axis=0)`` (and to
    :func:`helpers.metrics.ssim`), but for whole batches at once and on any device.

    Parameters
    ----------
    a, b : Tensor ``(N, C, H, W)`` and ``(M, C, H, W)``
    data_range : float
    win_size : int
        Odd, at most the image side.
    pairwise : bool
        ``False``: ``N = M`` pairs → ``(N,)``; ``True``: all pairs → ``(N, M)`` (the window means
        and variances of each image are computed once).

    Returns
    -------
    Tensor float64, 1 for identical images.
    """
    if pairwise:
        if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
            raise TypeError(
                f"images must be tensors, got {type(a).__name__} and {type(b).__name__}"
            )
        if a.ndim != 4 or b.ndim != 4 or a.shape[1:] != b.shape[1:] or not len(a) or not len(b):
            raise ValueError(
                f"need non-empty (N, C, H, W) and (M, C, H, W) images of one size, got "
                f"{tuple(a.shape)} and {tuple(b.shape)}"
            )
    else:
        _pairs(a, b)
    if win_size % 2 == 0 or min(a.shape[-2:]) < win_size:
        raise ValueError(
            f"win_size must be odd and at most the image side; got {win_size} for {tuple(a.shape[-2:])}"
        )
    c, h, w = a.shape[1:]

    def pool(t: torch.Tensor) -> torch.Tensor:  # window means, (N, C, H', W')
        return F.avg_pool2d(t.reshape(-1, 1, h, w), win_size, stride=1).view(
            len(t), c, h - win_size + 1, -1
        )

    cov_norm = win_size**2 / (win_size**2 - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    x, y = a.double(), b.double()
    ux, uy = pool(x), pool(y)
    vx, vy = cov_norm * (pool(x * x) - ux * ux), cov_norm * (pool(y * y) - uy * uy)

    def combine(ux, uy, vx, vy, pxy):  # broadcasts over a leading pair dimension
        vxy = cov_norm * (pxy - ux * uy)
        s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        return s.flatten(-3).mean(-1)

    if not pairwise:
        return combine(ux, uy, vx, vy, pool(x * y))
    rows = [combine(ux[i], uy, vx[i], vy, pool(x[i] * y)) for i in range(len(x))]
    return torch.stack(rows)


@torch.no_grad()
def layer_features(
    layers: nn.Sequential, images: torch.Tensor, keep: Sequence[int], *, batch_size: int = 256
) -> list[torch.Tensor]:
    """Outputs of ``layers[i]`` for ``i`` in ``keep``, each position's channel vector scaled to
    unit length (LPIPS's normalisation).

    Parameters
    ----------
    layers : nn.Sequential
        E.g. ``encoder.features`` of :class:`helpers.self_supervised.Encoder`.
    images : Tensor ``(N, C, H, W)``
    keep : sequence of int
        Indices into ``layers`` whose outputs are kept.

    Returns
    -------
    list of Tensor ``(N, C_l, H_l, W_l)`` on the CPU
    """
    if not keep or max(keep) >= len(layers) or min(keep) < 0:
        raise ValueError(f"keep must index the {len(layers)} layers, got {list(keep)}")
    device = next(layers.parameters()).device
    was = layers.training
    layers.eval()
    out: list[list[torch.Tensor]] = [[] for _ in keep]
    for k in range(0, len(images), batch_size):
        x = images[k : k + batch_size].to(device)
        for i, layer in enumerate(layers[: max(keep) + 1]):
            x = layer(x)
            if i in keep:
                out[list(keep).index(i)].append(F.normalize(x.float(), dim=1).cpu())
    layers.train(was)
    return [torch.cat(o) for o in out]


def lpips_distance(
    features_a: Sequence[torch.Tensor],
    features_b: Sequence[torch.Tensor],
    *,
    pairwise: bool = False,
) -> torch.Tensor:
    """LPIPS-style distance: ``Σ_l mean_positions ‖â_l − b̂_l‖²`` on unit-normalised feature
    maps (:func:`layer_features`), with every channel weighted 1.

    Since ``‖â − b̂‖² = 2 − 2 â·b̂`` for unit vectors, the pairwise form is a matrix product per
    layer.

    Parameters
    ----------
    features_a, features_b : list of Tensor ``(N, C_l, H_l, W_l)`` and ``(M, C_l, H_l, W_l)``
    pairwise : bool
        ``False``: ``N = M`` pairs → ``(N,)``; ``True``: all pairs → ``(N, M)``.
    """
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError(
            f"need the same non-zero number of layers, got {len(features_a)} and {len(features_b)}"
        )
    total = None
    for fa, fb in zip(features_a, features_b, strict=True):
        if fa.shape[1:] != fb.shape[1:]:
            raise ValueError(f"feature maps differ: {tuple(fa.shape)} and {tuple(fb.shape)}")
        positions = fa.shape[-1] * fa.shape[-2]
        if pairwise:
            dot = fa.flatten(1).double() @ fb.flatten(1).double().T  # (N, M) summed over positions
            d = 2 - 2 * dot / positions
        else:
            if fa.shape != fb.shape:
                raise ValueError(
                    f"paired feature maps differ: {tuple(fa.shape)} and {tuple(fb.shape)}"
                )
            d = ((fa.double() - fb.double()) ** 2).sum(1).flatten(1).mean(1)
        total = d if total is None else total + d
    assert total is not None
    return total


def cosine_distances(a: torch.Tensor, b: torch.Tensor, *, pairwise: bool = False) -> torch.Tensor:
    """``1 − cos`` of embeddings ``(N, D)`` and ``(M, D)``: paired ``(N,)`` or all pairs ``(N, M)``."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"need embeddings (N, D) and (M, D), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not len(a) or not len(b):
        raise ValueError("cosine_distances got an empty set of embeddings")
    a, b = F.normalize(a.double(), dim=1), F.normalize(b.double(), dim=1)
    if pairwise:
        return 1 - a @ b.T
    if a.shape != b.shape:
        raise ValueError(
            f"paired embeddings differ in shape: {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return 1 - (a * b).sum(1)


def lpips_blocks(
    features: Sequence[torch.Tensor], prefix: str = "lpips"
) -> tuple[torch.Tensor, list[str], list[int]]:
    """LPIPS's unit-normalised feature maps (:func:`layer_features`) as one feature matrix with
    a block per layer and channel, for :class:`Ensemble`.

    Block ``(l, c)`` is channel ``c`` of layer ``l`` flattened and divided by ``√(H_l W_l)``, so
    its squared distance is ``mean_positions (â_c − b̂_c)²``: with every weight 1 the blocks sum
    to :func:`lpips_distance`, and weighting them is LPIPS's learned per-channel weighting.

    Returns
    -------
    features : Tensor ``(N, Σ C_l H_l W_l)``
    names : list of str
        ``"<prefix><l>.c<c>"``, one per block.
    sizes : list of int
        Columns of each block (``H_l W_l``), for :class:`Ensemble`.
    """
    cols, names, sizes = [], [], []
    for layer, f in enumerate(features):
        n, c, h, w = f.shape
        cols.append(
            f.reshape(n, c * h * w) / math.sqrt(h * w)
        )  # channel-major: block c = columns c·hw…
        names += [f"{prefix}{layer}.c{k}" for k in range(c)]
        sizes += [h * w] * c
    return torch.cat(cols, 1), names, sizes


class Ensemble(nn.Module):
    """DreamSim-style ensemble: a concatenated feature vector cut into named blocks, one
    non-negative weight per block (the weights sum to 1; :func:`fit_ensemble` tunes them).

    ``distance(a, b) = Σ_k w_k ‖a_k − b_k‖²`` — the squared distance between the weighted
    concatenations ``[√w₁ a₁, √w₂ a₂, …]`` (:meth:`concatenate`). For unit-length blocks such as
    normalised embeddings, ``‖a_k − b_k‖² = 2 (1 − cos)``: the cosine distance DreamSim uses.

    Parameters
    ----------
    names : sequence of str
        One name per block.
    sizes : sequence of int
        The number of columns of each block, in order (the feature matrices have ``Σ sizes``
        columns).
    """

    def __init__(self, names: Sequence[str], sizes: Sequence[int]):
        super().__init__()
        if not names or len(names) != len(sizes) or min(sizes) < 1:
            raise ValueError(
                f"need one positive size per block name, got {len(names)} names and sizes {list(sizes)[:5]}…"
            )
        self.names = tuple(names)
        self.register_buffer(
            "block_of_column",
            torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(list(sizes))),
        )
        self.logits = nn.Parameter(torch.zeros(len(self.names), dtype=torch.float64))

    @property
    def weights(self) -> torch.Tensor:
        """``(K,)`` weights, non-negative, summing to 1."""
        return torch.softmax(self.logits, 0)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != len(self.block_of_column):
            raise ValueError(
                f"features must be (N, {len(self.block_of_column)}), got {tuple(x.shape)}"
            )

    def components(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Each block's squared distance for pairs of rows: ``(N, D)``, ``(N, D)`` → ``(N, K)``."""
        self._check(a)
        self._check(b)
        if a.shape != b.shape:
            raise ValueError(
                f"paired features differ in shape: {tuple(a.shape)} and {tuple(b.shape)}"
            )
        sq = (a.double() - b.double()) ** 2
        out = torch.zeros(len(a), len(self.names), dtype=torch.float64)
        return out.index_add_(1, self.block_of_column, sq)

    def forward(self, components: torch.Tensor) -> torch.Tensor:
        """Block distances ``(..., K)`` → ensemble distance ``(...)``."""
        if components.shape[-1] != len(self.names):
            raise ValueError(
                f"expected {len(self.names)} block distances, got {components.shape[-1]}"
            )
        return components.double() @ self.weights

    @torch.no_grad()
    def concatenate(self, features: torch.Tensor) -> torch.Tensor:
        """``[√w₁ a₁, √w₂ a₂, …]``: each column scaled by the root of its block's weight."""
        self._check(features)
        return features.double() * self.weights.sqrt()[self.block_of_column]

    @torch.no_grad()
    def pairwise(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Ensemble distances of all pairs, ``(N, D)`` × ``(M, D)`` → ``(N, M)``: squared
        Euclidean distances of the weighted concatenations."""
        return torch.cdist(self.concatenate(a), self.concatenate(b)) ** 2


def fit_ensemble(
    ensemble: Ensemble,
    d_same: torch.Tensor,
    d_other: torch.Tensor,
    *,
    margin: float = 0.05,
    steps: int = 300,
    lr: float = 0.05,
) -> list[float]:
    """Tune the ensemble's weights on training triplets with DreamSim's hinge loss,
    ``mean max(0, m + d(ref, same) − d(ref, other))`` (Adam, full batch, deterministic).

    The block distances are rescaled so that their mean over the training triplets is 1 before
    the loss sees them (the margin then means the same for every ensemble); the weights are
    stored for the original scale (the same ranking of distances, up to one constant factor).

    Parameters
    ----------
    ensemble : Ensemble
    d_same, d_other : Tensor ``(N, K)``
        :meth:`Ensemble.components` from the reference to the right and to the wrong answer.
    margin : float
        ``m`` (0.05 in DreamSim).
    steps, lr : int, float

    Returns
    -------
    list of float
        The loss at each step.
    """
    if d_same.shape != d_other.shape or d_same.ndim != 2 or not len(d_same):
        raise ValueError(
            f"need (N, K) block distances of equal shape, got {tuple(d_same.shape)} and {tuple(d_other.shape)}"
        )
    if d_same.shape[1] != len(ensemble.names):
        raise ValueError(f"expected {len(ensemble.names)} block distances, got {d_same.shape[1]}")
    scale = torch.cat([d_same, d_other]).double().mean(0).clamp_min(1e-12)  # (K,)
    same, other = d_same.double() / scale, d_other.double() / scale
    free = nn.Parameter(ensemble.logits.detach().clone())
    opt = torch.optim.Adam([free], lr=lr)
    losses = []
    for _ in range(steps):
        w = torch.softmax(free, 0)
        loss = F.relu(margin + same @ w - other @ w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():  # weights on the original scale: w_k / scale_k, renormalised
        w = torch.softmax(free, 0) / scale
        ensemble.logits.copy_(torch.log(w / w.sum()))
    return losses


def two_afc(d_same: torch.Tensor | np.ndarray, d_other: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per triplet: 1 when the right answer is closer, 0 when the other is, ½ on a tie.

    Parameters
    ----------
    d_same, d_other : ``(N,)`` distances (smaller = more similar; pass ``−PSNR`` or ``−SSIM`` for
        similarities).

    Returns
    -------
    ndarray ``(N,)`` float64; its mean is the 2AFC accuracy.
    """
    s = np.asarray(d_same, dtype=np.float64).ravel()
    o = np.asarray(d_other, dtype=np.float64).ravel()
    if s.shape != o.shape or not len(s):
        raise ValueError(
            f"need two non-empty sets of distances of equal length, got {len(s)} and {len(o)}"
        )
    return np.where(s < o, 1.0, np.where(s > o, 0.0, 0.5))


def recall_at_1(
    distances: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray
) -> np.ndarray:
    """Per query: whether its nearest gallery item (smallest distance, lowest index on ties) is
    its target. ``distances`` ``(Q, G)``, ``targets`` ``(Q,)`` → ``(Q,)`` bool."""
    d = torch.as_tensor(distances)
    t = torch.as_tensor(targets).long()
    if d.ndim != 2 or t.shape != (d.shape[0],) or not d.numel():
        raise ValueError(
            f"need distances (Q, G) and one target per query, got {tuple(d.shape)} and {tuple(t.shape)}"
        )
    if (t < 0).any() or (t >= d.shape[1]).any():
        raise ValueError(f"targets must index the {d.shape[1]} gallery items")
    return (d.argmin(1) == t).numpy()


def load_lpips(net: str = "alex") -> tuple[nn.Module | None, str]:
    """The ``lpips`` package's LPIPS model when it and its weights are on this machine.

    Never downloads: the package must be installed and torchvision's pretrained ``net`` weights
    must already be in the torch hub cache. Returns ``(model, "")`` or ``(None, reason)``. The
    model takes images in ``[-1, 1]``.
    """
    import importlib.util
    from pathlib import Path

    if importlib.util.find_spec("lpips") is None:
        return None, "the lpips package is not installed (pip install lpips)"
    files = {
        "alex": "alexnet-owt-7be5be79.pth",
        "vgg": "vgg16-397923af.pth",
        "squeeze": "squeezenet1_1-b8a52dc0.pth",
    }
    if net not in files:
        raise ValueError(f"net must be one of {', '.join(files)}, got {net!r}")
    weights = Path(torch.hub.get_dir()) / "checkpoints" / files[net]
    if not weights.exists():
        return (
            None,
            f"torchvision's {net} weights are not in {weights.parent} (they would be downloaded)",
        )
    import lpips

    return lpips.LPIPS(net=net, verbose=False).eval(), ""
