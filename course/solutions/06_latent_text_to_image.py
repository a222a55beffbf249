"""Reference solutions for the exercises of notebook 06 (for instructors)."""


def exercise_1():
    """3·512·512 values become 4·64·64: a factor 786432 / 16384 = 48."""
    return 3 * 512 * 512 / (4 * 64 * 64)


def exercise_2():
    """Multiplying by 1/std gives unit variance: 1 / 3.2 = 0.3125 (Stable Diffusion: 1/5.49 = 0.18215)."""
    return 1 / 3.2


def exercise_3():
    """diffusers combines ε_u + s·(ε_c − ε_u) = s·ε_c − (s − 1)·ε_u; the kit writes (1 + w)·ε_c − w·ε_u,
    so s = 1 + w = 7.5 (Stable Diffusion's default)."""
    return 1 + 6.5


def exercise_4():
    """(16 / 2)·(256 / 16)·(256 / 16) = 8·16·16 = 2048 tokens."""
    return (16 // 2) * (256 // 16) * (256 // 16)


def exercise_5():
    """Tokens grow with frames × height × width: 2·2·2 = 8; attention with N²: 8² = 64."""
    return (2 * 2 * 2) ** 2
