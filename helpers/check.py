"""Check exercise answers: ``check.exercise("03", 1, answer)`` gives feedback, never the answer.

Each exercise at the end of a notebook has a checker registered here (the checkers themselves live
in :mod:`helpers.exercises`). A checker computes what it needs from the package — it does not
store the answer as a literal — and returns :class:`Feedback`: whether the answer is right and a
hint that points the way without giving the result away.

Examples
--------
>>> from helpers import check
>>> check.exercise("00", 3, "laptop").correct
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Feedback:
    """The verdict on an answer."""

    correct: bool
    message: str

    def __str__(self) -> str:
        return ("✓ correct — " if self.correct else "✗ not yet — ") + self.message

    def _repr_markdown_(self) -> str:  # shown nicely as the last expression of a notebook cell
        return f"**{'✓ correct' if self.correct else '✗ not yet'}** — {self.message}"

    def __bool__(self) -> bool:
        return self.correct


@dataclass(frozen=True)
class Exercise:
    """An exercise: where it is, what it asks, and how to check an answer."""

    notebook: str
    number: int
    prompt: str
    checker: Callable[[Any], Feedback]


_REGISTRY: dict[tuple[str, int], Exercise] = {}


def register(
    notebook: str, number: int, prompt: str
) -> Callable[[Callable[[Any], Feedback]], Callable[[Any], Feedback]]:
    """Decorator that registers a checker for exercise ``number`` of ``notebook``."""

    def wrap(fn: Callable[[Any], Feedback]) -> Callable[[Any], Feedback]:
        key = (notebook, number)
        if key in _REGISTRY:
            raise ValueError(f"exercise {notebook}.{number} is registered twice")
        _REGISTRY[key] = Exercise(notebook, number, prompt, fn)
        return fn

    return wrap


def _load() -> None:
    from . import (  # noqa: F401  (importing registers the checkers)
        exercises,
        exercises_01,
        exercises_02,
        exercises_03,
        exercises_04,
        exercises_05,
    )


def exercises(notebook: str | None = None) -> list[Exercise]:
    """All registered exercises (of one notebook), in order."""
    _load()
    return [ex for key, ex in sorted(_REGISTRY.items()) if notebook is None or key[0] == notebook]


def exercise(notebook: str, number: int, answer: Any) -> Feedback:
    """Check ``answer`` to exercise ``number`` of ``notebook`` (e.g. ``"03"``).

    Parameters
    ----------
    notebook : str
        Two-digit notebook number, ``"00"`` to ``"05"``.
    number : int
        Exercise number as printed in the notebook.
    answer : Any
        Your answer (a number, a string, a tensor … as the exercise asks).

    Returns
    -------
    Feedback
        ``correct`` and a hint; shown as a line of text in a notebook.
    """
    _load()
    if not isinstance(notebook, str):
        raise TypeError(f"notebook must be a string like '03', got {type(notebook).__name__}")
    key = (notebook.zfill(2), number)
    if key not in _REGISTRY:
        known = ", ".join(f"{nb}.{k}" for nb, k in sorted(_REGISTRY))
        raise ValueError(f"no exercise {notebook}.{number}; exercises with checks: {known}")
    try:
        return _REGISTRY[key].checker(answer)
    except (TypeError, ValueError) as err:
        return Feedback(False, f"could not read this answer ({err})")


# ---- building blocks for checkers ------------------------------------------------------------


def close(
    answer: Any, expected: float, *, rel: float = 0.02, abs_tol: float = 0.0, what: str = "value"
) -> Feedback:
    """Numeric answer within a tolerance; the hint says only 'too high' or 'too low'."""
    value = float(answer)
    if math.isclose(value, expected, rel_tol=rel, abs_tol=abs_tol):
        return Feedback(True, f"the {what} is right.")
    return Feedback(
        False, f"the {what} is too {'high' if value > expected else 'low'}; check your computation."
    )


def in_range(answer: Any, low: float, high: float, *, what: str = "value") -> Feedback:
    """Numeric answer (a measurement) inside a plausible range."""
    value = float(answer)
    if low <= value <= high:
        return Feedback(True, f"a plausible {what}.")
    return Feedback(
        False,
        f"the {what} is outside the range a correct run gives; rerun the cell or check units.",
    )


def choice(answer: Any, expected: str, options: tuple[str, ...]) -> Feedback:
    """One of a few named options (case-insensitive)."""
    value = str(answer).strip().lower()
    if value not in options:
        return Feedback(False, f"answer one of: {', '.join(options)}.")
    if value == expected:
        return Feedback(True, "that is the one.")
    return Feedback(False, "not this one; look again at the figure or the numbers.")
