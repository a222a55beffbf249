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
from collections.abc import Sequence

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
    ws, rs = list(segment_lengths), list(dilation_rates)
    if not ws or len(ws) != len(rs):
        raise ValueError(
            f"need one dilation rate per segment length, got {len(ws)} segment lengths "
            f"{ws} and {len(rs)} dilation rates {rs}"
        )
    for w, r in zip(ws, rs, strict=True):
        if not (isinstance(w, int) and isinstance(r, int)) or w < 1 or r < 1:
            raise ValueError(f"segment length and rate must be positive ints, got w={w!r}, r={r!r}")
        if w % r:
            raise ValueError(f"segment length {w} is not divisible by its dilation rate {r}")
    return list(zip(ws, rs, strict=True))


def _branch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: int, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``(w, r)`` branch: output ``(B, H, N, d)`` and log-normaliser ``(B, H, N)``.

    Tokens a head does not select get output 0 and log-normaliser ``-inf``.
    """
    b, h, n, d = q.shape
    w = min(w, math.ceil(n / r) * r)  # a segment never needs to be longer than the sequence
    n_pad = math.ceil(n / w) * w
    pad = n_pad - n
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    s, m = n_pad // w, w // r  # segments, tokens kept per segment
    # head j keeps positions j mod r, j mod r + r, ... of each segment (LongNet's head offsets)
    offsets = torch.arange(h, device=q.device) % r
    keep = offsets[:, None] + r * torch.arange(m, device=q.device)[None]  # (H, m)
    index = keep[None, :, None, :, None].expand(b, h, s, m, d)

    def select(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, h, s, w, d).gather(3, index)  # (B, H, S, m, d)

    qs, ks, vs = select(q), select(k), select(v)
    scores = qs @ ks.transpose(-2, -1) / math.sqrt(d)  # (B, H, S, m, m)
    if pad:  # padded keys never receive weight
        pos = torch.arange(s, device=q.device)[:, None] * w + keep[:, None, :]  # (H, S, m)
        scores = scores.masked_fill((pos >= n)[None, :, :, None, :], float("-inf"))
    lse = scores.logsumexp(dim=-1)  # (B, H, S, m): log of the softmax normaliser
    out = (scores - lse[..., None]).exp() @ vs  # (B, H, S, m, d)
    full = q.new_zeros(b, h, s, w, d).scatter(3, index, out)
    full_lse = q.new_full((b, h, s, w), float("-inf")).scatter(3, index[..., 0], lse)
    return full.reshape(b, h, n_pad, d)[:, :, :n], full_lse.reshape(b, h, n_pad)[:, :, :n]


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
        ``w`` of each branch (each divisible by its rate); segments longer than the sequence are
        shortened to it, and a last, partial segment is padded and masked.
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
    Nature 630, 181–188 (2024): slide encoder with rates [1, 2, 4, 8, 16].

    Examples
    --------
    >>> q = torch.randn(1, 4, 64, 8)
    >>> tuple(dilated_attention(q, q, q, [16, 32, 64], [1, 2, 4]).shape)
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
    total = 0
    branches = check_branches(segment_lengths, dilation_rates)
    if n_tokens == 0:
        return 0
    for w, r in branches:
        w = min(w, math.ceil(n_tokens / r) * r)
        total += math.ceil(n_tokens / w) * (w // r) ** 2
    return batch * heads * total * itemsize


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
