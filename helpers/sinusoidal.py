"""Sinusoidal embeddings of positions and diffusion timesteps: one formula, sines first.

Attention is blind to order, and a denoiser must know how noisy its input is. Both get the same
fixed code: a scalar ``p`` (a token's position, a tile's row or column, a timestep ``t``) becomes
``[sin(p·ω_0), …, sin(p·ω_{k−1}), cos(p·ω_0), …, cos(p·ω_{k−1})]`` with frequencies
``ω_i = max_period^(−i/k)``, ``k = dim/2`` (Vaswani et al. 2017, §3.5). Sines come first, as in
DDPM's reference code and MAE; diffusers calls the other order ``flip_sin_to_cos=True``.

* :func:`sinusoidal_embedding` — the formula, for any real-valued positions or timesteps;
* :func:`sincos_2d_from_coords` — half the width for the row, half for the column (MAE, timm;
  Prov-GigaPath places each tile at its grid position this way);
* :func:`sincos_2d` — the fixed table of a ``gh × gw`` patch grid (a ViT's 2-D position code).

References
----------
.. [1] A. Vaswani et al., "Attention is all you need", NeurIPS 2017 (sinusoidal encodings).
.. [2] J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020
   (the timestep embedding of the U-Net).
.. [3] K. He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022 (2-D sin-cos).

Examples
--------
>>> import torch
>>> from helpers import sinusoidal
>>> tuple(sinusoidal.sincos_2d((2, 3), 8).shape)
(6, 8)
>>> sinusoidal.sinusoidal_embedding(torch.tensor([0.0]), 4).tolist()
[[0.0, 0.0, 1.0, 1.0]]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sincos_2d", "sincos_2d_from_coords", "sinusoidal_embedding"]


def _grid(value: int | tuple[int, int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else value
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in pair)
    ):
        raise ValueError(f"grid_size must be a positive int or a pair of them, got {value!r}")
    return tuple(pair)  # type: ignore[return-value]


def sinusoidal_embedding(
    positions: torch.Tensor, dim: int, *, max_period: float = 10000.0
) -> torch.Tensor:
    """Sine–cosine embedding of real-valued positions or timesteps: ``(N,)`` → ``(N, dim)``.

    ``[sin(p·ω_i)]_i ‖ [cos(p·ω_i)]_i`` with ``ω_i = max_period^(−i/(dim//2))``, computed in
    float64 (a float32 ``sin(999·ω)`` loses four digits) and returned as float32. An odd
    ``dim`` gets one zero column at the end.

    Parameters
    ----------
    positions : Tensor ``(N,)`` (any shape is flattened)
        Positions, coordinates or timesteps; integers or real numbers.
    dim : int
        Output width, ``dim ≥ 2``.
    max_period : float
        Longest wavelength, ``10000`` in the Transformer and in DDPM ("temperature" in MAE).

    Returns
    -------
    Tensor ``(N, dim)`` float32 on the device of ``positions``; every pair ``(sin, cos)`` has
    norm 1, so every row has norm ``√(dim // 2)``.

    Raises
    ------
    ValueError
        ``dim < 2`` or ``max_period ≤ 1``.

    Examples
    --------
    >>> e = sinusoidal_embedding(torch.tensor([0, 1, 999]), 9)
    >>> tuple(e.shape), bool(e.abs().max() <= 1)
    ((3, 9), True)
    """
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 2:
        raise ValueError(f"embedding dim must be an int ≥ 2, got {dim!r}")
    if not max_period > 1:
        raise ValueError(f"max_period must be > 1, got {max_period}")
    half = dim // 2
    omega = torch.arange(half, dtype=torch.float64, device=positions.device) / half
    omega = max_period**-omega  # (dim/2,): ω_i = max_period^(−i/half)
    angles = positions.reshape(-1, 1).double() * omega[None]  # (N, dim/2)
    emb = torch.cat([angles.sin(), angles.cos()], dim=1).float()  # (N, 2·half)
    return F.pad(emb, (0, dim % 2))  # (N, dim)


def sincos_2d_from_coords(
    coords: torch.Tensor, dim: int, *, max_period: float = 10000.0
) -> torch.Tensor:
    """2-D sine–cosine embedding of arbitrary ``(row, col)`` coordinates.

    The first half of the width encodes the row, the second half the column, each with
    :func:`sinusoidal_embedding`. Prov-GigaPath places each tile by its grid index on the slide
    (``floor(coordinate / 256)``) and embeds it this way.

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
            sinusoidal_embedding(coords[:, 0], dim // 2, max_period=max_period),
            sinusoidal_embedding(coords[:, 1], dim // 2, max_period=max_period),
        ],
        dim=1,
    )


def sincos_2d(
    grid_size: int | tuple[int, int], dim: int, *, max_period: float = 10000.0
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
        torch.stack([rows.flatten(), cols.flatten()], dim=1), dim, max_period=max_period
    )
