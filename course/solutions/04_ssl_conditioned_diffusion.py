"""Reference solutions for the exercises of notebook 04 (for instructors)."""

import math


def exercise_1():
    """Softmax over a single score is exp(s)/exp(s) = 1: cross-attention to one token adds a fixed
    vector per channel, whatever the query."""
    return 1.0


def exercise_2():
    """(128 − 32)/8 + 1 = 13 window positions per side, 13 × 13 = 169 (the paper's count)."""
    per_side = (128 - 32) // 8 + 1
    return per_side**2


def exercise_3():
    """ε = (1 + w)·ε_c − w·ε_u, so ε_c is multiplied by 1 + w = 3.5."""
    return 1 + 2.5


def exercise_4():
    """Half-way along the great circle between orthogonal vectors is 45° from each: cos(π/4)."""
    return math.cos(math.pi / 4)
