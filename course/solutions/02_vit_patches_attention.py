"""Reference solutions for the exercises of notebook 02 (for instructors)."""


def exercise_1():
    """(16/2)² = 64 patch tokens plus the class token: 65 (the score matrix has 65² entries, about
    4× more than with 4×4 patches — attention cost grows with the square of the token count)."""
    return (16 // 2) ** 2 + 1


def exercise_2():
    """N² scores × 4 bytes = 8192² × 4 = 268,435,456 bytes (256 MiB) for one head of one image."""
    return 8192**2 * 4


def exercise_3():
    """(8192 / 2048)² = 16: four times the tokens, sixteen times the work."""
    return (8192 / 2048) ** 2


def exercise_4():
    """Tiles that fit: ⌊100000/256⌋ = 390 per side, 390² = 152,100 tokens — far beyond dense
    attention, which is why Prov-GigaPath uses dilated attention (LongNet) over the tiles."""
    return (100_000 // 256) ** 2
