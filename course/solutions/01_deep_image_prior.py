"""Reference solutions for the exercises of notebook 01 (for instructors)."""

import math


def exercise_1():
    """PSNR = 10·log10(1 / MSE) and the MSE of N(0, σ²) noise is σ²: 20·log10(255/50) ≈ 14.15 dB."""
    return 20 * math.log10(255 / 50)


def exercise_2():
    """The rule stops when the loss reaches the loss of the clean image itself: x − x₀ is then
    exactly the noise, whose mean square is σ² = (50/255)² ≈ 0.0384. Below it, the network is
    reproducing the noise."""
    return (50 / 255) ** 2


def exercise_3():
    """The data term compares d(x) with the 32×32 observation: (128/4)² = 1024 pixels, while the
    network produces 128² = 16384 — sixteen unknowns per measurement."""
    return (128 // 4) ** 2


def exercise_4():
    """Every scale halves the size with a stride-2 convolution and doubles it back: 96 = 2⁵·3, so
    five halvings give 3×3 and a sixth would need 1.5 pixels."""
    size, scales = 96, 0
    while size % 2 == 0:
        size //= 2
        scales += 1
    return scales
