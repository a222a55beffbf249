"""Checkers for the exercises of notebook 04 (SSL-conditioned diffusion and large images).

Each checker computes what it compares against from the package (cross-attention, the window
bookkeeping, the guidance formula, slerp), never from a stored literal.
"""

from __future__ import annotations

from typing import Any

import torch

from .feedback import Exercise, Feedback, close


def _ex04_1(answer: Any) -> Feedback:
    scores = torch.randn(5, 1)  # any query · key scores over a single token
    expected = float(torch.softmax(scores, dim=1).mean())
    return close(answer, expected, rel=1e-3, what="attention weight")


def _ex04_2(answer: Any) -> Feedback:
    from ..large_image import window_positions

    expected = len(window_positions(128, 128, window=32, stride=8))
    return close(answer, expected, rel=0, abs_tol=0.5, what="number of windows")


def _ex04_3(answer: Any) -> Feedback:
    from ..diffusion import classifier_free_guidance

    expected = float(classifier_free_guidance(torch.ones(1), torch.zeros(1), 2.5))
    return close(answer, expected, rel=1e-3, what="coefficient of ε_c")


def _ex04_4(answer: Any) -> Feedback:
    from ..large_image import slerp

    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    m = slerp(a, b, 0.5)
    expected = float(torch.dot(a, m) / m.norm())
    return close(answer, expected, rel=2e-3, what="cosine similarity")


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "04",
        1,
        "With ONE context token, what weight does cross-attention's softmax give it, for every query?",
        _ex04_1,
    ),
    Exercise(
        "04",
        2,
        "How many windows cover a 4×4 grid of 32-px patches (a 128×128 canvas) at stride 8?",
        _ex04_2,
    ),
    Exercise(
        "04",
        3,
        "With guidance w = 2.5, by what factor is the conditional prediction ε_c multiplied?",
        _ex04_3,
    ),
    Exercise(
        "04",
        4,
        "Cosine similarity between a and slerp(a, b, 0.5) for two orthogonal unit vectors a, b?",
        _ex04_4,
    ),
)
"""The exercises of notebook 04, in order."""
