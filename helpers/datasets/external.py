"""Loaders for real external datasets, from a local folder (never downloading by default).

Each loader takes ``(n, size, seed, root, *, options…)`` and returns a
:class:`helpers.datasets.Dataset`; use them through :func:`helpers.datasets.load`. When files are
missing the error names the folder looked at, what to download and where to put it. The registry
of sources and licences is ``data/registry.json``. Files come with no checksum of ours: image
folders and BraTS volumes are the user's own, and torchvision verifies the MNIST files it
downloads (``download=True``) against their published MD5 sums.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from ..runtime import cache_dir, project_root
from .base import Dataset, Volumes, center_square, check_n, check_size, resize, to_cube

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def registry() -> dict[str, dict]:
    """The external datasets' registry (``data/registry.json``): url, licence, how to get them."""
    path = project_root() / "data" / "registry.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _hint(name: str, *, how: bool = True) -> str:
    """Registry advice for ``name``: how to get it (unless ``how=False``), source and licence."""
    entry = registry().get(name, {})
    parts = [entry.get("how", "") if how else ""]
    if entry.get("url"):
        parts.append(f"Source: {entry['url']}")
    if entry.get("licence"):
        parts.append(f"Licence: {entry['licence']}")
    return " ".join(p for p in parts if p)


def _default_root(name: str) -> Path:
    return cache_dir() / name


def _missing(name: str, root: Path, what: str, key: str | None = None) -> FileNotFoundError:
    """``FileNotFoundError`` saying ``what`` was not found under ``root`` and how to get it."""
    return FileNotFoundError(f"{name}: no {what} found under {root}. {_hint(key or name)}".strip())


def _no_folder(name: str, root: Path, key: str | None = None) -> FileNotFoundError:
    """``FileNotFoundError`` saying the folder ``root`` does not exist and how to get the data."""
    return FileNotFoundError(
        f"{name}: the folder {root} does not exist. {_hint(key or name)}".strip()
    )


def _subset(count: int, n: int | None, seed: int) -> np.ndarray:
    if n is None or n >= count:
        return np.arange(count)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return np.sort(np.random.default_rng(seed).permutation(count)[:n])


def _visible(path: Path) -> bool:
    """Not hidden: no leading ``.`` (``.ipynb_checkpoints``, macOS ``._x.png`` resource forks)
    and not ``__pycache__`` / ``__MACOSX`` (zip archives made on a Mac)."""
    return not path.name.startswith(".") and path.name not in ("__pycache__", "__MACOSX")


HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
"""Pillow modes of 16-bit integer, 32-bit integer and 32-bit float single-channel images."""


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """One image file as an image viewer shows it: ``(H, W, channels)`` float32 in ``[0, 1]``.

    * the EXIF orientation is applied (photos from phones and cameras stand upright);
    * 8-bit modes (grey, RGB, palette, CMYK, YCbCr, bilevel …) are converted by Pillow; 16-bit
      images (``I;16``, and Pillow's ``I`` holding values up to 65535, as 16-bit PNGs from
      microscopes and scanners) are divided by 65535; 32-bit float images (``F``, e.g. TIFFs)
      in ``[0, 1]`` are kept, others are scaled by their own minimum and maximum (as ImageJ shows
      them), with a warning;
    * transparency (an alpha channel, a palette's transparent colour, ``LA``/``PA``/``RGBA``) is
      composited over white, as a browser shows it on a page;
    * grey becomes RGB by repetition, RGB becomes grey by ITU-R 601 luma (Pillow's ``"L"``).

    Raises
    ------
    ValueError
        The file cannot be decoded (truncated, not an image), or holds NaN or Inf, or integer
        values outside 16 bits; the message names the file.
    """
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with Image.open(path) as opened:
            img = ImageOps.exif_transpose(opened)
            img.load()
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError … for bad files
        raise ValueError(f"{path} is not a readable image ({type(err).__name__}: {err})") from err
    if img.mode in HIGH_DEPTH_MODES:
        a = np.asarray(img)
        if a.dtype.kind == "f":
            if not np.isfinite(a).all():
                raise ValueError(
                    f"{path} holds {int((~np.isfinite(a)).sum())} NaN or Inf pixel(s); fix the file"
                )
            low, high = float(a.min()), float(a.max())
            if low < 0 or high > 1:
                logger.warning("%s: float pixels in [%g, %g], scaled to [0, 1]", path, low, high)
                a = (a - low) / (high - low) if high > low else np.zeros_like(a)
        else:
            if int(a.min()) < 0 or int(a.max()) > 65535:
                raise ValueError(
                    f"{path} holds 32-bit integer pixels from {int(a.min())} to {int(a.max())}, "
                    "outside 16 bits; convert it to 8- or 16-bit, or to float in [0, 1]"
                )
            a = a / 65535.0
        grey = a.astype(np.float32)[..., None]
        return np.repeat(grey, channels, axis=-1) if channels == 3 else grey
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
    a = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return a[..., None] if a.ndim == 2 else a


def image_folder(n, size, seed, root, *, channels: int = 3):
    """Images under ``root/<class>/*.png|jpg|tif|…``; labels are the sorted class folder names.

    Only real class folders count: hidden folders (``.ipynb_checkpoints``, ``.DS_Store``
    bundles …), ``__pycache__`` and ``__MACOSX`` are skipped, and so are hidden files (macOS
    ``._*`` resource forks). Every file is read as a viewer shows it (:func:`read_image`), cropped
    to its central square and resized to ``size`` (default 64).

    Raises
    ------
    ValueError
        No ``root``; ``channels`` not 1 or 3; ``size``/``n`` not positive ints; a class folder
        without images (its label would shift every later class); a file that is not a
        readable image (named).
    FileNotFoundError
        ``root`` does not exist or holds no images in class folders.
    """
    if root is None:
        raise ValueError("image_folder needs root=<folder with one sub-folder per class>")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    size = check_size(size, 64, 4096, "image_folder")
    check_n(n, 0, "image_folder")
    root = Path(root)
    if not root.is_dir():
        raise _no_folder("image_folder", root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and _visible(p))
    per_class = {
        cls: [
            f
            for f in sorted((root / cls).iterdir())
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and _visible(f)
        ]
        for cls in classes
    }
    files = [(f, c) for c, cls in enumerate(classes) for f in per_class[cls]]
    if not files:
        raise _missing(
            "image_folder", root, f"images ({', '.join(IMAGE_SUFFIXES)}) in class sub-folders"
        )
    empty = [cls for cls in classes if not per_class[cls]]
    if empty:
        raise ValueError(
            f"image_folder: the class folder(s) {', '.join(map(repr, empty))} under {root} hold no "
            f"images ({', '.join(IMAGE_SUFFIXES)}); remove them or add images, so that the labels "
            "of the other classes do not depend on them"
        )
    pick = _subset(len(files), n, seed)
    images = [
        resize(
            center_square(
                torch.from_numpy(read_image(files[i][0], channels)).permute(2, 0, 1)[None]
            ),
            size,
        )
        for i in pick
    ]  # each (1, C, size, size)
    labels = torch.tensor([files[i][1] for i in pick], dtype=torch.int64)
    return Dataset(
        torch.cat(images),
        labels,
        f"{len(pick)} images from {root} ({len(classes)} classes)",
        class_names=tuple(classes),
    )


NIFTI_SPLITS = ("all", "train", "test")


def case_split(case: str, test_fraction: float = 0.2) -> str:
    """The patient-level split, ``"train"`` or ``"test"``, of a case (volume) name.

    A case is held out when the first 8 bytes of the SHA-256 of its name, read as a fraction in
    ``[0, 1)``, are below ``test_fraction``. The answer depends on the name alone: not on the seed,
    on ``n``, on the modality or on which other cases are in the folder, so adding or removing
    cases never moves a case from one split to the other.

    Parameters
    ----------
    case : str
        Case name, e.g. ``"BraTS2021_00000"`` (the file name without ``_<modality>.nii.gz``).
    test_fraction : float
        Expected fraction of cases held out, strictly between 0 and 1.

    Returns
    -------
    str
        ``"test"`` or ``"train"``.

    Examples
    --------
    >>> case_split("BraTS2021_00000") in ("train", "test")
    True
    """
    _check_fraction(test_fraction)
    digest = hashlib.sha256(case.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def _check_fraction(test_fraction: float) -> None:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise TypeError(f"test_fraction must be a float, got {type(test_fraction).__name__}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction}")


def _check_count(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _seg_path(vol_path: Path, modality: str) -> Path | None:
    stem = vol_path.name.split(f"_{modality}.nii")[0]
    for suffix in ("_seg.nii.gz", "_seg.nii"):
        if (vol_path.parent / f"{stem}{suffix}").exists():
            return vol_path.parent / f"{stem}{suffix}"
    return None


def _read_volume(path: Path, what: str = "volume") -> np.ndarray:
    """A NIfTI file as a float32 3-D array with its scaling (``scl_slope``/``scl_inter``)
    applied; a 4-D file of one volume ``(X, Y, Z, 1)`` is squeezed. Errors name the file."""
    import nibabel as nib

    try:
        vol = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    except Exception as err:  # gzip, zlib, nibabel and OS errors all mean "cannot read it"
        raise ValueError(
            f"{path}: cannot read this NIfTI {what} ({type(err).__name__}: {err}); the file is "
            "truncated or damaged, download or copy it again"
        ) from err
    while vol.ndim > 3 and vol.shape[-1] == 1:
        vol = vol[..., 0]
    if vol.ndim != 3:
        raise ValueError(
            f"{path}: expected a 3-D volume, got shape {vol.shape}"
            + (" (several volumes or time points: save the one to use as its own file)"
               if vol.ndim == 4 else "")
        )  # fmt: skip
    return vol


def nifti(
    n: int | None,
    size: int | None,
    seed: int,
    root: str | Path | None,
    *,
    modality: str = "t1",
    min_brain_fraction: float = 0.15,
    split: str = "all",
    test_fraction: float = 0.2,
    slices_per_case: int | None = None,
) -> Dataset:
    """Axial slices of BraTS-style volumes: ``root/**/<case>_<modality>.nii.gz`` (+ ``_seg``).

    Each volume is read with its scaling slope and intercept applied (any integer or float
    type), scaled by its 99.5th percentile; slices whose non-zero area is below
    ``min_brain_fraction`` of the slice are skipped. NaN or Inf voxels (written outside the brain
    by some pipelines) are set to 0 and counted in the description; a file of one volume stored
    as 4-D ``(X, Y, Z, 1)`` is read as 3-D. With a ``_seg`` file beside every volume, a
    slice's label says whether it contains tumour; when any volume lacks one, ``labels`` is
    ``None`` and the description says so.

    Reading is bounded: the cases are shuffled with ``seed`` and read one at a time, each kept
    slice cropped to its central square and resized to ``size`` at once, until at least ``n``
    slices are in hand; ``n`` of them are then drawn with ``seed``. Memory is therefore about
    ``(n + one volume's slices) × size²`` rather than the whole dataset, and only as many volumes
    are opened as ``n`` needs (all of them when ``n`` is ``None``).

    Parameters
    ----------
    n : int or None
        Number of slices (at most; fewer when the cases hold fewer). ``None``: all of them.
    size : int or None
        Height and width of the returned slices (default 64).
    seed : int
        Seed of the case order, of ``slices_per_case`` and of the final draw.
    root : str, Path or None
        Folder searched recursively (default ``data/cache/brats``).
    modality : str
        File suffix of the volumes: ``"t1"``, ``"t1ce"``, ``"t2"`` or ``"flair"`` for BraTS.
    min_brain_fraction : float
        Smallest fraction of a slice, in ``[0, 1]``, that must be brain (value above 0.05).
    split : {"all", "train", "test"}
        Patient-level split: adjacent slices of one volume are near-duplicates, so ``"train"`` and
        ``"test"`` never share a case. Which split a case is in is decided by
        :func:`case_split` from its name alone, independent of ``n`` and ``seed``.
    test_fraction : float
        Expected fraction of cases in ``"test"``, strictly between 0 and 1 (used when ``split`` is
        not ``"all"``).
    slices_per_case : int or None
        At most this many slices from each volume, drawn with ``seed``: smaller values spread the
        ``n`` slices over more patients, at the cost of opening more volumes.

    Returns
    -------
    Dataset
        ``images`` ``(N, 1, size, size)`` in ``[0, 1]``, ordered by case name then slice;
        ``labels`` ``(N,)`` (0 healthy, 1 lesion) or ``None`` without ``_seg`` files.

    Raises
    ------
    FileNotFoundError
        When ``root`` does not exist or holds no ``*_<modality>.nii[.gz]`` volume (the message
        says what to download and where to put it).
    ValueError
        For a bad ``split``, ``test_fraction``, ``min_brain_fraction``, ``n`` or
        ``slices_per_case``, a split that selects no case, a volume that is not 3-D (several
        volumes in one file), a file that cannot be read (truncated, damaged), a ``_seg`` file
        of another shape than its volume, or when no slice has enough brain.

    Examples
    --------
    Training and held-out slices from disjoint sets of patients:

    >>> train = load("nifti", n=512, size=64, split="train")  # doctest: +SKIP
    >>> test = load("nifti", n=128, size=64, split="test")  # doctest: +SKIP
    """
    if not isinstance(modality, str):
        raise TypeError(f"modality must be a string such as 't1', got {type(modality).__name__}")
    if not modality:
        raise ValueError("modality must be a non-empty string such as 't1', got ''")
    if not 0 <= min_brain_fraction <= 1:
        raise ValueError(f"min_brain_fraction must be in [0, 1], got {min_brain_fraction}")
    if split not in NIFTI_SPLITS:
        raise ValueError(
            f"split must be one of {', '.join(map(repr, NIFTI_SPLITS))}, got {split!r}"
        )
    _check_fraction(test_fraction)
    _check_count("n", n)
    _check_count("slices_per_case", slices_per_case)
    _check_count("size", size)
    size = size or 64

    root = Path(root) if root is not None else _default_root("brats")
    if not root.is_dir():
        raise _no_folder("nifti", root, key="brats")
    vols = sorted(root.rglob(f"*_{modality}.nii.gz")) + sorted(root.rglob(f"*_{modality}.nii"))
    if not vols:
        raise _missing("nifti", root, f"volumes named *_{modality}.nii.gz", key="brats")
    cases = [(p.name.split(f"_{modality}.nii")[0], p) for p in vols]
    if split != "all":
        cases = [(c, p) for c, p in cases if case_split(c, test_fraction) == split]
        if not cases:
            raise ValueError(
                f"split={split!r} with test_fraction={test_fraction} selects none of the "
                f"{len(vols)} cases under {root}; add cases or change test_fraction"
            )
    segs = [_seg_path(p, modality) for _, p in cases]
    without_seg = sum(s is None for s in segs)
    labelled = without_seg == 0

    rng = np.random.default_rng(seed)
    order = range(len(cases)) if n is None else rng.permutation(len(cases))
    kept: list[tuple[int, torch.Tensor, list[int]]] = []  # (case index, images, labels)
    total = nonfinite = 0
    for i in order:
        vol_path = cases[i][1]
        vol = _read_volume(vol_path)
        bad = ~np.isfinite(vol)
        if bad.any():
            nonfinite += int(bad.sum())
            logger.warning("%s: %d NaN or Inf voxels set to 0", vol_path, int(bad.sum()))
            vol[bad] = 0
        positive = vol[vol > 0]
        scale = float(np.percentile(positive, 99.5)) if positive.size else 1.0
        vol = np.clip(vol / scale, 0, 1, dtype=np.float32)
        zs = [z for z in range(vol.shape[2]) if (vol[:, :, z] > 0.05).mean() >= min_brain_fraction]
        if slices_per_case is not None and len(zs) > slices_per_case:
            zs = sorted(rng.choice(zs, slices_per_case, replace=False).tolist())
        if not zs:
            continue
        seg = _read_volume(segs[i], "segmentation") if labelled else None
        if seg is not None and seg.shape != vol.shape:
            raise ValueError(
                f"{segs[i]}: segmentation of shape {seg.shape} does not match its volume "
                f"{vol_path} of shape {vol.shape}"
            )
        labels = [int(seg is not None and (seg[:, :, z] > 0).any()) for z in zs]
        stack = np.stack([np.rot90(vol[:, :, z]) for z in zs])[:, None]  # (k, 1, H, W)
        images = resize(center_square(torch.from_numpy(stack)), size).contiguous()
        kept.append((int(i), images, labels))
        total += len(zs)
        del vol, seg, stack
        if n is not None and total >= n:
            break
    if not kept:
        raise ValueError(
            f"no slice in the {len(cases)} volumes under {root} has a brain area of at least "
            f"{min_brain_fraction:.0%}; lower min_brain_fraction"
        )
    kept.sort(key=lambda item: item[0])
    images = torch.cat([item[1] for item in kept])
    labels = [label for item in kept for label in item[2]]
    case_of = np.concatenate([[item[0]] * len(item[2]) for item in kept])
    pick = np.arange(total) if n is None or n >= total else np.sort(rng.permutation(total)[:n])
    used = len(np.unique(case_of[pick]))
    where = f"split {split!r}, " if split != "all" else ""
    if labelled:
        label_text = "labels: 1 = the slice contains tumour in its _seg file"
    elif without_seg == len(cases):
        label_text = "unlabelled: no _seg files"
    else:
        label_text = f"unlabelled: {without_seg} of the {len(cases)} cases have no _seg file"
    return Dataset(
        images[torch.from_numpy(pick)].contiguous(),
        torch.tensor([labels[j] for j in pick], dtype=torch.int64) if labelled else None,
        f"{len(pick)} axial {modality} slices from {used} of {len(cases)} NIfTI volumes "
        f"({where}under {root}); {label_text}"
        + (f"; {nonfinite} NaN or Inf voxels were set to 0" if nonfinite else ""),
        class_names=("healthy", "lesion") if labelled else (),
    )


def _torchvision(kind: str, n, size, seed, root, *, train: bool = True, download: bool = False):
    import torchvision

    size = check_size(size, 28, 1024, kind)  # 0 is an error, not the default 28
    check_n(n, 0, kind)
    root = Path(root) if root is not None else _default_root(kind)
    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[
        kind
    ]
    try:
        ds = cls(str(root), train=train, download=download)
    except RuntimeError as err:
        raise FileNotFoundError(
            f"{kind}: the raw files were not found under {root / cls.__name__ / 'raw'}. "
            f"Call load({kind!r}, download=True) on a machine with network access, or copy the four "
            f"idx files there. {_hint(kind, how=False)}"
        ) from err
    pick = _subset(len(ds.targets), n, seed)
    images = ds.data[torch.from_numpy(pick)].float().div(255)[:, None]
    classes = tuple(getattr(ds, "classes", ())) or tuple(str(i) for i in range(10))
    return Dataset(
        resize(images, size).contiguous(),
        ds.targets[torch.from_numpy(pick)].long(),
        f"{len(pick)} {kind} images from {root}",
        class_names=classes,
    )


def mnist(n, size, seed, root, *, train: bool = True, download: bool = False):
    """MNIST from ``root`` (default ``data/cache/mnist``) via torchvision; never downloads unless
    ``download=True``. ``train`` picks the 60,000 training or the 10,000 test digits."""
    return _torchvision("mnist", n, size, seed, root, train=train, download=download)


def fashion_mnist(n, size, seed, root, *, train: bool = True, download: bool = False):
    """Fashion-MNIST from ``root`` (default ``data/cache/fashion_mnist``) via torchvision."""
    return _torchvision("fashion_mnist", n, size, seed, root, train=train, download=download)


def nifti_volumes(
    n: int | None,
    size: int | None,
    seed: int,
    root: str | Path | None,
    *,
    modality: str = "t1",
    split: str = "all",
    test_fraction: float = 0.2,
) -> Volumes:
    """Whole BraTS-style volumes, ``root/**/<case>_<modality>.nii[.gz]``, as cubes.

    Each volume is scaled by the 99.5th percentile of its positive voxels and clipped to
    ``[0, 1]`` (as :func:`nifti` does for slices), reoriented to axial slices first (anterior at
    the top of each slice), cropped to its non-zero box, padded to a cube and resampled to
    ``size³`` (:func:`helpers.datasets.to_cube`). With a ``_seg`` file beside every volume the
    label says whether the case has any tumour voxel; otherwise ``labels`` is ``None``.

    Parameters
    ----------
    n : int or None
        Number of volumes (at most; all when ``None``), drawn with ``seed``.
    size : int or None
        Side of the returned cubes (default 48).
    seed : int
        Seed of the draw of ``n`` cases.
    root : str, Path or None
        Folder searched recursively (default ``data/cache/brats``).
    modality : str
        File suffix of the volumes (``"t1"``, ``"t1ce"``, ``"t2"``, ``"flair"`` for BraTS).
    split : {"all", "train", "test"}
        Patient-level split by :func:`case_split` (the case name alone decides).
    test_fraction : float
        Expected share of cases in ``"test"``.

    Returns
    -------
    Volumes
        ``volumes`` ``(N, size, size, size)`` in ``[0, 1]``, ordered by case name.

    Raises
    ------
    FileNotFoundError
        ``root`` missing or without volumes (the message says what to download and where).
    ValueError
        A file that is not 3-D or holds NaN voxels (the message names it), a bad ``split``,
        ``test_fraction``, ``n`` or ``size``, or a split that selects no case.
    """
    import nibabel as nib

    if not isinstance(modality, str) or not modality:
        raise ValueError(f"modality must be a non-empty string such as 't1', got {modality!r}")
    if split not in NIFTI_SPLITS:
        raise ValueError(
            f"split must be one of {', '.join(map(repr, NIFTI_SPLITS))}, got {split!r}"
        )
    _check_fraction(test_fraction)
    _check_count("n", n)
    _check_count("size", size)
    size = size or 48
    root = Path(root) if root is not None else _default_root("brats")
    if not root.is_dir():
        raise _no_folder("nifti_volumes", root, key="brats")
    vols = sorted(root.rglob(f"*_{modality}.nii.gz")) + sorted(root.rglob(f"*_{modality}.nii"))
    if not vols:
        raise _missing("nifti_volumes", root, f"volumes named *_{modality}.nii.gz", key="brats")
    cases = sorted((p.name.split(f"_{modality}.nii")[0], p) for p in vols)
    if split != "all":
        cases = [(c, p) for c, p in cases if case_split(c, test_fraction) == split]
        if not cases:
            raise ValueError(
                f"split={split!r} with test_fraction={test_fraction} selects none of the "
                f"{len(vols)} cases under {root}; add cases or change test_fraction"
            )
    pick = _subset(len(cases), n, seed)
    segs = [_seg_path(cases[i][1], modality) for i in pick]
    labelled = all(s is not None for s in segs)
    out, labels = [], []
    for i, seg in zip(pick, segs, strict=True):
        path = cases[i][1]
        vol = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
        if vol.ndim != 3:
            raise ValueError(f"{path}: expected a 3-D volume, got shape {vol.shape}")
        if np.isnan(vol).any():
            raise ValueError(
                f"{path}: {int(np.isnan(vol).sum())} NaN voxels; replace them (e.g. with 0 via "
                "numpy.nan_to_num) and save the volume again"
            )
        positive = vol[vol > 0]
        scale = float(np.percentile(positive, 99.5)) if positive.size else 1.0
        vol = np.clip(vol / scale, 0, 1).transpose(2, 1, 0)[:, ::-1, :]  # (Z, Y, X), anterior first
        out.append(to_cube(np.ascontiguousarray(vol), size))
        if labelled:
            labels.append(int((np.asarray(nib.load(str(seg)).dataobj) > 0).any()))
    where = f"split {split!r}, " if split != "all" else ""
    return Volumes(
        torch.stack(out),
        torch.tensor(labels, dtype=torch.int64) if labelled else None,
        f"{len(pick)} {modality} NIfTI volumes as {size}³ cubes ({where}under {root}); "
        + ("label 1 = the case has tumour in its _seg file" if labelled else "unlabelled"),
        class_names=("healthy", "lesion") if labelled else (),
    )
