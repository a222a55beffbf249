"""Worked solutions to the exercises of notebook 07 (real noise, SVNR).

Each ``exercise_k()`` returns the answer that ``exercises.check("07", k, answer)`` accepts.
"""

import torch

from helpers import diffusion, svnr


def exercise_1() -> float:
    # ᾱ(t*) = 1 / (1 + (2·0.1)²) ≈ 0.9615: on DDPM's linear schedule, t* is between 50 and 60
    linear = diffusion.Schedule.make("linear", T=1000)
    return float(svnr.time_map(torch.full((1, 1, 1, 1), 0.1), linear))


def exercise_2() -> float:
    # σ(1) = √(0.02 + 0.0001), σ(0.01) = √(0.0002 + 0.0001): about 8 times larger
    s = svnr.poisson_gaussian_sigma(torch.tensor([1.0, 0.01]), gain=0.02, read_sigma=0.01)
    return float(s[0] / s[1])


def exercise_3() -> float:
    # ρ = √(γ_10 / γ_40) with γ = (1 − ᾱ)/ᾱ; a plain conditional model assumes ρ = 0
    ab = svnr.alpha_bar_at(torch.tensor([10.0, 40.0]), diffusion.Schedule.make("linear", T=1000))
    gamma = (1 - ab.double()) / ab.double()
    return float((gamma[0] / gamma[1]).sqrt())


def exercise_4() -> float:
    # 1000 evaluations against 25
    return 1000 / 25
