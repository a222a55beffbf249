"""Position embeddings: fixed sine–cosine tables in 1-D and 2-D, also at arbitrary coordinates.

Attention is blind to order; position embeddings put the layout back. ViT learns one vector per
position; the fixed 2-D sine–cosine table (as in MAE and timm) spends half the width on the row
and half on the column. Because the formula accepts any coordinate, Prov-GigaPath embeds each tile
at its grid position on the slide.

References
----------
Vaswani, A. et al. "Attention is all you need." NeurIPS 2017 (sinusoidal embeddings).
He, K. et al. "Masked Autoencoders Are Scalable Vision Learners." CVPR 2022 (2-D sin-cos).

Examples
--------
>>> from helpers import position
>>> tuple(position.sincos_2d((2, 3), 8).shape)
(6, 8)
"""

from __future__ import annotations

import torch


def _grid(value: int | tuple[int, int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(p, int) and p > 0 for p in pair):
        raise ValueError(f"grid_size must be a positive int or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def sincos_1d(positions: torch.Tensor, dim: int, *, temperature: float = 10000.0) -> torch.Tensor:
    """Sine–cosine embedding of (real-valued) positions: ``[sin(p·ω_k), cos(p·ω_k)]``.

    ``ω_k = temperature^(−k/(dim/2))`` for ``k = 0 … dim/2 − 1``, the MAE / timm convention.

    Parameters
    ----------
    positions : Tensor ``(N,)``
    dim : int
        Even output width.

    Returns
    -------
    Tensor ``(N, dim)``: sines in the first half, cosines in the second.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding dim must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2)
    omega = 1.0 / temperature**omega  # (dim/2,)
    angles = positions.reshape(-1, 1).double() * omega[None]  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d_from_coords(
    coords: torch.Tensor, dim: int, *, temperature: float = 10000.0
) -> torch.Tensor:
    """2-D sine–cosine embedding of arbitrary ``(row, col)`` coordinates.

    Half the width encodes the row, half the column. Prov-GigaPath places each tile by its grid
    index on the slide (``floor(coordinate / 256)``) and embeds it this way.

    Parameters
    ----------
    coords : Tensor ``(N, 2)``
        ``(row, col)`` per token (integers or real numbers).
    dim : int
        Output width, divisible by 4.

    Returns
    -------
    Tensor ``(N, dim)``
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding dim must be divisible by 4, got {dim}")
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must have shape (N, 2), got {tuple(coords.shape)}")
    return torch.cat(
        [
            sincos_1d(coords[:, 0], dim // 2, temperature=temperature),
            sincos_1d(coords[:, 1], dim // 2, temperature=temperature),
        ],
        dim=1,
    )


def sincos_2d(
    grid_size: int | tuple[int, int], dim: int, *, temperature: float = 10000.0
) -> torch.Tensor:
    """Fixed 2-D sine–cosine position embeddings of a ``gh × gw`` patch grid, raster order.

    Returns
    -------
    Tensor ``(gh·gw, dim)``

    Examples
    --------
    >>> tuple(sincos_2d(4, 16).shape)
    (16, 16)
    """
    gh, gw = _grid(grid_size)
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    return sincos_2d_from_coords(
        torch.stack([rows.flatten(), cols.flatten()], dim=1), dim, temperature=temperature
    )
