"""Tile-wise embedding of a large image, the way around quadratic attention used by iSTAR.

A whole-slide image has far too many patches for one ViT. Cut it into tiles, embed each tile
with a ViT on its own (its attention cost is that of one tile), and keep the grid of tile
embeddings with their coordinates. A slide-level model can then relate the tiles, e.g. with
dilated attention and 2-D sin-cos embeddings of the tile positions (Prov-GigaPath).

References
----------
Zhang, D. et al. "Inferring super-resolution tissue architecture by integrating spatial
transcriptomics with histology." Nature Biotechnology 2024 (iSTAR).
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
    """Grid index ``floor(coord / tile_size)`` (Prov-GigaPath: tile size 256 on the slide)."""
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


def pca_colors(embeddings: torch.Tensor, *, n_components: int = 3) -> np.ndarray:
    """Project ``(..., D)`` embeddings on their first principal components, scaled to [0, 1].

    Returns
    -------
    ndarray ``(..., n_components)``: with 3 components, an RGB image of the grid. The sign of
    each component is fixed so that its largest loading is positive (deterministic colours).
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
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    comps = vh[:n_components]
    signs = torch.sign(comps.gather(1, comps.abs().argmax(dim=1, keepdim=True)))
    proj = x @ (comps * signs).T  # (M, k)
    lo, hi = proj.quantile(0.01, dim=0), proj.quantile(0.99, dim=0)
    proj = ((proj - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    return proj.reshape(*embeddings.shape[:-1], n_components).float().numpy()
