"""Tile-wise embedding of a large image: the way around quadratic attention used by iSTAR.

A whole-slide image has far too many patches for one ViT. Cut it into tiles and embed each tile
with a ViT on its own (its attention cost is that of one tile). Two ways to keep the result:

* :func:`embed_tiles` — one vector per tile (e.g. its class token) on a grid with coordinates,
  the input of a slide-level model that relates the tiles (Prov-GigaPath: dilated attention with
  2-D sin-cos embeddings of the tile positions, :func:`grid_index`);
* :func:`superpixel_features` — iSTAR's features, which follow HIPT's hierarchy: every patch
  token of the tile encoder is kept as the *local* feature of its superpixel (16 px in iSTAR), a
  second encoder over the grid of tile tokens of a region gives each tile a *regional* token,
  both are averaged over shifted tilings (so tile borders leave no seams), and the mean colour
  of the superpixel is appended (384 + 192 + 3 = 579 numbers per superpixel in iSTAR).

References
----------
Zhang, D. et al. "Inferring super-resolution tissue architecture by integrating spatial
transcriptomics with histology." Nature Biotechnology 42, 1372–1377 (2024) (iSTAR; code:
daviddaiweizhang/istar, ``extract_features.py``).
Chen, R. J. et al. "Scaling Vision Transformers to Gigapixel Images via Hierarchical
Self-Supervised Learning." CVPR 2022 (HIPT: ViT-256 over 16-px patches, ViT-4K over 256-px tiles).
Xu, H. et al. "A whole-slide foundation model for digital pathology from real-world data."
Nature 630, 181–188 (2024) (Prov-GigaPath).

Examples
--------
>>> import torch
>>> from helpers import tiling
>>> grid = tiling.embed_tiles(torch.rand(3, 64, 96), lambda t: t.mean(dim=(2, 3)), tile_size=32)
>>> tuple(grid.embeddings.shape), tuple(grid.coords[0, 1].tolist())
((2, 3, 3), (0, 32))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class TileGrid:
    """Embeddings of the tiles of one image.

    Attributes
    ----------
    embeddings : Tensor ``(rows, cols, D)``
    coords : Tensor ``(rows, cols, 2)`` int64
        ``(top, left)`` pixel coordinate of each tile.
    tile_size : int
    stride : int
    """

    embeddings: torch.Tensor
    coords: torch.Tensor
    tile_size: int
    stride: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid."""
        return tuple(self.embeddings.shape[:2])  # type: ignore[return-value]

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows·cols, D)`` embeddings and ``(rows·cols, 2)`` coordinates, raster order."""
        return self.embeddings.flatten(0, 1), self.coords.flatten(0, 1)


def tile_coords(height: int, width: int, tile_size: int, stride: int | None = None) -> torch.Tensor:
    """Top-left corners ``(rows, cols, 2)`` of the tiles that fit inside ``height × width``.

    Tiles that would cross the border are dropped (as slide tilers do at the tissue edge).
    """
    stride = tile_size if stride is None else stride
    for name, value in (("tile_size", tile_size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if tile_size > min(height, width):
        raise ValueError(f"tile size {tile_size} is larger than the image ({height}×{width})")
    tops = torch.arange(0, height - tile_size + 1, stride)
    lefts = torch.arange(0, width - tile_size + 1, stride)
    rows, cols = torch.meshgrid(tops, lefts, indexing="ij")
    return torch.stack([rows, cols], dim=-1)


def grid_index(coords: torch.Tensor, tile_size: int) -> torch.Tensor:
    """Grid index ``floor(coord / tile_size)`` (Prov-GigaPath: tile size 256 on the slide).

    The rule assumes tiles that do not overlap. With a stride below the tile size two tiles
    share an index (tiles at 0 and 16 px are both ``floor(·/32) = 0``) and get the same position
    embedding: divide by the stride instead.

    Examples
    --------
    >>> grid_index(torch.tensor([0, 16, 32, 48]), 32).tolist()
    [0, 0, 1, 1]
    >>> grid_index(torch.tensor([0, 16, 32, 48]), 16).tolist()
    [0, 1, 2, 3]
    """
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive int, got {tile_size!r}")
    return torch.div(coords, tile_size, rounding_mode="floor")


def embed_tiles(
    image: torch.Tensor,
    encoder: Callable[[torch.Tensor], torch.Tensor],
    *,
    tile_size: int,
    stride: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> TileGrid:
    """Cut ``image`` into tiles, embed each with ``encoder``, return the grid of embeddings.

    Parameters
    ----------
    image : Tensor ``(C, H, W)``
    encoder : callable
        Maps a batch of tiles ``(b, C, t, t)`` to embeddings ``(b, D)`` (e.g. a ViT's class
        token). Called under ``torch.no_grad()``.
    tile_size : int
        ``t``.
    stride : int, optional
        Step between tiles (default ``tile_size``: no overlap).
    batch_size : int
        Tiles per encoder call.
    progress : bool
        Show a progress bar over batches.

    Returns
    -------
    TileGrid
        ``embeddings (rows, cols, D)`` and ``coords (rows, cols, 2)``.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ValueError(
            f"image must be a (C, H, W) tensor, got {getattr(image, 'shape', type(image).__name__)}"
        )
    coords = tile_coords(image.shape[1], image.shape[2], tile_size, stride)
    rows, cols = coords.shape[:2]
    flat = coords.flatten(0, 1)
    chunks = []
    with torch.no_grad():
        for start in tqdm(range(0, len(flat), batch_size), disable=not progress, desc="tiles"):
            tiles = torch.stack(
                [
                    image[:, top : top + tile_size, left : left + tile_size]
                    for top, left in flat[start : start + batch_size].tolist()
                ]
            )
            emb = encoder(tiles)
            if emb.ndim != 2 or emb.shape[0] != len(tiles):
                raise ValueError(
                    f"encoder must return (b, D) embeddings, got {tuple(emb.shape)} for {len(tiles)} tiles"
                )
            chunks.append(emb.detach().cpu())
    embeddings = torch.cat(chunks).reshape(rows, cols, -1)
    return TileGrid(embeddings, coords, tile_size, tile_size if stride is None else stride)


def principal_components(
    embeddings: torch.Tensor, *, n_components: int = 3
) -> tuple[torch.Tensor, np.ndarray]:
    """Project ``(..., D)`` embeddings on their first principal components.

    Returns
    -------
    scores : Tensor ``(..., n_components)`` float64
        The centred embeddings projected on the components. The sign of each component is fixed
        so that its largest loading is positive (deterministic colours).
    explained : ndarray ``(n_components,)``
        The share of the total variance each component explains.

    Examples
    --------
    >>> x = torch.zeros(100, 4)
    >>> x[:, 0] = torch.linspace(-1, 1, 100)
    >>> x[:, 1] = 0.5 * (-1.0) ** torch.arange(100)  # variance 0.25 against 0.34
    >>> _, explained = principal_components(x, n_components=2)
    >>> [round(float(e), 2) for e in explained]
    [0.58, 0.42]
    """
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {n_components!r}")
    x = embeddings.reshape(-1, embeddings.shape[-1]).double()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("embeddings hold NaN or Inf values")
    if x.shape[0] < n_components or x.shape[1] < n_components:
        raise ValueError(
            f"need at least {n_components} embeddings of width ≥ {n_components}, got {tuple(x.shape)}"
        )
    x = x - x.mean(dim=0)
    _, sing, vh = torch.linalg.svd(x, full_matrices=False)
    comps = vh[:n_components]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    proj = x @ (comps * signs).T  # (M, k)
    explained = (sing**2 / (sing**2).sum())[:n_components].numpy()
    return proj.reshape(*embeddings.shape[:-1], n_components), explained


def pca_colors(embeddings: torch.Tensor, *, n_components: int = 3) -> np.ndarray:
    """Project ``(..., D)`` embeddings on their first principal components, scaled to [0, 1].

    Returns
    -------
    ndarray ``(..., n_components)``: with 3 components, an RGB image of the grid (each component
    scaled between its 1st and 99th percentiles). :func:`principal_components` gives the share of
    the variance each one explains.
    """
    proj, _ = principal_components(embeddings, n_components=n_components)
    flat = proj.reshape(-1, n_components)
    lo, hi = flat.quantile(0.01, dim=0), flat.quantile(0.99, dim=0)
    flat = ((flat - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    return flat.reshape(proj.shape).float().numpy()


# --------------------------------------------------------------------------------------------
# iSTAR's features: HIPT's hierarchy, per superpixel


@dataclass(frozen=True)
class SuperpixelFeatures:
    """Features of every superpixel (one patch of the tile encoder) of an image.

    Attributes
    ----------
    local : Tensor ``(h, w, D)``
        The tile encoder's patch token of the superpixel, averaged over the shifted tilings.
    regional : Tensor ``(h, w, D₂)``
        The regional token of the tile holding the superpixel, averaged over the shifted tilings.
    rgb : Tensor ``(h, w, C)``
        Mean colour of the superpixel.
    patch_size : int
        Side of a superpixel in pixels.
    """

    local: torch.Tensor
    regional: torch.Tensor
    rgb: torch.Tensor
    patch_size: int

    def concat(self) -> torch.Tensor:
        """``(h, w, D + D₂ + C)``: iSTAR's feature vector of each superpixel."""
        return torch.cat([self.local, self.regional, self.rgb], dim=-1)


def region_mean(tile_tokens: torch.Tensor) -> torch.Tensor:
    """The simplest regional encoder: every tile of a region gets the mean of the region's tile
    tokens. ``(b, k·k, D) → (b, k·k, D)``. HIPT uses a second ViT (ViT-4K) here."""
    return tile_tokens.mean(dim=1, keepdim=True).expand_as(tile_tokens)


def superpixel_features(
    image: torch.Tensor,
    tile_tokens: Callable[[torch.Tensor], torch.Tensor],
    *,
    tile_size: int,
    patch_size: int,
    region_size: int,
    shifts: tuple[int, ...] = (0,),
    regional: Callable[[torch.Tensor], torch.Tensor] = region_mean,
    batch_size: int = 256,
) -> SuperpixelFeatures:
    """iSTAR's per-superpixel features from a tile encoder, following HIPT's hierarchy.

    For each shift ``s``: the image is reflect-padded by ``s`` on the top and left (and by
    ``region_size − s`` on the bottom and right) and cut into tiles; the encoder's patch tokens
    become the local features of their superpixels; the class tokens of the ``k × k`` tiles of
    each region (``k = region_size / tile_size``) go through ``regional``, which returns one
    token per tile, given to the superpixels of that tile. Features are cropped back to the image
    and averaged over the shifts. The mean colour of each superpixel is appended.

    Parameters
    ----------
    image : Tensor ``(C, H, W)``
        ``H`` and ``W`` multiples of ``region_size``.
    tile_tokens : callable
        ``(b, C, t, t) → (b, 1 + (t/p)², D)``: the class token then the patch tokens in raster
        order, as :meth:`helpers.vit.TinyViT.tokens` returns them. Called under ``no_grad``.
    tile_size, patch_size, region_size : int
        ``t`` (a multiple of ``p``), ``p`` (the superpixel), and the region side (a multiple of
        ``t``; HIPT: 16 px, 256 px, 4096 px).
    shifts : tuple of int
        Offsets of the tilings in pixels, multiples of ``p`` below ``region_size``.
    regional : callable
        ``(b, k·k, D) → (b, k·k, D₂)``: the region-level encoder (default :func:`region_mean`).
    batch_size : int
        Tiles per encoder call.

    Returns
    -------
    SuperpixelFeatures
        ``(H/p, W/p, ·)`` grids.

    Examples
    --------
    >>> enc = lambda t: t.mean(dim=1).unfold(1, 8, 8).unfold(2, 8, 8).mean((-1, -2)).flatten(1)[..., None].expand(-1, -1, 2)
    >>> tok = lambda t: torch.cat([enc(t).mean(1, keepdim=True), enc(t)], dim=1)
    >>> f = superpixel_features(torch.rand(3, 64, 64), tok, tile_size=16, patch_size=8, region_size=32, shifts=(0, 8))
    >>> tuple(f.local.shape), tuple(f.regional.shape), tuple(f.rgb.shape), tuple(f.concat().shape)
    ((8, 8, 2), (8, 8, 2), (8, 8, 3), (8, 8, 7))
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ValueError(
            f"image must be a (C, H, W) tensor, got {getattr(image, 'shape', type(image).__name__)}"
        )
    c, h, w = image.shape
    t, p, r = tile_size, patch_size, region_size
    if t % p or r % t or h % r or w % r:
        raise ValueError(
            f"need patch_size | tile_size | region_size | image size; got patch {p}, tile {t}, "
            f"region {r}, image {h}×{w}"
        )
    if not shifts or any(s % p or not 0 <= s < r for s in shifts):
        raise ValueError(f"shifts must be multiples of {p} in [0, {r}), got {shifts}")
    g, k = t // p, r // t  # patches per tile side, tiles per region side
    local_sum = regional_sum = None
    for s in shifts:
        padded = torch.nn.functional.pad(image[None], (s, r - s, s, r - s), mode="reflect")[0]
        rows, cols = padded.shape[1] // t, padded.shape[2] // t
        tiles = padded.reshape(c, rows, t, cols, t).permute(1, 3, 0, 2, 4).reshape(-1, c, t, t)
        with torch.no_grad():
            out = torch.cat(
                [tile_tokens(tiles[i : i + batch_size]) for i in range(0, len(tiles), batch_size)]
            )
            if out.ndim != 3 or out.shape[:2] != (len(tiles), 1 + g * g):
                raise ValueError(
                    f"tile_tokens must return (b, 1 + {g * g}, D) for {t}-px tiles of {p}-px "
                    f"patches, got {tuple(out.shape)}"
                )
            out = out.cpu().double()
            cls = out[:, 0].reshape(rows // k, k, cols // k, k, -1).permute(0, 2, 1, 3, 4)
            reg = regional(cls.reshape(-1, k * k, cls.shape[-1]))  # (regions, k·k, D₂)
        reg = reg.reshape(rows // k, cols // k, k, k, -1).permute(0, 2, 1, 3, 4)
        reg = reg.reshape(rows, cols, -1).repeat_interleave(g, 0).repeat_interleave(g, 1)
        loc = out[:, 1:].reshape(rows, cols, g, g, -1).permute(0, 2, 1, 3, 4)
        loc = loc.reshape(rows * g, cols * g, -1)
        crop = (slice(s // p, s // p + h // p), slice(s // p, s // p + w // p))
        loc, reg = loc[crop], reg[crop]
        local_sum = loc if local_sum is None else local_sum + loc
        regional_sum = reg if regional_sum is None else regional_sum + reg
    rgb = torch.nn.functional.avg_pool2d(image[None].double(), p)[0].permute(1, 2, 0)
    n = len(shifts)
    return SuperpixelFeatures(local_sum / n, regional_sum / n, rgb, p)
