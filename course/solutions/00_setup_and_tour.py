"""Reference solutions for the exercises of notebook 00 (for instructors)."""

from helpers import datasets


def exercise_1():
    """Count the slices with a lesion: half of them, as lesion_fraction=0.5 sets."""
    return int(datasets.load("brain", n=200, size=64, seed=3).labels.sum())


def exercise_2():
    """Mean colour per patch, then the channel with the largest gap between the two classes."""
    ds = datasets.load("histology", n=64, size=32, seed=0)
    mean = ds.images.mean(dim=(2, 3))
    gap = (mean[ds.labels == 1].mean(0) - mean[ds.labels == 0].mean(0)).abs()
    return ("red", "green", "blue")[int(gap.argmax())]  # blue: brown DAB absorbs blue light


def exercise_3():
    """Without CUDA, auto means laptop."""
    return "laptop"
