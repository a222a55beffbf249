"""The built-in datasets: data that installed packages ship, plus seeded generators.

Built-in sets use only scikit-image, scikit-learn and nilearn files plus seeded generators, so they
never touch the network and are the same for the same ``seed``. The histology crops come from
disjoint ``region="train"`` / ``"test"`` parts of one image when asked, so held-out patches are
unseen. Load them with :func:`helpers.datasets.load`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from . import brain_phantom
from .base import Dataset, center_square, check_n, check_size, resize, to_tensor

logger = logging.getLogger(__name__)


def _random_patches(
    image: np.ndarray, n: int, size: int, rng: np.random.Generator, augment: bool = True
) -> np.ndarray:
    """``n`` random ``size × size`` crops of an (H, W[, C]) image with random flips and rotations."""
    h, w = image.shape[:2]
    tops = rng.integers(0, h - size + 1, n)
    lefts = rng.integers(0, w - size + 1, n)
    out = []
    for top, left in zip(tops, lefts, strict=True):
        patch = image[top : top + size, left : left + size]
        if augment:
            patch = np.rot90(patch, k=int(rng.integers(4)))
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
        out.append(np.ascontiguousarray(patch))
    return np.stack(out)


# --------------------------------------------------------------------------------------------
# built-in sets


@lru_cache(maxsize=4)
def skimage_image(name: str) -> np.ndarray:
    """One of scikit-image's bundled images as shipped, ``(H, W)`` or ``(H, W, 3)``, read-only.

    ``name`` is a function of ``skimage.data`` (e.g. ``"immunohistochemistry"``). Raises
    ValueError for an unknown name, FileNotFoundError (saying how to install it) when the image
    is not installed and cannot be fetched offline.

    >>> skimage_image("immunohistochemistry").shape
    (512, 512, 3)
    """
    from skimage import data

    if not isinstance(name, str) or not callable(getattr(data, name, None)):
        raise ValueError(
            f"skimage.data has no image {name!r}; expected e.g. 'immunohistochemistry'"
        )
    try:
        image = np.asarray(getattr(data, name)())
    except Exception as err:  # pooch raises various errors when a file is not shipped
        raise FileNotFoundError(
            f"scikit-image's {name!r} image is not installed on this machine and cannot be "
            f"downloaded offline ({type(err).__name__}: {err}). Install the scikit-image data with "
            f'`python -c "import skimage.data; skimage.data.download_all()"` on a machine with '
            f"network access, or choose another built-in dataset."
        ) from err
    image.flags.writeable = False  # the cached array is shared by every caller
    return image


HISTOLOGY_REGIONS: dict[str, str] = {
    "all": "whole image",
    "train": "left ¾",
    "test": "right ¼",
}
"""Regions of the immunohistochemistry image that ``load("histology", region=…)`` crops from."""


def histology_columns(region: str = "all", width: int = 512) -> tuple[int, int]:
    """Columns ``[start, stop)`` of a histology ``region`` (a key of :data:`HISTOLOGY_REGIONS`).

    Crops from ``"train"`` (left ¾) and ``"test"`` (right ¼, 128 px) never share a pixel.

    >>> histology_columns("train"), histology_columns("test")
    ((0, 384), (384, 512))
    """
    if region not in HISTOLOGY_REGIONS:
        raise ValueError(
            f"unknown histology region {region!r}; expected one of {', '.join(HISTOLOGY_REGIONS)}"
        )
    split = width * 3 // 4
    return {"all": (0, width), "train": (0, split), "test": (split, width)}[region]


def _histology_labels(patches: np.ndarray) -> np.ndarray:
    """1 where a patch is DAB-positive (brown stain covers more than 10 % of it), else 0."""
    from skimage.color import rgb2hed

    dab = np.stack([rgb2hed(p)[..., 2] for p in patches])
    positive = (dab > 0.05).mean(axis=(1, 2))
    return (positive > 0.10).astype(np.int64)


def _histology(n, size, seed, root, *, region: str = "all"):
    size = check_size(size, 32, 128, "histology")
    n = check_n(n, 256, "histology")
    image = skimage_image("immunohistochemistry")
    start, stop = histology_columns(region, image.shape[1])
    rng = np.random.default_rng(seed)
    patches = _random_patches(image[:, start:stop], n, size, rng)
    labels = torch.from_numpy(_histology_labels(patches))
    return Dataset(
        to_tensor(patches),
        labels,
        f"{n} random {size}×{size} crops (random flips and 90° rotations) of scikit-image's "
        f"immunohistochemistry image (DAB/haematoxylin; region {region!r}: {HISTOLOGY_REGIONS[region]}, columns "
        f"{start}–{stop - 1}); "
        "label 1 = DAB-positive patch",
        class_names=("DAB-negative", "DAB-positive"),
    )


def _brain(n, size, seed, root, *, lesion_fraction: float = 0.5):
    size = check_size(size, 64, 256, "brain")
    n = check_n(n, 128, "brain")
    images, labels = brain_phantom.generate(n, size, seed=seed, lesion_fraction=lesion_fraction)
    return Dataset(
        images,
        labels,
        f"{n} BraTS-like {size}×{size} axial slices of the MNI152 T1 template (nilearn) with mild "
        "random deformation; label 1 = slice carries a synthetic tumour (core + oedema ring)",
        class_names=("healthy", "lesion"),
    )


def _digits(n, size, seed, root):
    from sklearn.datasets import load_digits

    size = check_size(size, 16, 64, "digits")
    d = load_digits()
    total = len(d.target)
    n = check_n(n, total, "digits", maximum=total)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(total)[:n]) if n < total else np.arange(total)
    images = torch.from_numpy(d.images[idx].astype(np.float32) / 16.0)[:, None]
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return Dataset(
        images.clamp(0, 1).contiguous(),
        torch.from_numpy(d.target[idx].astype(np.int64)),
        f"{n} handwritten digits from scikit-learn (8×8, 16 grey levels), upsampled to {size}×{size}",
        class_names=tuple(str(i) for i in range(10)),
    )


TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel")


def _textures(n, size, seed, root):
    size = check_size(size, 32, 256, "textures")
    n = check_n(n, 300, "textures")
    rng = np.random.default_rng(seed)
    counts = [n // len(TEXTURES) + (i < n % len(TEXTURES)) for i in range(len(TEXTURES))]
    patches, labels = [], []
    for label, (name, count) in enumerate(zip(TEXTURES, counts, strict=True)):
        if count:
            patches.append(_random_patches(skimage_image(name), count, size, rng))
            labels += [label] * count
    order = rng.permutation(n)
    images = to_tensor(np.concatenate(patches))[order]
    return Dataset(
        images.contiguous(),
        torch.tensor(labels, dtype=torch.int64)[order],
        f"{n} random {size}×{size} grey patches of scikit-image's textures ({', '.join(TEXTURES)})",
        class_names=TEXTURES,
    )


def _faces(n, size, seed, root):
    from skimage.data import lfw_subset

    size = check_size(size, 25, 128, "faces")
    faces = np.asarray(lfw_subset(), dtype=np.float32)  # (200, 25, 25), first 100 are faces
    n = check_n(n, len(faces), "faces", maximum=len(faces))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(faces))[:n])
    images = resize(torch.from_numpy(faces[idx])[:, None], size)
    labels = torch.from_numpy((idx < 100).astype(np.int64))
    return Dataset(
        images.contiguous(),
        labels,
        f"{n} grey {size}×{size} crops from scikit-image's LFW subset; label 1 = face, 0 = non-face",
        class_names=("non-face", "face"),
    )


def _single(image_name: str, what: str) -> Callable:
    def loader(n, size, seed, root):
        if n not in (None, 1):
            raise ValueError(f"{image_name!r} is a single image: n must be 1 or None, got {n}")
        img = to_tensor(skimage_image(image_name))
        size = check_size(size, img.shape[-1], 4096, image_name)
        return Dataset(
            resize(center_square(img), size), None, f"{what} ({size}×{size}), from scikit-image"
        )

    return loader


BUILTIN: dict[str, Callable] = {
    "histology": _histology,
    "brain": _brain,
    "digits": _digits,
    "textures": _textures,
    "faces": _faces,
    "retina": _single("retina", "a human retina fundus photograph"),
    "camera": _single("camera", "the 'cameraman' photograph"),
    "astronaut": _single("astronaut", "Eileen Collins, astronaut, in colour"),
}
