"""Datasets: built-in offline sets and loaders for real external ones, all through :func:`load`.

Everything comes back as a :class:`Dataset` whose ``images`` are a float32 tensor
``(N, C, H, W)`` with values in ``[0, 1]``.

* :mod:`helpers.datasets.builtin` — data that installed packages ship (histology, brain, digits,
  textures, faces, retina, camera, astronaut), never touching the network;
* :mod:`helpers.datasets.brain_phantom` — the seeded generator of BraTS-like brain slices;
* :mod:`helpers.datasets.brain_volumes` — the seeded generator of 3-D brain volumes and their
  out-of-distribution families; whole volumes load through :func:`load_volumes`;
* :mod:`helpers.datasets.external` — image folders, BraTS-style NIfTI volumes, MNIST and
  Fashion-MNIST from a local folder, with messages that say what to download and where to put it;
* :mod:`helpers.datasets.base` — :class:`Dataset` and the conversions the loaders share.

Examples
--------
>>> from helpers import datasets
>>> ds = datasets.load("digits", n=16, size=16, seed=0)
>>> tuple(ds.images.shape), ds.labels.shape[0]
((16, 1, 16, 16), 16)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import brain_volumes, external
from .base import Dataset, Volumes, center_square, resize, to_cube, to_tensor
from .builtin import BUILTIN, HISTOLOGY_REGIONS, TEXTURES, histology_columns, skimage_image

__all__ = [
    "BUILTIN",
    "EXTERNAL",
    "HISTOLOGY_REGIONS",
    "TEXTURES",
    "VOLUMES",
    "Dataset",
    "Volumes",
    "available",
    "center_square",
    "histology_columns",
    "load",
    "load_volumes",
    "resize",
    "skimage_image",
    "to_cube",
    "to_tensor",
]

EXTERNAL: dict[str, Callable] = {
    "image_folder": external.image_folder,
    "nifti": external.nifti,
    "mnist": external.mnist,
    "fashion_mnist": external.fashion_mnist,
}

VOLUMES: dict[str, Callable] = {
    "brain": brain_volumes.load,
    "nifti": external.nifti_volumes,
}
"""Loaders of whole 3-D volumes (:func:`load_volumes`): built-in ``brain``, external ``nifti``."""


def _check_options(name: str, loader: Callable, options: dict) -> None:
    """Raise a TypeError naming the options ``loader`` does not take, and those it does.

    A loader is called as ``loader(n, size, seed, root, **options)``; its options are its
    keyword-only parameters.
    """
    params = inspect.signature(loader).parameters.values()
    known = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = f"it takes: {', '.join(known)}" if known else "it takes no options"
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; {takes}")


def available(*, external_too: bool = True) -> list[str]:
    """Names accepted by :func:`load`: the built-in sets, then the external loaders."""
    return list(BUILTIN) + (list(EXTERNAL) if external_too else [])


def load(
    name: str,
    *,
    n: int | None = None,
    size: int | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    **options,
) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        One of :func:`available`.
    n : int, optional
        Number of images (default: a per-dataset default, or all of them).
    size : int, optional
        Height and width in pixels (default per dataset).
    seed : int
        Seed of crops, subsets and generators: the same seed gives the same images.
    root : str or Path, optional
        Folder of an external dataset (``image_folder``, ``nifti``, ``mnist``, ``fashion_mnist``).
    **options
        Loader-specific options (e.g. ``region`` for ``histology``: ``"train"``, ``"test"`` or
        ``"all"``, see :func:`histology_columns`; ``lesion_fraction`` for ``brain``;
        ``channels`` for ``image_folder``; ``modality`` for ``nifti``; ``train`` for ``mnist``).

    Returns
    -------
    Dataset
        ``images`` float32 ``(N, C, H, W)`` in ``[0, 1]``, ``labels`` or ``None``, ``description``.

    Raises
    ------
    ValueError
        For an unknown name, out-of-range ``n``/``size`` or a bad option value.
    TypeError
        For an option the loader does not take (the message lists those it takes).
    FileNotFoundError
        When an external dataset is not found under ``root`` (the message says what to download).
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    if name not in BUILTIN and name not in EXTERNAL:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available())}")
    if name in BUILTIN and root is not None:
        raise ValueError(f"{name!r} is built in and takes no root (got root={root!r})")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    loader = BUILTIN.get(name) or EXTERNAL[name]
    _check_options(name, loader, options)
    ds = loader(n, size, seed, root, **options)
    ds.name = name
    return ds


def load_volumes(
    name: str,
    *,
    n: int | None = None,
    size: int | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    **options,
) -> Volumes:
    """Load whole 3-D volumes by name: ``"brain"`` (built in) or ``"nifti"`` (a local folder).

    Parameters
    ----------
    name : str
        A key of :data:`VOLUMES`.
    n : int, optional
        Number of volumes (default 32 for ``brain``, all for ``nifti``).
    size : int, optional
        Side of the cubes in voxels (default 48).
    seed : int
        Seed of the generator, or of the draw of ``n`` cases.
    root : str or Path, optional
        Folder of ``nifti`` volumes (default ``data/cache/brats``); not for ``brain``.
    **options
        ``lesion_fraction``, ``deform`` for ``brain``; ``modality``, ``split``,
        ``test_fraction`` for ``nifti``.

    Returns
    -------
    Volumes
        ``volumes`` float32 ``(N, size, size, size)`` in ``[0, 1]``.

    Raises
    ------
    ValueError
        Unknown name, ``root`` for the built-in set, bad option values.
    TypeError
        An option the loader does not take.
    FileNotFoundError
        ``nifti`` volumes missing under ``root`` (the message says what to download).

    Examples
    --------
    >>> vols = load_volumes("brain", n=2, size=16)
    >>> tuple(vols.volumes.shape), vols.class_names
    ((2, 16, 16, 16), ('healthy', 'lesion'))
    """
    if not isinstance(name, str):
        raise TypeError(f"volume set name must be a string, got {type(name).__name__}")
    if name not in VOLUMES:
        raise ValueError(f"unknown volume set {name!r}; available: {', '.join(VOLUMES)}")
    if name == "brain" and root is not None:
        raise ValueError(f"'brain' volumes are built in and take no root (got root={root!r})")
    loader = VOLUMES[name]
    _check_options(name, loader, options)
    vols = loader(n, size, seed, root, **options)
    vols.name = name
    return vols
