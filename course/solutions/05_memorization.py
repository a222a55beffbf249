"""Reference solutions for the exercises of notebook 05 (for instructors)."""


def exercise_1():
    """1 − x is an affine map a·x + b with a = −1: after standardising, the negative image is
    exactly minus the original, so r = −1. A search for the *maximum* correlation does not flag an
    inverted copy; search for the largest |r| if inverted contrast counts as a copy."""
    return -1.0


def exercise_2():
    """Every pixel differs by 0.1, so every tile's root-mean-square difference is 0.1 and so is
    the maximum over tiles. ℓ2 sees the brightness change; correlation does not."""
    return 0.1


def exercise_3():
    """Each sample is compared in (2·1 + 1)² = 9 shifted versions with each of the 320 training
    images: 9 × 200 × 320 = 576 000 correlations (entries of a few matrix products)."""
    return 9 * 200 * 320


def exercise_4():
    """(μ_a − μ_b)² + σ_a² + σ_b² − 2 σ_a σ_b = 4 + 1 + 4 − 2·1·2 = 5: in one dimension the
    Fréchet distance is (μ_a − μ_b)² + (σ_a − σ_b)²."""
    return (0 - 2) ** 2 + (1 - 2) ** 2


def exercise_5():
    """By construction 1 % of held-out real images lie above their 99th percentile; new real
    images from the same distribution are flagged at the same rate: the false-positive rate."""
    return 0.01
