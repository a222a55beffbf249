"""Nearest-neighbour search by blocks of matrix products, with exact re-scoring of near-ties.

The machinery behind :mod:`helpers.memorization`. Every similarity there is a matrix product of
*prepared* rows
(standardised pixels, unit feature vectors, image tiles with their squared norms). The search
computes those products one ``batch_size × batch_size`` block at a time in the working precision
(float32 by default), which is fast on CPU, CUDA and MPS and keeps memory bounded.

Float32 products are only accurate to a rounding tolerance, and a near-duplicate can outscore
an exact copy by less than that. So the block search only *collects candidates* — the training
images whose score lies within the tolerance of the best — and the candidates are then scored
again, one pair at a time, in float64. The best match reported is the best of that exact
re-scoring; among exact float64 ties the lowest training index wins. In the common case a
generated image has one or two candidates and the re-scoring costs next to nothing.

The searches by measure (:func:`~helpers.memorization.max_correlation` and friends) are in
:mod:`helpers.memorization`; this module gives them :func:`search` and the row preparations
(:func:`standardize`, :func:`unit_rows`, :func:`tiles`).

Examples
--------
>>> import torch
>>> from helpers.nearest_neighbours import standardize
>>> rows = standardize(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
>>> [round(v, 4) for v in (rows @ rows.T)[0].tolist()]  # Pearson r of row 0 with both rows
[1.0, -1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray

EXTRA = 3  # matches kept per generated image beyond the best, to re-score near-ties exactly


class Matches(NamedTuple):
    """Best training match(es) of each generated image.

    Attributes
    ----------
    values : torch.Tensor
        ``(N,)`` (or ``(N, k)`` for ``top_k_correlation``) similarities or distances, best
        first.
    indices : torch.Tensor
        Same shape, int64: the index of the matching training image.
    """

    values: torch.Tensor
    indices: torch.Tensor


class Measure(NamedTuple):
    """A similarity as the search sees it (higher is better).

    Attributes
    ----------
    prepare : callable
        ``(n, ...)`` raw rows → ``(..., n, D')`` prepared rows.
    score : callable
        Prepared ``(..., b, D')`` generated and ``(..., c, D')`` training rows → ``(b, c)``
        scores, as matrix products.
    pair_score : callable
        Prepared ``(..., P, D')`` and ``(..., P, D')`` → ``(P,)``: the score of each pair
        ``(a[i], b[i])``, computed directly (the exact re-scoring).
    tol : float
        Bound on the rounding error of ``score``, in units of the machine epsilon.
    prepare_generated : callable, optional
        Preparation of generated rows when it differs (e.g. shifted copies stacked in front).
    """

    prepare: Callable[[torch.Tensor], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    pair_score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    tol: float
    prepare_generated: Callable[[torch.Tensor], torch.Tensor] | None = None


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, ...) with N ≥ 1, got {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.is_floating_point():  # a NaN row would score -inf against everything and hide copies
        bad = ~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=1)
        if bool(bad.any()):
            rows = bad.nonzero().squeeze(1)
            raise ValueError(
                f"{name} holds NaN or Inf in {rows.numel()} row(s) (e.g. {rows[:5].tolist()}); "
                "remove or replace them before searching"
            )
    return x


def check_pair(generated: ArrayLike, training: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets as tensors ``(N, ...)``, ``(M, ...)`` with the same trailing shape, or a clear error."""
    g, t = _as_tensor(generated, "generated"), _as_tensor(training, "training")
    if g.shape[1:] != t.shape[1:]:
        shape = lambda x: "×".join(map(str, x.shape[1:]))  # noqa: E731
        raise ValueError(
            f"generated images are {shape(g)} but training images are {shape(t)}; "
            "resize one set to the other's size"
        )
    return g, t


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (N, D) with mean 0 and Euclidean norm 1, so that ``a @ b.T`` is Pearson's r.

    A constant row (variance below rounding noise) becomes all zeros: its correlation with
    anything is 0.
    """
    mean = x.mean(dim=1, keepdim=True)
    centred = x - mean
    norm = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
    scale = torch.sqrt(norm * norm + x.shape[1] * mean * mean)  # ‖x‖, without another pass
    ok = norm > 4 * torch.finfo(x.dtype).eps * x.shape[1] ** 0.5 * scale
    return centred.mul_(torch.where(ok, norm.reciprocal(), torch.zeros_like(norm)))


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (N, D) scaled to Euclidean norm 1 (zero rows stay zero), so ``a @ b.T`` is
    the cosine similarity."""
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x * torch.where(norm > 0, norm.reciprocal(), torch.zeros_like(norm))


def tiles(x: torch.Tensor, grid: int) -> torch.Tensor:
    """``(N, C, H, W)`` → ``(grid², N, C·H/grid·W/grid)``: the images cut into a tile grid."""
    n, c, h, w = x.shape
    th, tw = h // grid, w // grid
    t = x.reshape(n, c, grid, th, grid, tw).permute(2, 4, 0, 1, 3, 5)  # (g, g, N, C, th, tw)
    return t.reshape(grid * grid, n, c * th * tw)


def _blocks(
    generated: torch.Tensor,
    training: torch.Tensor,
    measure: Measure,
    batch_size: int,
    dev: torch.device,
    dtype: torch.dtype,
) -> Iterator[tuple[slice, int, torch.Tensor]]:
    """``(generated rows, first training index, (b, c) scores)`` for every pair of chunks.

    Each training chunk is moved and prepared once. Generated rows are prepared once when that
    is cheap, else (shifted copies) per chunk of rows, so memory stays bounded.
    """
    prep_g = measure.prepare_generated or measure.prepare
    n = generated.shape[0]
    g_all = generated.to(dev, dtype)
    once = prep_g(g_all) if measure.prepare_generated is None or n <= batch_size else None
    for start in range(0, training.shape[0], batch_size):
        t = measure.prepare(training[start : start + batch_size].to(dev, dtype))
        for gs in range(0, n, batch_size):
            rows = slice(gs, gs + batch_size)
            g = once[..., rows, :] if once is not None else prep_g(g_all[rows])
            yield rows, start, measure.score(g, t)


def _exact(
    measure: Measure,
    generated: torch.Tensor,
    training: torch.Tensor,
    r: torch.Tensor,
    c: torch.Tensor,
    dev: torch.device,
    step: int,
) -> torch.Tensor:
    """Float64 ``pair_score`` of each pair ``(generated[r[i]], training[c[i]])``, in steps."""
    prep_g = measure.prepare_generated or measure.prepare
    out = [torch.zeros(0, dtype=torch.float64, device=dev)]
    for i in range(0, r.numel(), step):
        a = generated[r[i : i + step].to(generated.device)].to(dev, torch.float64)
        b = training[c[i : i + step].to(training.device)].to(dev, torch.float64)
        out.append(measure.pair_score(prep_g(a), measure.prepare(b)))
    return torch.cat(out)


def _pick(
    r: torch.Tensor, c: torch.Tensor, v: torch.Tensor, n: int, tol: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row ``0 ≤ r < n``: the largest ``v``, and the lowest ``c`` with ``v`` within ``tol``."""
    best = torch.full((n,), -torch.inf, dtype=v.dtype, device=v.device)
    best = best.scatter_reduce(0, r, v, "amax")
    near = v >= best[r] - tol
    none = torch.iinfo(torch.long).max
    idx = torch.full((n,), none, dtype=torch.long, device=v.device)
    idx = idx.scatter_reduce(0, r[near], c[near], "amin")
    return best, torch.where(idx == none, 0, idx)


def _search_all(
    generated: torch.Tensor,
    training: torch.Tensor,
    measure: Measure,
    floor: torch.Tensor,
    batch_size: int,
    dev: torch.device,
    dtype: torch.dtype,
    edev: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best exact match of each generated row among *all* training rows scoring ≥ ``floor``.

    The second pass for rows with more near-best matches than the first pass keeps (duplicated
    training images, a constant generated image): candidates are collected chunk by chunk and
    re-scored at once — one pair at a time when they are few, as a float64 block when many.
    """
    n = generated.shape[0]
    value = torch.full((n,), -torch.inf, dtype=torch.float64, device=edev)
    index = torch.zeros(n, dtype=torch.long, device=edev)
    tol64 = measure.tol * torch.finfo(torch.float64).eps
    prep_g = measure.prepare_generated or measure.prepare
    for rows, start, s in _blocks(generated, training, measure, batch_size, dev, dtype):
        cand = s >= floor[rows, None]
        r, c = (i.to(edev) for i in cand.nonzero(as_tuple=True))
        if r.numel() == 0:
            continue
        g_raw, t_raw = generated[rows], training[start : start + s.shape[1]]
        has_r, has_c = cand.any(1).to(edev), cand.any(0).to(edev)
        n_r, n_c = int(has_r.sum()), int(has_c.sum())
        if 16 * r.numel() <= n_r * n_c:  # few candidates: exact, one pair at a time
            v = _exact(measure, g_raw, t_raw, r, c, edev, batch_size)
            cv, ci = _pick(r, c, v, s.shape[0])
        else:  # many: a float64 block of candidate rows × columns, then the best exactly
            a = prep_g(g_raw[has_r.to(g_raw.device)].to(edev, torch.float64))
            b = measure.prepare(t_raw[has_c.to(t_raw.device)].to(edev, torch.float64))
            block = measure.score(a, b)  # (n_r, n_c)
            v = block[has_r.cumsum(0)[r] - 1, has_c.cumsum(0)[c] - 1]
            top, ci = _pick(r, c, v, s.shape[0], tol64)
            near = v >= top[r] - tol64  # ties up to float64 rounding of the block
            if int(near.sum()) <= 16 * n_r:  # few enough to settle exactly
                r, c = r[near], c[near]
                v = _exact(measure, g_raw, t_raw, r, c, edev, batch_size)
                cv, ci = _pick(r, c, v, s.shape[0])
            else:  # (a constant image ties with everything): the lowest index, scored exactly
                rr = has_r.nonzero().squeeze(1)
                cv = torch.full((s.shape[0],), -torch.inf, dtype=torch.float64, device=edev)
                cv[rr] = _exact(measure, g_raw, t_raw, rr, ci[rr], edev, batch_size)
        better = cv > value[rows]  # strictly: on exact ties the earlier, lower index stays
        value[rows] = torch.where(better, cv, value[rows])
        index[rows] = torch.where(better, ci + start, index[rows])
    return value, index


def search(
    generated: torch.Tensor,
    training: torch.Tensor,
    measure: Measure,
    *,
    k: int,
    batch_size: int,
    device: str | torch.device | None,
    dtype: torch.dtype,
) -> Matches:
    """Top-``k`` of ``measure.score`` (higher is better) of every generated row over training.

    For ``k = 1`` the result is exact: the block search in ``dtype`` keeps the ``1 + EXTRA``
    best scores per generated row; every kept match within ``measure.tol`` of the best is
    re-scored in float64 (:func:`_exact`), and the best of those wins, the lowest training index
    among exact float64 ties. Rows whose kept matches are *all* within the tolerance may have
    more candidates than were kept; a second pass (:func:`_search_all`) collects all of them.
    Values are returned in float64. For ``k > 1`` values are the ``dtype`` products and only
    exact ties of those go to the lower index.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    m = training.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= m:
        raise ValueError(f"k must be an int in [1, {m}] (training size), got {k!r}")
    dev = torch.device(device) if device is not None else generated.device
    n = generated.shape[0]
    width = k if k > 1 else min(m, 1 + EXTRA)
    best = torch.full((n, width), -torch.inf, device=dev, dtype=dtype)
    best_idx = torch.zeros((n, width), device=dev, dtype=torch.long)
    for rows, start, s in _blocks(generated, training, measure, batch_size, dev, dtype):
        if k > 1:  # stable sort keeps the earlier (lower-index) candidate first on ties
            top, arg = s, torch.arange(s.shape[1], device=dev).expand_as(s)
        else:  # the few best of this chunk; their order does not matter, re-scoring decides
            top, arg = s.topk(min(width, s.shape[1]), dim=1)
        vals = torch.cat([best[rows], top], dim=1)
        inds = torch.cat([best_idx[rows], arg + start], dim=1)
        if k > 1:
            order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, :k]
        else:
            order = vals.topk(width, dim=1).indices
        best[rows], best_idx[rows] = vals.gather(1, order), inds.gather(1, order)
    if k > 1:
        return Matches(best.cpu(), best_idx.cpu())

    edev = torch.device("cpu") if dev.type == "mps" else dev  # MPS has no float64
    floor = best[:, 0] - measure.tol * torch.finfo(dtype).eps  # candidates score at least this
    complete = best[:, -1] < floor if width < m else torch.ones_like(floor, dtype=torch.bool)
    r, j = ((best >= floor[:, None]) & complete[:, None]).nonzero(as_tuple=True)
    c = best_idx[r, j]
    r, c = r.to(edev), c.to(edev)
    value, index = _pick(r, c, _exact(measure, generated, training, r, c, edev, batch_size), n)
    rest = (~complete).nonzero().squeeze(1)
    if rest.numel():
        value[rest.to(edev)], index[rest.to(edev)] = _search_all(
            generated[rest.to(generated.device)],
            training,
            measure,
            floor[rest],
            batch_size,
            dev,
            dtype,
            edev,
        )
    return Matches(value.cpu().unsqueeze(1), index.cpu().unsqueeze(1))
