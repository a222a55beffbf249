"""External loaders, tested on small fixtures written into a temporary folder."""

import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import datasets
from helpers.datasets import external


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


def _write_case(folder, case, with_seg=True, offset=0):
    """A 20×20×6 volume whose slices 1-4 hold a 12×12 brain square shifted by ``offset``."""
    folder.mkdir(parents=True)
    vol = np.zeros((20, 20, 6), dtype=np.float32)
    vol[4 - offset // 2 : 16 - offset // 2, 4 + offset // 2 : 16 + offset // 2, 1:5] = 100.0
    vol[10, 10, 1:5] = 50.0 + offset  # a case-specific darker voxel
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(folder / f"{case}_t1.nii.gz"))
    if with_seg:
        seg = np.zeros_like(vol)
        seg[8:10, 8:10, 2] = 1
        nib.save(nib.Nifti1Image(seg, np.eye(4)), str(folder / f"{case}_seg.nii.gz"))


CASES = [f"case_{i:02d}" for i in range(12)]


@pytest.fixture
def many_cases(tmp_path):
    """Twelve labelled cases of 4 brain slices each, every case slightly different."""
    for i, case in enumerate(CASES):
        _write_case(tmp_path / case, case, offset=i % 5)
    return tmp_path


@pytest.fixture
def opened(monkeypatch):
    """The case names whose t1 volume ``nibabel.load`` opened, in order."""
    calls = []
    real = nib.load

    def counting(path, *args, **kwargs):
        if str(path).endswith("_t1.nii.gz"):
            calls.append(Path(path).name.removesuffix("_t1.nii.gz"))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(nib, "load", counting)
    return calls


def test_nifti_brats_layout(tmp_path):
    _write_case(tmp_path / "BraTS_001", "BraTS_001")
    _write_case(tmp_path / "BraTS_002", "BraTS_002")
    ds = datasets.load("nifti", root=tmp_path, size=16)
    assert ds.images.shape == (8, 1, 16, 16)  # 4 brain slices per volume
    assert ds.labels.tolist() == [0, 1, 0, 0, 0, 1, 0, 0]
    assert float(ds.images.max()) == pytest.approx(1.0)


def test_nifti_without_segmentation_is_unlabelled(tmp_path):
    _write_case(tmp_path / "c1", "c1", with_seg=False)
    ds = datasets.load("nifti", root=tmp_path, size=8)
    assert ds.labels is None and ds.class_names == ()
    assert "unlabelled: no _seg files" in ds.description
    _write_case(tmp_path / "c2", "c2")  # one case with a _seg file is not enough
    ds = datasets.load("nifti", root=tmp_path, size=8)
    assert ds.labels is None and "1 of the 2 cases have no _seg file" in ds.description


def test_nifti_is_deterministic_per_seed(many_cases):
    a = datasets.load("nifti", root=many_cases, n=6, size=8, seed=3)
    b = datasets.load("nifti", root=many_cases, n=6, size=8, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.description == b.description
    others = [datasets.load("nifti", root=many_cases, n=6, size=8, seed=s) for s in (4, 5, 6)]
    assert any(not torch.equal(a.images, o.images) for o in others)


def test_nifti_returns_at_most_n_slices_of_the_requested_size(many_cases):
    ds = datasets.load("nifti", root=many_cases, n=5, size=8, seed=0)
    assert ds.images.shape == (5, 1, 8, 8) and ds.images.dtype == torch.float32
    assert ds.labels.shape == (5,) and set(ds.labels.tolist()) <= {0, 1}
    assert 0 <= float(ds.images.min()) and float(ds.images.max()) <= 1
    everything = datasets.load("nifti", root=many_cases, n=1000, size=12)
    assert everything.images.shape == (4 * len(CASES), 1, 12, 12)
    assert datasets.load("nifti", root=many_cases).images.shape[-1] == 64  # default size


def test_nifti_labels_come_from_the_seg_files(many_cases):
    ds = datasets.load("nifti", root=many_cases, size=8)
    # slices 1-4 of each case are kept; only slice 2 holds tumour
    assert ds.labels.tolist() == [0, 1, 0, 0] * len(CASES)
    assert ds.class_names == ("healthy", "lesion")
    assert "_seg" in ds.description
    sub = datasets.load("nifti", root=many_cases, n=7, size=8, seed=1)
    assert sub.labels.sum() <= 7 and len(sub.labels) == 7


def test_nifti_reads_only_the_volumes_it_needs(many_cases, opened):
    ds = datasets.load("nifti", root=many_cases, n=3, size=8, seed=0)
    assert len(ds) == 3 and len(opened) == 1  # one case holds 4 usable slices
    opened.clear()
    datasets.load("nifti", root=many_cases, n=6, size=8, seed=0)
    assert len(opened) == 2
    opened.clear()
    spread = datasets.load("nifti", root=many_cases, n=3, size=8, seed=0, slices_per_case=1)
    assert len(spread) == 3 and len(opened) == 3 and len(set(opened)) == 3
    assert "from 3 of 12" in spread.description
    opened.clear()
    datasets.load("nifti", root=many_cases, size=8)
    assert sorted(opened) == CASES


def test_nifti_split_is_by_case_and_disjoint(many_cases, opened):
    kw = {"root": many_cases, "size": 8, "test_fraction": 0.5}
    train = datasets.load("nifti", split="train", **kw)
    train_cases = set(opened)
    opened.clear()
    test = datasets.load("nifti", split="test", **kw)
    test_cases = set(opened)
    assert train_cases and test_cases and not train_cases & test_cases
    assert train_cases | test_cases == set(CASES)
    assert len(train) + len(test) == 4 * len(CASES)
    assert all(external.case_split(c, 0.5) == "train" for c in train_cases)
    assert "split 'test'" in test.description
    # the split does not depend on n or seed: any subset of "train" reads only train cases
    for seed, n in ((0, 2), (7, 9), (11, 30)):
        opened.clear()
        datasets.load("nifti", split="train", n=n, seed=seed, **kw)
        assert set(opened) <= train_cases


def test_case_split_is_stable_and_roughly_the_fraction():
    names = [f"BraTS2021_{i:05d}" for i in range(2000)]
    splits = [external.case_split(c, 0.2) for c in names]
    assert splits == [external.case_split(c, 0.2) for c in names]
    assert 0.17 < splits.count("test") / len(names) < 0.23
    # raising test_fraction only moves cases from train to test
    wider = [external.case_split(c, 0.3) for c in names]
    assert all(w == "test" for s, w in zip(splits, wider, strict=True) if s == "test")


def test_nifti_bad_options_name_what_was_given(many_cases):
    with pytest.raises(ValueError, match=r"split must be one of 'all', 'train', 'test', got 'val'"):
        datasets.load("nifti", root=many_cases, split="val")
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"strictly between 0 and 1, got {bad}"):
            datasets.load("nifti", root=many_cases, split="test", test_fraction=bad)
    with pytest.raises(TypeError, match="test_fraction must be a float, got str"):
        external.case_split("x", "0.2")
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        datasets.load("nifti", root=many_cases, n=0)
    with pytest.raises(ValueError, match="slices_per_case must be at least 1, got 0"):
        datasets.load("nifti", root=many_cases, slices_per_case=0)
    with pytest.raises(TypeError, match="unknown option"):
        datasets.load("nifti", root=many_cases, fraction=0.2)


def test_nifti_split_that_selects_no_case(tmp_path):
    _write_case(tmp_path / "c1", "c1")  # case_split("c1", 0.2) == "train"
    with pytest.raises(
        ValueError, match=r"split='test' with test_fraction=0.2 selects none of the 1"
    ):
        datasets.load("nifti", root=tmp_path, split="test")


def test_nifti_missing_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="BraTS") as err:
        datasets.load("nifti", root=tmp_path / "nowhere")
    assert str(err.value).startswith(f"nifti: the folder {tmp_path / 'nowhere'} does not exist. ")
    assert "not found under" not in str(err.value)
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
    with pytest.raises(ValueError, match="size 0 is out of range"):  # it gave 28×28
        datasets.load("mnist", root=tmp_path, size=0)


def test_mnist_missing_never_downloads(tmp_path, monkeypatch):
    import urllib.request

    def refuse(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(FileNotFoundError, match="download=True") as err:
        datasets.load("fashion_mnist", root=tmp_path)
    message = str(err.value)
    assert message.count("download=True") == 1  # the advice is given once
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "Licence: MIT" in message


def test_registry_names_sources_and_licences():
    reg = external.registry()
    for name in ("mnist", "fashion_mnist", "brats", "image_folder"):
        assert "licence" in reg[name] and "how" in reg[name]


# --------------------------------------------------------------------------------------------
# files as a viewer shows them; only real class folders; scanner quirks


def _one(tmp_path, name, image, channels=1, **save):
    (tmp_path / "a").mkdir(exist_ok=True)
    image.save(tmp_path / "a" / name, **save)
    return datasets.load("image_folder", root=tmp_path, size=8, channels=channels).images[0]


def test_only_real_class_folders_are_classes(tmp_path):
    for cls, value in (("cat", 0), ("dog", 255)):
        (tmp_path / cls).mkdir()
        Image.new("L", (8, 8), value).save(tmp_path / cls / "x.png")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    Image.new("L", (8, 8), 9).save(tmp_path / ".ipynb_checkpoints" / "x-checkpoint.png")
    (tmp_path / "dog" / "._x.png").write_bytes(b"\x00\x05\x16\x07 a macOS resource fork")
    ds = datasets.load("image_folder", root=tmp_path, size=8, channels=1)
    assert ds.class_names == ("cat", "dog") and ds.labels.tolist() == [0, 1]
    assert [float(ds.images[i].mean()) for i in range(2)] == [0.0, 1.0]
    (tmp_path / "zebra").mkdir()  # an empty class folder would shift no label but is a mistake
    with pytest.raises(ValueError, match=r"'zebra'.*hold no images"):
        datasets.load("image_folder", root=tmp_path, size=8)


@pytest.mark.parametrize(
    ("name", "array", "expected"),
    [
        ("png16.png", np.full((8, 8), 32768, np.uint16), 32768 / 65535),
        ("tif16.tif", np.full((8, 8), 1000, np.uint16), 1000 / 65535),
        ("float.tif", np.full((8, 8), 0.25, np.float32), 0.25),
    ],
)
def test_high_bit_depth_images(tmp_path, name, array, expected):
    img = _one(tmp_path, name, Image.fromarray(array))
    assert float(img.mean()) == pytest.approx(expected, abs=1e-4)


def test_float_images_outside_0_1_are_scaled_and_nan_is_refused(tmp_path):
    a = np.linspace(-5, 5, 64, dtype=np.float32).reshape(8, 8)
    img = _one(tmp_path, "x.tif", Image.fromarray(a))
    assert float(img.min()) == pytest.approx(0.0, abs=1e-3) and float(img.max()) <= 1.0
    a[0, 0] = np.nan
    Image.fromarray(a).save(tmp_path / "a" / "x.tif")
    with pytest.raises(ValueError, match=r"x.tif holds 1 NaN or Inf pixel"):
        datasets.load("image_folder", root=tmp_path, size=8)


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((4, 8), dtype=np.uint8)
    a[:, :4] = 255  # stored: left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img = _one(tmp_path, "x.jpg", Image.fromarray(a), exif=exif.tobytes(), quality=100)
    # displayed 8 high × 4 wide with the top half white; its central square keeps rows 2-5
    assert float(img[0, :4].mean()) > 0.9 and float(img[0, 4:].mean()) < 0.1


@pytest.mark.parametrize(
    ("mode", "colour", "channels", "expected"),
    [
        ("LA", (0, 0), 1, [1.0]),  # fully transparent black: white background
        ("LA", (0, 255), 1, [0.0]),  # opaque black
        ("RGBA", (255, 0, 0, 128), 3, [1.0, 127 / 255, 127 / 255]),  # half red over white
        ("CMYK", (255, 0, 0, 0), 3, [0.0, 1.0, 1.0]),  # pure cyan
        ("1", 1, 1, [1.0]),
    ],
)
def test_modes_and_transparency(tmp_path, mode, colour, channels, expected):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    img = _one(tmp_path, "x" + suffix, Image.new(mode, (8, 8), colour), channels=channels)
    assert img.mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=0.02)


def test_palette_with_a_transparent_colour(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    out = _one(tmp_path, "x.png", img, channels=3, transparency=0)
    assert float(out.min()) == pytest.approx(1.0)  # index 0 is transparent: white, not black


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match=r"x.png is not a readable image"):
        datasets.load("image_folder", root=tmp_path, size=8)


def test_image_folder_sizes_and_options(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "a" / "x.png")
    for bad in (0, -3):
        with pytest.raises(ValueError, match="size"):  # 0 was taken for the default 64
            datasets.load("image_folder", root=tmp_path, size=bad)
    with pytest.raises(ValueError, match="n must be at least 1"):
        datasets.load("image_folder", root=tmp_path, n=0)
    with pytest.raises(ValueError, match="channels must be 1 or 3, got True"):
        datasets.load("image_folder", root=tmp_path, channels=True)
    with pytest.raises(TypeError, match="seed must be an int"):
        datasets.load("image_folder", root=tmp_path, seed="a")


def _volume(tmp_path, data, name="c1", slope=None):
    img = nib.Nifti1Image(data, np.eye(4))
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    path = tmp_path / name / f"{name}_t1.nii.gz"
    nib.save(img, str(path))
    return path


def _brain(dtype=np.float32):
    vol = np.zeros((20, 20, 6), dtype=dtype)
    vol[4:16, 4:16, 1:5] = 100
    vol[10, 10, 1:5] = 50
    return vol


def test_nifti_non_finite_voxels_are_set_to_zero_and_reported(tmp_path):
    vol = _brain()
    vol[0, 0, 2] = np.nan
    vol[10, 11, 2] = np.inf
    ds = datasets.load("nifti", root=_volume(tmp_path, vol).parent.parent, size=16)
    assert bool(torch.isfinite(ds.images).all()) and float(ds.images.max()) == pytest.approx(1.0)
    assert "2 NaN or Inf voxels were set to 0" in ds.description


def test_nifti_integer_types_and_scaling_slopes_give_the_same_slices(tmp_path):
    ref = datasets.load("nifti", root=_volume(tmp_path / "f", _brain()).parent.parent, size=16)
    ints = datasets.load("nifti", root=_volume(tmp_path / "i", _brain(np.int16)).parent.parent,
                         size=16)  # fmt: skip
    scaled = _volume(tmp_path / "s", (_brain() / 2).astype(np.int16), slope=2.0)
    slope = datasets.load("nifti", root=scaled.parent.parent, size=16)
    torch.testing.assert_close(ints.images, ref.images)
    torch.testing.assert_close(slope.images, ref.images)


def test_nifti_4d_files(tmp_path):
    one = _volume(tmp_path / "one", _brain()[..., None])  # (X, Y, Z, 1): one volume
    assert len(datasets.load("nifti", root=one.parent.parent, size=16)) == 4
    many = _volume(tmp_path / "many", np.stack([_brain()] * 3, axis=-1))
    with pytest.raises(ValueError, match=r"c1_t1.nii.gz: expected a 3-D volume.*several volumes"):
        datasets.load("nifti", root=many.parent.parent, size=16)


def test_nifti_damaged_file_and_mismatched_segmentation_are_named(tmp_path):
    path = _volume(tmp_path / "t", _brain())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"c1_t1.nii.gz: cannot read this NIfTI volume"):
        datasets.load("nifti", root=path.parent.parent, size=16)
    path = _volume(tmp_path / "s", _brain())
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)),
             str(path.parent / "c1_seg.nii.gz"))  # fmt: skip
    with pytest.raises(ValueError, match=r"segmentation of shape \(5, 5, 5\) does not match"):
        datasets.load("nifti", root=path.parent.parent, size=16)


def test_to_tensor_scales_by_dtype():
    assert float(datasets.to_tensor(np.full((4, 4), 65535, np.uint16)).max()) == 1.0
    assert float(datasets.to_tensor(np.full((4, 4), 32768, np.uint16)).max()) == pytest.approx(
        0.5, abs=1e-4
    )
    with pytest.raises(TypeError, match="int64"):
        datasets.to_tensor(np.full((4, 4), 3, np.int64))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        datasets.to_tensor(np.full((4, 4), 200.0))  # it was clamped to all ones
    rgba = np.zeros((4, 6, 4), np.uint8)  # transparent black: white, as a viewer shows it
    assert float(datasets.to_tensor(rgba).min()) == 1.0
