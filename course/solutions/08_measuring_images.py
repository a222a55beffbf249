"""Reference solutions for the exercises of notebook 08 (for instructors)."""

import math


def exercise_1():
    """For unit vectors ‖a − b‖² = 2(1 − cos): 2·0.1 = 0.2 and 2·0.6 = 1.2. Weighted:
    0.3·0.2 + 0.7·1.2 = 0.06 + 0.84 = 0.9."""
    return 0.3 * 2 * (1 - 0.9) + 0.7 * 2 * (1 - 0.4)


def exercise_2():
    """0.1 falls into bin ⌊6.4⌋ = 6, 0.55 into bin ⌊35.2⌋ = 35; all the mass moves 29 bins of
    width 1/64: 29/64 = 0.453125 (not 0.45: the histogram only knows bins)."""
    return 29 / 64


def exercise_3():
    """(4/3)·π·3³ ≈ 113 voxels of 48³ = 110 592: about 0.1 %. The histogram moves by at most
    that much mass, far less than the differences between in-distribution volumes; the sweep
    needs a ball several times wider before the AUROC leaves chance."""
    return 4 / 3 * math.pi * 27 / 48**3


def exercise_4():
    """Mean 0.5, every deviation ±0.5: μ₂ = 0.25, μ₄ = 0.0625, kurtosis μ₄/μ₂² = 1. By Jensen's
    inequality μ₄ = E[d⁴] ≥ (E[d²])² = μ₂², so kurtosis ≥ 1, with equality only for two equally
    likely values."""
    return 1.0
