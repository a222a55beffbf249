"""Checkers for the exercises of notebook 07 (real noise, SVNR).

Each checker derives what it compares against from the package (the schedule, the time maps, the
noise model), never from a stored literal.
"""

from __future__ import annotations

from typing import Any

from .feedback import Exercise, Feedback, close


def _ex07_1(answer: Any) -> Feedback:
    import torch

    from ..diffusion import Schedule
    from ..svnr import time_map

    expected = float(time_map(torch.full((1, 1, 1, 1), 0.1), Schedule.make("linear", T=1000)))
    return close(answer, expected, rel=0, abs_tol=0.5, what="time t*")


def _ex07_2(answer: Any) -> Feedback:
    import torch

    from ..svnr import poisson_gaussian_sigma

    s = poisson_gaussian_sigma(torch.tensor([1.0, 0.01]), gain=0.02, read_sigma=0.01)
    return close(answer, float(s[0] / s[1]), rel=0.02, what="ratio")


def _ex07_3(answer: Any) -> Feedback:
    import torch

    from ..diffusion import Schedule
    from ..svnr import alpha_bar_at

    ab = alpha_bar_at(torch.tensor([10.0, 40.0]), Schedule.make("linear", T=1000)).double()
    gamma = (1 - ab) / ab
    return close(answer, float((gamma[0] / gamma[1]).sqrt()), rel=0.03, what="correlation ρ")


def _ex07_4(answer: Any) -> Feedback:
    from ..diffusion import Schedule, ddim_timesteps

    T = Schedule.make("linear", T=1000).T
    return close(answer, T / len(ddim_timesteps(T, 25)), rel=1e-3, what="factor")


EXERCISES: tuple[Exercise, ...] = (
    Exercise("07", 1, "Linear schedule, T = 1000: the time t* of a pixel with σ = 0.1?", _ex07_1),
    Exercise(
        "07",
        2,
        "Poisson–Gaussian, a = 0.02, b = 0.01: σ at intensity 1 over σ at intensity 0.01?",
        _ex07_2,
    ),
    Exercise("07", 3, "The correlation ρ at t = 10 for a pixel with t* = 40 (T = 1000)?", _ex07_3),
    Exercise(
        "07", 4, "How many times fewer evaluations: SVNR with 25 steps vs DDPM-1000?", _ex07_4
    ),
)
"""The exercises of notebook 07, in order."""
