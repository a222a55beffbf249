"""Checkers for the exercises of notebook 08 (measuring images).

Each checker computes what it compares against from the package (the ensemble's distance, the
histogram distance, the first-order features), never from a stored literal.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .feedback import Exercise, Feedback, close


def _ex08_1(answer: Any) -> Feedback:
    from ..perceptual import Ensemble

    ens = Ensemble(["a", "b"], [2, 2])
    with torch.no_grad():
        ens.logits.copy_(torch.log(torch.tensor([0.3, 0.7], dtype=torch.float64)))
    cos = (0.9, 0.4)
    a = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor(
        [[cos[0], math.sqrt(1 - cos[0] ** 2), cos[1], math.sqrt(1 - cos[1] ** 2)]],
        dtype=torch.float64,
    )
    with torch.no_grad():
        expected = float(ens(ens.components(a, b))[0])
    return close(answer, expected, rel=1e-3, what="ensemble distance")


def _ex08_2(answer: Any) -> Feedback:
    from ..ood import histogram_distances, intensity_histograms

    vols = torch.stack([torch.full((4, 4, 4), 0.1), torch.full((4, 4, 4), 0.55)])
    h = intensity_histograms(vols, bins=64, normalise=False)
    expected = float(histogram_distances(h[:1], h[1:], metric="wasserstein")[0, 0])
    return close(answer, expected, rel=1e-3, what="distance")


def _ex08_3(answer: Any) -> Feedback:
    expected = 4 / 3 * math.pi * 3**3 / 48**3
    return close(answer, expected, rel=0.02, what="share")


def _ex08_4(answer: Any) -> Feedback:
    from ..radiomics import FEATURES, first_order

    features = first_order(torch.tensor([[0.0, 0.0, 1.0, 1.0]]))[0]
    expected = float(features[FEATURES.index("kurtosis")])
    return close(answer, expected, rel=1e-3, what="kurtosis")


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "08",
        1,
        "Ensemble distance of two unit blocks with cosines 0.9 and 0.4 and weights 0.3 and 0.7?",
        _ex08_1,
    ),
    Exercise(
        "08",
        2,
        "Wasserstein-1 distance (64 bins on [0, 1]) between volumes all 0.1 and all 0.55?",
        _ex08_2,
    ),
    Exercise("08", 3, "Share of a 48³ volume's voxels inside a ball of radius 3 voxels?", _ex08_3),
    Exercise("08", 4, "Kurtosis (not excess) of a region half 0 and half 1?", _ex08_4),
)
"""The exercises of notebook 08, in order."""
