"""External loaders, tested on small fixtures written into a temporary folder."""

import struct

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from helpers import datasets, external


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("benign", "tumour"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.png"
            )
    (tmp_path / "benign" / "notes.txt").write_text("not an image")
    ds = datasets.load("image_folder", root=tmp_path, size=16)
    assert ds.images.shape == (6, 3, 16, 16)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.class_names == ("benign", "tumour")
    grey = datasets.load("image_folder", root=tmp_path, size=16, n=4, channels=1)
    assert grey.images.shape == (4, 1, 16, 16)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="needs root"):
        datasets.load("image_folder")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        datasets.load("image_folder", root=tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(FileNotFoundError, match="images"):
        datasets.load("image_folder", root=tmp_path)


def _write_case(folder, case, with_seg=True):
    folder.mkdir(parents=True)
    vol = np.zeros((20, 20, 6), dtype=np.float32)
    vol[4:16, 4:16, 1:5] = 100.0
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(folder / f"{case}_t1.nii.gz"))
    if with_seg:
        seg = np.zeros_like(vol)
        seg[8:10, 8:10, 2] = 1
        nib.save(nib.Nifti1Image(seg, np.eye(4)), str(folder / f"{case}_seg.nii.gz"))


def test_nifti_brats_layout(tmp_path):
    _write_case(tmp_path / "BraTS_001", "BraTS_001")
    _write_case(tmp_path / "BraTS_002", "BraTS_002")
    ds = datasets.load("nifti", root=tmp_path, size=16)
    assert ds.images.shape == (8, 1, 16, 16)  # 4 brain slices per volume
    assert ds.labels.tolist() == [0, 1, 0, 0, 0, 1, 0, 0]
    assert float(ds.images.max()) == pytest.approx(1.0)


def test_nifti_without_segmentation_is_unlabelled(tmp_path):
    _write_case(tmp_path / "c1", "c1", with_seg=False)
    assert datasets.load("nifti", root=tmp_path, size=8).labels is None


def test_nifti_missing_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="BraTS") as err:
        datasets.load("nifti", root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    tmp_path.joinpath("x").mkdir()
    with pytest.raises(FileNotFoundError, match=r"\*_t1.nii.gz"):
        datasets.load("nifti", root=tmp_path / "x")


def _idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for dim in array.shape:
            f.write(struct.pack(">I", dim))
        f.write(array.astype(np.uint8).tobytes())


def test_mnist_from_local_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("t10k", 4)):
        _idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)), 2051)
        _idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, 2049)
    ds = datasets.load("mnist", root=tmp_path, size=14)
    assert ds.images.shape == (10, 1, 14, 14) and ds.labels.tolist() == list(range(10))
    test = datasets.load("mnist", root=tmp_path, train=False)
    assert test.images.shape == (4, 1, 28, 28)


def test_mnist_missing_never_downloads(tmp_path, monkeypatch):
    import urllib.request

    def refuse(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(FileNotFoundError, match="download=True"):
        datasets.load("fashion_mnist", root=tmp_path)


def test_checksum(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert external.sha256(f) == digest
    external.verify(f, digest)
    external.verify(f, None)
    with pytest.raises(ValueError, match="checksum mismatch"):
        external.verify(f, "0" * 64)


def test_registry_names_sources_and_licences():
    reg = external.registry()
    for name in ("mnist", "fashion_mnist", "brats", "image_folder"):
        assert "licence" in reg[name] and "how" in reg[name]
