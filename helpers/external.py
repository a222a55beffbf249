"""Loaders for real external datasets, from a local folder (never downloading by default).

Each loader takes ``(n, size, seed, root, **options)`` and returns a
:class:`helpers.datasets.Dataset`; use them through :func:`helpers.datasets.load`. When files are
missing the error names the folder looked at, what to download and where to put it. The registry
of sources and licences is ``data/registry.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def registry() -> dict[str, dict]:
    """The external datasets' registry (``data/registry.json``): url, licence, sha256, layout."""
    from .runtime import project_root

    path = project_root() / "data" / "registry.json"
    return json.loads(path.read_text()) if path.exists() else {}


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: str | Path, expected: str | None) -> None:
    """Raise ``ValueError`` when ``path``'s SHA-256 differs from ``expected`` (skip when ``None``)."""
    if expected is None:
        return
    got = sha256(path)
    if got != expected.lower():
        raise ValueError(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {got}; "
            "the file is incomplete or not the registered release: download it again"
        )


def _hint(name: str) -> str:
    entry = registry().get(name, {})
    parts = [entry.get("how", "")]
    if entry.get("url"):
        parts.append(f"Source: {entry['url']}")
    if entry.get("licence"):
        parts.append(f"Licence: {entry['licence']}")
    return " ".join(p for p in parts if p)


def _default_root(name: str) -> Path:
    from .runtime import cache_dir

    return cache_dir() / name


def _missing(name: str, root: Path, what: str, key: str | None = None) -> FileNotFoundError:
    return FileNotFoundError(f"{name}: {what} not found under {root}. {_hint(key or name)}".strip())


def _subset(count: int, n: int | None, seed: int) -> np.ndarray:
    if n is None or n >= count:
        return np.arange(count)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return np.sort(np.random.default_rng(seed).permutation(count)[:n])


def image_folder(n, size, seed, root, *, channels: int = 3):
    """Images under ``root/<class>/*.png|jpg|…``; labels are the sorted class folder names."""
    from PIL import Image

    from .datasets import Dataset, center_square, resize, to_tensor

    if root is None:
        raise ValueError("image_folder needs root=<folder with one sub-folder per class>")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    root = Path(root)
    if not root.is_dir():
        raise _missing("image_folder", root, "the folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [
        (f, c)
        for c, cls in enumerate(classes)
        for f in sorted((root / cls).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise _missing(
            "image_folder", root, f"images ({', '.join(IMAGE_SUFFIXES)}) in class sub-folders"
        )
    pick = _subset(len(files), n, seed)
    size = size or 64
    mode = "L" if channels == 1 else "RGB"
    images = [
        resize(center_square(to_tensor(np.asarray(Image.open(files[i][0]).convert(mode)))), size)
        for i in pick
    ]
    labels = torch.tensor([files[i][1] for i in pick], dtype=torch.int64)
    return Dataset(
        torch.cat(images),
        labels,
        f"{len(pick)} images from {root} ({len(classes)} classes)",
        class_names=tuple(classes),
    )


def nifti(n, size, seed, root, *, modality: str = "t1", min_brain_fraction: float = 0.15):
    """Axial slices of BraTS-style volumes: ``root/**/<case>_<modality>.nii.gz`` (+ ``_seg``).

    Each volume is scaled by its 99.5th percentile; slices whose non-zero area is below
    ``min_brain_fraction`` of the slice are skipped. With a ``_seg`` file beside a volume, a
    slice's label says whether it contains tumour.
    """
    import nibabel as nib

    from .datasets import Dataset, center_square, resize

    root = Path(root) if root is not None else _default_root("brats")
    if not root.is_dir():
        raise _missing("nifti", root, "the folder", key="brats")
    vols = sorted(root.rglob(f"*_{modality}.nii.gz")) + sorted(root.rglob(f"*_{modality}.nii"))
    if not vols:
        raise _missing("nifti", root, f"volumes named *_{modality}.nii.gz", key="brats")
    slices, labels, labelled = [], [], True
    for vol_path in vols:
        vol = np.asarray(nib.load(str(vol_path)).get_fdata(), dtype=np.float32)
        if vol.ndim != 3:
            raise ValueError(f"{vol_path}: expected a 3-D volume, got shape {vol.shape}")
        positive = vol[vol > 0]
        vol = np.clip(vol / (np.percentile(positive, 99.5) if positive.size else 1.0), 0, 1)
        seg_path = Path(str(vol_path).replace(f"_{modality}.nii", "_seg.nii"))
        seg = np.asarray(nib.load(str(seg_path)).get_fdata()) if seg_path.exists() else None
        labelled &= seg is not None
        for z in range(vol.shape[2]):
            if (vol[:, :, z] > 0.05).mean() >= min_brain_fraction:
                slices.append(np.rot90(vol[:, :, z]).copy())
                labels.append(int(seg is not None and (seg[:, :, z] > 0).any()))
    if not slices:
        raise ValueError(
            f"no slice in {root} has a brain area of at least {min_brain_fraction:.0%}"
        )
    pick = _subset(len(slices), n, seed)
    images = torch.stack([torch.from_numpy(slices[i]) for i in pick])[:, None]
    images = resize(center_square(images), size or 64)
    return Dataset(
        images.contiguous(),
        torch.tensor([labels[i] for i in pick]) if labelled else None,
        f"{len(pick)} axial {modality} slices from {len(vols)} NIfTI volumes under {root}",
        class_names=("healthy", "lesion") if labelled else (),
    )


def _torchvision(kind: str, n, size, seed, root, *, train: bool = True, download: bool = False):
    import torchvision

    from .datasets import Dataset, resize

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
            f"idx files there. {_hint(kind)}"
        ) from err
    pick = _subset(len(ds.targets), n, seed)
    images = ds.data[torch.from_numpy(pick)].float().div(255)[:, None]
    classes = tuple(getattr(ds, "classes", ())) or tuple(str(i) for i in range(10))
    return Dataset(
        resize(images, size or 28).contiguous(),
        ds.targets[torch.from_numpy(pick)].long(),
        f"{len(pick)} {kind} images from {root}",
        class_names=classes,
    )


def mnist(n, size, seed, root, **options):
    """MNIST from ``root`` (default ``data/cache/mnist``) via torchvision; never downloads unless asked."""
    return _torchvision("mnist", n, size, seed, root, **options)


def fashion_mnist(n, size, seed, root, **options):
    """Fashion-MNIST from ``root`` (default ``data/cache/fashion_mnist``) via torchvision."""
    return _torchvision("fashion_mnist", n, size, seed, root, **options)
