"""Checkers for the exercises of notebook 00 (setup and tour; listed in ``EXERCISES``).

Each checker derives what it compares against from the package itself (datasets, schedules,
formulas), so answers are never stored as literals and stay right when the package changes.
"""

from __future__ import annotations

from typing import Any

from .feedback import Exercise, Feedback, choice, close

# ---- 00 setup and tour -----------------------------------------------------------------------


def _ex00_1(answer: Any) -> Feedback:
    from .. import datasets

    expected = int(datasets.load("brain", n=200, size=64, seed=3).labels.sum())
    return close(answer, expected, rel=0, abs_tol=0.5, what="number of lesion slices")


def _ex00_2(answer: Any) -> Feedback:
    from .. import datasets

    ds = datasets.load("histology", n=64, size=32, seed=0)
    mean = ds.images.mean(dim=(2, 3))
    gap = (mean[ds.labels == 1].mean(0) - mean[ds.labels == 0].mean(0)).abs()
    return choice(answer, ("red", "green", "blue")[int(gap.argmax())], ("red", "green", "blue"))


def _ex00_3(answer: Any) -> Feedback:
    return choice(answer, "laptop", ("smoke", "laptop", "gpu"))


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "00",
        1,
        "How many of datasets.load('brain', n=200, size=64, seed=3) carry a lesion?",
        _ex00_1,
    ),
    Exercise(
        "00",
        2,
        "Which colour channel best separates DAB-positive from DAB-negative patches?",
        _ex00_2,
    ),
    Exercise("00", 3, "What does PROFILE='auto' resolve to on a machine without a GPU?", _ex00_3),
)
"""The exercises of notebook 00, in order."""
