"""Reference solutions for the exercises of notebook 03 (for instructors)."""

import math

import numpy as np


def exercise_1():
    """ᾱ_T = ∏(1 − β_t) with β linear from 1e-4 to 0.02 over 1000 steps: ≈ 4.0e-5, so x_T is
    almost pure noise (√ᾱ_T ≈ 0.006 of the image is left)."""
    betas = np.linspace(1e-4, 0.02, 1000)
    return float(np.prod(1 - betas))


def exercise_2():
    """Leading spacing visits k·(1000 // 50) = k·20 for k = 49 … 0: it starts at 980."""
    return 49 * (1000 // 50)


def exercise_3():
    """1000 network evaluations against 50: twenty times fewer."""
    return 1000 / 50


def exercise_4():
    """Nichol & Dhariwal: ᾱ_t = f(t)/f(0), f(t) = cos²(((t/T + s)/(1 + s))·π/2), s = 0.008, with
    β clipped at 0.999 and ᾱ_t evaluated at t + 1 for the step t (0-based). SNR = ᾱ/(1 − ᾱ) < 1
    when ᾱ < 1/2, a little before the middle of the chain."""
    s, T = 0.008, 1000

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    alpha_bar = 1.0
    for t in range(T):
        beta = min(1 - f(t + 1) / f(t), 0.999)
        alpha_bar *= 1 - beta
        if alpha_bar < 0.5:
            return t
    return T
