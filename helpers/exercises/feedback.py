"""What a checker returns (:class:`Feedback`), what an exercise is (:class:`Exercise`), and the
building blocks checkers are made of (:func:`close`, :func:`choice`).

Examples
--------
>>> close(3.01, 3.0).correct, close(4, 3.0).message
(True, 'the value is too high; check your computation.')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Exercise", "Feedback", "choice", "close"]


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


def choice(answer: Any, expected: str, options: tuple[str, ...]) -> Feedback:
    """One of a few named options (case-insensitive)."""
    value = str(answer).strip().lower()
    if value not in options:
        return Feedback(False, f"answer one of: {', '.join(options)}.")
    if value == expected:
        return Feedback(True, "that is the one.")
    return Feedback(False, "not this one; look again at the figure or the numbers.")
