"""Exercise checks: ``exercises.check("03", 1, answer)`` gives feedback, never the answer.

Each exercise at the end of a notebook has a checker in the module of its notebook
(:mod:`helpers.exercises.nb00` … :mod:`helpers.exercises.nb08`), listed there in ``EXERCISES``;
:data:`REGISTRY` is built from those lists, nothing registers itself on import. A checker
computes what it needs from the package — it does not store the answer as a literal — and
returns a :class:`~helpers.exercises.feedback.Feedback`: whether the answer is right and a hint
that points the way without giving the result away.

Examples
--------
>>> from helpers import exercises
>>> exercises.check("00", 3, "laptop").correct
True
"""

from __future__ import annotations

from typing import Any

from . import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08
from .feedback import Exercise, Feedback

__all__ = ["MODULES", "REGISTRY", "check", "listing"]

MODULES = (nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08)
"""The checker modules, one per notebook with exercises."""

REGISTRY: dict[tuple[str, int], Exercise] = {}
"""Every exercise with a checker, by ``(notebook, number)``."""

for _exercise in (ex for module in MODULES for ex in module.EXERCISES):
    _key = (_exercise.notebook, _exercise.number)
    if _key in REGISTRY:
        raise RuntimeError(f"exercise {_key[0]}.{_key[1]} is listed twice")
    REGISTRY[_key] = _exercise


def listing(notebook: str | None = None) -> list[Exercise]:
    """All exercises with a checker (of one notebook, e.g. ``"03"``), in order."""
    return [ex for key, ex in sorted(REGISTRY.items()) if notebook is None or key[0] == notebook]


def check(notebook: str, number: int, answer: Any) -> Feedback:
    """Check ``answer`` to exercise ``number`` of ``notebook`` (e.g. ``"03"``).

    Parameters
    ----------
    notebook : str
        Two-digit notebook number, e.g. ``"03"``.
    number : int
        Exercise number as printed in the notebook.
    answer : Any
        Your answer (a number, a string, a tensor … as the exercise asks).

    Returns
    -------
    Feedback
        ``correct`` and a hint; shown as a line of text in a notebook.
    """
    if not isinstance(notebook, str):
        raise TypeError(f"notebook must be a string like '03', got {type(notebook).__name__}")
    key = (notebook.zfill(2), number)
    if key not in REGISTRY:
        known = ", ".join(f"{nb}.{k}" for nb, k in sorted(REGISTRY))
        raise ValueError(f"no exercise {notebook}.{number}; exercises with checks: {known}")
    try:
        return REGISTRY[key].checker(answer)
    except (TypeError, ValueError) as err:
        return Feedback(False, f"could not read this answer ({err})")
