"""Self-attention, written out and fused, and LongNet's dilated attention.

Scaled dot-product attention (Vaswani et al., 2017) relates every token to every other one: an
``N × N`` score matrix per head, so ``O(N²·d)`` time and ``O(N²)`` memory. Dilated attention
(LongNet; Ding et al., 2023), used by Prov-GigaPath's slide encoder, splits the sequence into
segments of length ``w``, keeps every ``r``-th token of each segment, attends inside the sparse
segments and mixes several ``(w, r)`` branches by their softmax normalisers: ``O(N·d)`` for fixed
branches.

References
----------
Vaswani, A. et al. "Attention is all you need." NeurIPS 2017.
Ding, J. et al. "LongNet: Scaling Transformers to 1,000,000,000 Tokens." arXiv:2307.02486, 2023.

Examples
--------
>>> import torch
>>> from helpers import attention
>>> q = k = v = torch.randn(1, 2, 16, 8)
>>> out = attention.dilated_attention(q, k, v, segment_lengths=[16], dilation_rates=[1])
>>> torch.allclose(out, attention.attention(q, k, v), atol=1e-5)
True
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"{name} must have shape (B, H, N, d), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if q.shape[-1] < 1 or v.shape[-1] < 1:
        raise ValueError(f"q, k and v need at least one feature per head, got q {tuple(q.shape)}")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q, k, v shapes do not match: q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}; expected (B, H, N, d) with the same B, H and d for q and k"
        )


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, return_weights: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention written out: ``softmax(q kᵀ / √d) v``.

    Parameters
    ----------
    q, k, v : Tensor ``(B, H, N, d)`` (``k`` and ``v`` may have another length ``M``)
        Queries, keys and values per head.
    return_weights : bool
        Also return the ``(B, H, N, M)`` attention weights (the matrix that makes attention
        quadratic).

    Returns
    -------
    Tensor ``(B, H, N, d)``, or ``(output, weights)``.

    Examples
    --------
    >>> q = torch.randn(1, 1, 4, 8)
    >>> out, w = attention(q, q, q, return_weights=True)
    >>> tuple(w.shape), bool(torch.allclose(w.sum(-1), torch.ones(1, 1, 4)))
    ((1, 1, 4, 4), True)
    """
    _check_qkv(q, k, v)
    # scale q (N × d values) rather than the scores (N × M): same maths, one N × M tensor fewer
    scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)  # (B, H, N, M)
    weights = scores.softmax(dim=-1)  # each row sums to 1
    out = weights @ v  # (B, H, N, d)
    return (out, weights) if return_weights else out


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The fused path, :func:`torch.nn.functional.scaled_dot_product_attention` (same maths).

    On CUDA it picks a FlashAttention or memory-efficient kernel that never stores the ``N × N``
    matrix; on CPU it uses a tiled kernel. Shapes as in :func:`attention`.
    """
    _check_qkv(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


def score_bytes(
    n_tokens: int, *, batch: int = 1, heads: int = 1, dtype: torch.dtype = torch.float32
) -> int:
    """Bytes of the ``(B, H, N, N)`` score matrix the explicit path materialises (analytic)."""
    for name, value in (("n_tokens", n_tokens), ("batch", batch), ("heads", heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int ≥ 0, got {value!r}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    return batch * heads * n_tokens * n_tokens * itemsize


def check_branches(
    segment_lengths: Sequence[int], dilation_rates: Sequence[int]
) -> list[tuple[int, int]]:
    """The ``(w, r)`` pairs of dilated attention, validated: one positive int rate per positive
    int segment length. A segment length need not be a multiple of its rate (the segment is
    padded, as in Prov-GigaPath's code)."""
    ws, rs = list(segment_lengths), list(dilation_rates)
    if not ws or len(ws) != len(rs):
        raise ValueError(
            f"need one dilation rate per segment length, got {len(ws)} segment lengths "
            f"{ws} and {len(rs)} dilation rates {rs}"
        )
    out = []
    for w, r in zip(ws, rs, strict=True):
        if isinstance(w, bool) or isinstance(r, bool):
            raise ValueError(f"segment length and rate must be positive ints, got w={w!r}, r={r!r}")
        try:
            wi, ri = operator.index(w), operator.index(r)  # ints, NumPy ints
        except TypeError:
            raise ValueError(
                f"segment length and rate must be positive ints, got w={w!r}, r={r!r}"
            ) from None
        if wi < 1 or ri < 1:
            raise ValueError(f"segment length and rate must be positive ints, got w={w!r}, r={r!r}")
        out.append((wi, ri))
    return out


def _layout(n: int, w: int, r: int) -> tuple[int, int, int, int]:
    """``(w, segments, padded segment length, tokens kept per segment)`` of one branch on ``n``
    tokens: a segment never exceeds the sequence, the last one may be partial (padded), and each
    is padded to a multiple of its rate."""
    w = min(w, n)
    s = math.ceil(n / w)
    wp = math.ceil(w / r) * r
    return w, s, wp, wp // r


def _branch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: int, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``(w, r)`` branch: output ``(B, H, N, d)`` and log-normaliser ``(B, H, N)``.

    Tokens a head does not select get output 0 and log-normaliser ``-inf``. Padding (of the last
    segment to ``w``, of every segment to a multiple of ``r``) is masked: it never gets weight.
    """
    b, h, n, d = q.shape
    w, s, wp, m = _layout(n, w, r)
    if s * w > n:
        q, k, v = (F.pad(t, (0, 0, 0, s * w - n)) for t in (q, k, v))
    # head j keeps local positions j mod r, j mod r + r, ... of each segment (LongNet's offsets)
    keep = (torch.arange(h, device=q.device) % r)[:, None] + r * torch.arange(m, device=q.device)
    index = keep[None, :, None, :, None].expand(b, h, s, m, d)  # keep: (H, m) in [0, wp)

    def select(t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(b, h, s, w, d)  # (B, H, S, w, d)
        if wp > w:
            t = F.pad(t, (0, 0, 0, wp - w))  # (B, H, S, wp, d)
        return t.gather(3, index)  # (B, H, S, m, d)

    qs, ks, vs = select(q), select(k), select(v)
    scores = (qs / math.sqrt(d)) @ ks.transpose(-2, -1)  # (B, H, S, m, m)
    pos = torch.arange(s, device=q.device)[:, None] * w + keep[:, None, :]  # (H, S, m)
    padded = (keep[:, None, :] >= w) | (pos >= n)  # (H, S, m): keys that are padding
    if bool(padded.any()):
        # the lowest finite value, not -inf: a row of padding only (a query that is padding
        # itself, discarded below) then stays finite, and real keys still outweigh it exactly
        low = torch.finfo(scores.dtype).min
        scores = scores.masked_fill(padded[None, :, :, None, :], low)
    lse = scores.logsumexp(dim=-1)  # (B, H, S, m): log of the softmax normaliser
    out = scores.softmax(dim=-1) @ vs  # (B, H, S, m, d)
    full = q.new_zeros(b, h, s, wp, d).scatter(3, index, out)[:, :, :, :w]
    full_lse = q.new_full((b, h, s, wp), float("-inf")).scatter(3, index[..., 0], lse)
    full_lse = full_lse[..., :w]
    return full.reshape(b, h, s * w, d)[:, :, :n], full_lse.reshape(b, h, s * w)[:, :, :n]


def dilated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
) -> torch.Tensor:
    """LongNet dilated attention (no causal mask).

    For each branch ``(w, r)``: cut the sequence into segments of ``w`` tokens, keep every
    ``r``-th token of each segment (head ``j`` starts at offset ``j mod r``), and attend among the
    kept tokens only. A token's outputs from the branches that kept it are mixed with weights
    proportional to their softmax normalisers ``s_i = Σ exp(q·k/√d)``, i.e. ``softmax_i(log s_i)``.

    Parameters
    ----------
    q, k, v : Tensor ``(B, H, N, d)``
        Queries, keys, values.
    segment_lengths : sequence of int
        ``w`` of each branch. Segments longer than the sequence are shortened to it; a last,
        partial segment is padded; a segment that its rate does not divide is padded to the next
        multiple of the rate (as Prov-GigaPath's code does). Padding is masked: it never gets
        weight.
    dilation_rates : sequence of int
        ``r`` of each branch.

    Returns
    -------
    Tensor ``(B, H, N, d)``
        With one branch ``w ≥ N, r = 1`` this equals dense :func:`attention`. Tokens kept by no
        branch (possible when every rate exceeds 1) get 0.

    References
    ----------
    Ding, J. et al. "LongNet: Scaling Transformers to 1,000,000,000 Tokens." arXiv 2023, Sec. 2.
    Xu, H. et al. "A whole-slide foundation model for digital pathology from real-world data."
    Nature 630, 181–188 (2024): slide encoder with rates [1, 2, 4, 8, 16] (code:
    prov-gigapath/prov-gigapath, ``custom_dilated_attention.py``).

    Examples
    --------
    >>> q = torch.randn(1, 4, 64, 8)
    >>> tuple(dilated_attention(q, q, q, [16, 32, 64], [1, 2, 4]).shape)
    (1, 4, 64, 8)
    >>> tuple(dilated_attention(q, q, q, [37], [8]).shape)  # 37 is padded to 40
    (1, 4, 64, 8)
    """
    _check_qkv(q, k, v)
    if q.shape[2] != k.shape[2]:
        raise ValueError(
            f"dilated attention is self-attention: q has {q.shape[2]} tokens, k {k.shape[2]}"
        )
    branches = check_branches(segment_lengths, dilation_rates)
    if q.shape[2] == 0:  # no tokens: nothing to attend, an empty output
        return q.new_zeros(*q.shape[:3], v.shape[-1])
    outs, lses = zip(*(_branch(q, k, v, w, r) for w, r in branches), strict=True)
    lse = torch.stack(lses)  # (n_branches, B, H, N)
    covered = torch.isfinite(lse).any(dim=0, keepdim=True)
    mix = torch.where(covered, lse, torch.zeros_like(lse)).softmax(dim=0)
    mix = torch.where(torch.isfinite(lse), mix, torch.zeros_like(mix))  # (n_branches, B, H, N)
    return (mix[..., None] * torch.stack(outs)).sum(dim=0)


def dilated_score_count(
    n_tokens: int, segment_lengths: Sequence[int], dilation_rates: Sequence[int]
) -> int:
    """Query–key pairs one head scores in dilated attention: ``Σ (N/w)·(w/r)²`` over branches,
    with the padding of :func:`dilated_attention` (dense attention scores ``N²``).

    Examples
    --------
    >>> dilated_score_count(4096, [1024], [1]), 4 * 1024**2
    (4194304, 4194304)
    """
    branches = check_branches(segment_lengths, dilation_rates)
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 0:
        raise ValueError(f"n_tokens must be an int ≥ 0, got {n_tokens!r}")
    total = 0
    if n_tokens == 0:
        return 0
    for w, r in branches:
        _, s, _, m = _layout(n_tokens, w, r)
        total += s * m * m
    return total


def dilated_score_bytes(
    n_tokens: int,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    *,
    batch: int = 1,
    heads: int = 1,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Bytes of the score blocks dilated attention materialises: ``Σ B·H·(N/w)·(w/r)²`` (analytic)."""
    for name, value in (("n_tokens", n_tokens), ("batch", batch), ("heads", heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int ≥ 0, got {value!r}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    return batch * heads * dilated_score_count(n_tokens, segment_lengths, dilation_rates) * itemsize


def longnet_branches(
    n_tokens: int, *, first_segment: int = 1024, ratio: int = 2
) -> list[tuple[int, int]]:
    """LongNet's geometric branches up to the whole sequence: ``w = w₀·αⁱ`` and ``r = αⁱ``
    (the same ratio, so every branch keeps ``w₀`` tokens per segment) until ``w ≥ N``.

    The cost per head, ``Σ N·w/r² = N·w₀·Σ α⁻ⁱ < N·w₀·α/(α − 1)``, stays linear in ``N``, and the
    last branch spans the whole sequence.

    Examples
    --------
    >>> longnet_branches(8192)
    [(1024, 1), (2048, 2), (4096, 4), (8192, 8)]
    >>> longnet_branches(3000)
    [(1024, 1), (2048, 2), (4096, 4)]
    """
    if n_tokens < 1 or first_segment < 1 or ratio < 2:
        raise ValueError(
            f"need n_tokens ≥ 1, first_segment ≥ 1 and ratio ≥ 2, got {n_tokens}, "
            f"{first_segment}, {ratio}"
        )
    branches = [(first_segment, 1)]
    while branches[-1][0] < n_tokens:
        w, r = branches[-1]
        branches.append((w * ratio, r * ratio))
    return branches


def gigapath_branches(
    max_tokens: int, *, first_segment: int = 1024, rates: Sequence[int] = (1, 2, 4, 8, 16)
) -> list[tuple[int, int]]:
    """Prov-GigaPath's slide-encoder branches: segment lengths log-spaced from 1024 to the
    longest sequence (``2**linspace(log2 1024, int(log2 max_tokens), 5)``, truncated to ints),
    dilation rates 1, 2, 4, 8, 16.

    With the default 262,144-pixel slide side and 256-pixel tiles, ``max_tokens = 1024² =
    1,048,576`` and the segments are 1024, 5792, 32768, 185363 and 1048576 (185363 is not a
    multiple of 8: the code pads it).

    References
    ----------
    prov-gigapath/prov-gigapath, ``gigapath/slide_encoder.py`` (``get_optimal_segment_length``)
    and ``torchscale/model/LongNet.py`` (``dilated_ratio='[1, 2, 4, 8, 16]'``).

    Examples
    --------
    >>> gigapath_branches(1024**2)
    [(1024, 1), (5792, 2), (32768, 4), (185363, 8), (1048576, 16)]
    """
    if max_tokens < first_segment:
        raise ValueError(f"max_tokens {max_tokens} is below the first segment {first_segment}")
    exponents = np.linspace(math.log2(first_segment), int(math.log2(max_tokens)), len(rates))
    segments = np.power(2, exponents).astype(int).tolist()
    return check_branches(segments, list(rates))


def dilated_reach(
    n_tokens: int,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    *,
    heads: int,
    query: int,
    layers: int = 1,
) -> np.ndarray:
    """Which tokens can influence ``query`` after ``layers`` layers of dilated attention.

    One layer: the query itself (the residual connection) and every key it attends to in some
    branch through some head (a head keeps the tokens at offset ``head mod r`` of each segment).
    More layers compose: the tokens reached by the tokens reached. Exact, from the pattern of
    :func:`dilated_attention` (a test checks it against the gradients of its output).

    Parameters
    ----------
    n_tokens : int
    segment_lengths, dilation_rates : sequence of int
    heads : int
        Number of heads (offsets ``0 … heads−1`` modulo each rate).
    query : int
        Position of the query token.
    layers : int
        Layers of dilated attention stacked.

    Returns
    -------
    ndarray ``(n_tokens,)`` of bool

    Examples
    --------
    >>> int(dilated_reach(64, [16], [1], heads=1, query=20).sum())  # its segment of 16
    16
    >>> int(dilated_reach(64, [16, 64], [1, 4], heads=4, query=20, layers=2).sum())
    64
    """
    branches = check_branches(segment_lengths, dilation_rates)
    if not 0 <= query < n_tokens or heads < 1 or layers < 1:
        raise ValueError(
            f"need 0 ≤ query < n_tokens, heads ≥ 1, layers ≥ 1; got query={query}, "
            f"n_tokens={n_tokens}, heads={heads}, layers={layers}"
        )
    pos = np.arange(n_tokens)
    reached = np.zeros(n_tokens, dtype=bool)
    reached[query] = True
    for _ in range(layers):
        grown = reached.copy()
        for w, r in branches:
            w, s, _, _ = _layout(n_tokens, w, r)
            segment, residue = pos // w, (pos % w) % r
            for offset in sorted({h % r for h in range(heads)}):
                kept = residue == offset  # tokens this head keeps in this branch
                touched = np.zeros(s, dtype=bool)
                touched[segment[reached & kept]] = True  # segments holding a reached token
                grown |= kept & touched[segment]
        reached = grown
    return reached


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with timm's layout (``qkv`` and ``proj`` linear layers).

    Parameters
    ----------
    dim : int
        Token width ``D`` (divisible by ``num_heads``).
    num_heads : int
        Heads ``H``; each works on ``D / H`` features.
    fused : bool
        Use :func:`sdpa` (fast) instead of the explicit :func:`attention` when weights are not asked.
    """

    def __init__(self, dim: int, num_heads: int, *, fused: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.fused = num_heads, fused
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, *, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        b, n, dim = x.shape  # (B, N, D)
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, N, D/H)
        if return_weights or not self.fused:
            out, weights = attention(q, k, v, return_weights=True)
        else:
            out, weights = sdpa(q, k, v), None
        out = self.proj(out.transpose(1, 2).reshape(b, n, dim))  # (B, N, D)
        return (out, weights) if return_weights else out
