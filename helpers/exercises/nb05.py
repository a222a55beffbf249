"""Checkers for the exercises of notebook 05 (memorization: diffusion models vs GANs).

Each checker computes what it compares against from the package (the correlation and tiled ℓ2
searches, the Fréchet distance, the calibrated threshold), never from a stored literal.
"""

from __future__ import annotations

from typing import Any

import torch

from .feedback import Exercise, Feedback, close


def _ex05_1(answer: Any) -> Feedback:
    from ..memorization import max_correlation

    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(51))
    expected = float(max_correlation(1 - x, x).values[0])
    return close(answer, expected, rel=0, abs_tol=1e-3, what="correlation")


def _ex05_2(answer: Any) -> Feedback:
    from ..memorization import min_tiled_l2

    x = 0.8 * torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(52))
    expected = float(min_tiled_l2(x + 0.1, x, grid=4).values[0])
    return close(answer, expected, rel=0.01, what="distance")


def _ex05_3(answer: Any) -> Feedback:
    shift = 1
    shifts = (2 * shift + 1) ** 2  # every (dy, dx) in [-shift, shift]²
    expected = shifts * 200 * 320
    return close(answer, expected, rel=0, abs_tol=0.5, what="number of correlations")


def _ex05_4(answer: Any) -> Feedback:
    import numpy as np

    from ..metrics import frechet_distance_from_statistics

    expected = frechet_distance_from_statistics(
        np.array([0.0]), np.array([[1.0]]), np.array([2.0]), np.array([[4.0]])
    )
    return close(answer, expected, rel=1e-3, what="Fréchet distance")


def _ex05_5(answer: Any) -> Feedback:
    from ..memorization import calibrated_threshold, memorization_rate

    g = torch.Generator().manual_seed(55)
    held_out, fresh = torch.rand(200_000, generator=g), torch.rand(200_000, generator=g)
    expected = memorization_rate(fresh, calibrated_threshold(held_out, 0.99))
    return close(answer, expected, rel=0, abs_tol=0.002, what="share")


EXERCISES: tuple[Exercise, ...] = (
    Exercise("05", 1, "Pearson correlation between an image x and its negative 1 − x?", _ex05_1),
    Exercise(
        "05",
        2,
        "Tiled ℓ2 distance (4×4 tiles) between an image x and x + 0.1 (0.1 brighter)?",
        _ex05_2,
    ),
    Exercise(
        "05",
        3,
        "How many correlations does the search compute for 200 samples, 320 training images and "
        "max_shift=1?",
        _ex05_3,
    ),
    Exercise("05", 4, "Fréchet distance between the 1-D Gaussians N(0, 1) and N(2, 2²)?", _ex05_4),
    Exercise(
        "05",
        5,
        "At a threshold set to the 99th percentile of held-out real images' best match, what share "
        "of new real images is flagged as copies?",
        _ex05_5,
    ),
)
"""The exercises of notebook 05, in order."""
