"""Checkers for the exercises of notebook 02 (ViT patches, attention cost, tiles).

Each checker derives what it compares against from the package (patchify, the score-size formula,
the slide tiler), never from a stored literal.
"""

from __future__ import annotations

from typing import Any

import torch

from .feedback import Exercise, Feedback, close


def _ex02_1(answer: Any) -> Feedback:
    from ..vit import patchify

    expected = patchify(torch.zeros(1, 1, 16, 16), 2).shape[1] + 1
    return close(answer, expected, rel=0, abs_tol=0.5, what="number of tokens")


def _ex02_2(answer: Any) -> Feedback:
    from ..attention import score_bytes

    expected = score_bytes(8192, heads=1)
    return close(answer, expected, rel=1e-3, what="number of bytes")


def _ex02_3(answer: Any) -> Feedback:
    from ..attention import score_bytes

    expected = score_bytes(8192, heads=1) / score_bytes(2048, heads=1)
    return close(answer, expected, rel=1e-3, what="factor")


def _ex02_4(answer: Any) -> Feedback:
    from ..tiling import tile_coords

    rows, cols = tile_coords(100_000, 100_000, 256).shape[:2]
    return close(answer, rows * cols, rel=0, abs_tol=0.5, what="number of tokens")


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "02",
        1,
        "Tiny ViT with patch_size=2 on 16×16 digits: how many tokens, class token included, attend?",
        _ex02_1,
    ),
    Exercise(
        "02", 2, "Bytes of ONE head's float32 attention-score matrix for N = 8192 tokens?", _ex02_2
    ),
    Exercise(
        "02",
        3,
        "If time grows like N², by what factor does it grow from N = 2048 to N = 8192 tokens?",
        _ex02_3,
    ),
    Exercise(
        "02",
        4,
        "How many tokens does a slide encoder see for a 100,000 × 100,000 slide in 256-px tiles?",
        _ex02_4,
    ),
)
"""The exercises of notebook 02, in order."""
