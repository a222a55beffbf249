"""Checkers for the exercises of notebook 03 (DDPM and DDIM).

Each checker derives what it compares against from the package (the schedules, the DDIM
timesteps), never from a stored literal.
"""

from __future__ import annotations

from typing import Any

from .feedback import Exercise, Feedback, close


def _ex03_1(answer: Any) -> Feedback:
    from ..diffusion import Schedule

    expected = float(Schedule.make("linear", T=1000).alpha_bars[-1])
    return close(answer, expected, rel=0.02, what="ᾱ_T")


def _ex03_2(answer: Any) -> Feedback:
    from ..diffusion import ddim_timesteps

    expected = int(ddim_timesteps(1000, 50)[0])
    return close(answer, expected, rel=0, abs_tol=0.5, what="first timestep")


def _ex03_3(answer: Any) -> Feedback:
    from ..diffusion import ddim_timesteps

    expected = 1000 / len(ddim_timesteps(1000, 50))
    return close(answer, expected, rel=1e-3, what="factor")


def _ex03_4(answer: Any) -> Feedback:
    from ..diffusion import Schedule

    snr = Schedule.make("cosine", T=1000).snr()
    expected = int((snr < 1).nonzero()[0])
    return close(answer, expected, rel=0, abs_tol=2.5, what="timestep")


EXERCISES: tuple[Exercise, ...] = (
    Exercise("03", 1, "ᾱ_T of the linear schedule (T = 1000, β from 1e-4 to 0.02)?", _ex03_1),
    Exercise(
        "03", 2, "DDIM with 50 steps (leading spacing): at which timestep does it start?", _ex03_2
    ),
    Exercise(
        "03",
        3,
        "How many times fewer network evaluations does DDIM-50 need than DDPM-1000?",
        _ex03_3,
    ),
    Exercise(
        "03",
        4,
        "Cosine schedule, T = 1000: the first timestep t at which the SNR is below 1?",
        _ex03_4,
    ),
)
"""The exercises of notebook 03, in order."""
