import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import datasets
from helpers.datasets import brain_phantom

LABELLED = ["histology", "brain", "digits", "textures", "faces"]
SINGLE = ["retina", "camera", "astronaut"]


@pytest.mark.parametrize("name", LABELLED)
def test_shapes_ranges_labels(name):
    ds = datasets.load(name, n=12, size=24, seed=0)
    assert ds.images.dtype == torch.float32
    assert ds.images.shape[0] == 12 and ds.images.shape[-2:] == (24, 24)
    assert ds.images.shape[1] in (1, 3)
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert ds.labels is not None and ds.labels.dtype == torch.int64 and ds.labels.shape == (12,)
    assert int(ds.labels.max()) < len(ds.class_names)
    assert ds.description and ds.name == name and len(ds) == 12


@pytest.mark.parametrize("name", LABELLED)
def test_deterministic_per_seed(name):
    a = datasets.load(name, n=6, size=16, seed=5)
    b = datasets.load(name, n=6, size=16, seed=5)
    c = datasets.load(name, n=6, size=16, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


@pytest.mark.parametrize("name", SINGLE)
def test_single_images(name):
    ds = datasets.load(name, size=64)
    assert ds.images.shape[0] == 1 and ds.images.shape[-2:] == (64, 64) and ds.labels is None
    with pytest.raises(ValueError, match="single image"):
        datasets.load(name, n=3)


def test_channels_known():
    assert datasets.load("histology", n=2).images.shape[1] == 3
    assert datasets.load("astronaut", size=32).images.shape[1] == 3
    assert datasets.load("camera", size=32).images.shape[1] == 1
    assert datasets.load("digits", n=2).images.shape[1] == 1


def test_digits_match_sklearn():
    from sklearn.datasets import load_digits

    ds = datasets.load("digits", size=8)
    d = load_digits()
    assert len(ds) == 1797
    np.testing.assert_allclose(ds.images[:, 0].numpy(), d.images / 16.0, atol=1e-6)
    assert ds.labels.tolist() == d.target.tolist()


def test_histology_patch_size_limit():
    assert datasets.load("histology", n=1, size=128).images.shape[-1] == 128
    with pytest.raises(ValueError, match="size 129 is out of range"):
        datasets.load("histology", n=1, size=129)


def test_textures_balanced():
    ds = datasets.load("textures", n=30, size=16)
    assert torch.bincount(ds.labels).tolist() == [10, 10, 10]


def test_brain_lesion_fraction_and_labels():
    ds = datasets.load("brain", n=20, size=32, seed=1, lesion_fraction=0.25)
    assert int(ds.labels.sum()) == 5
    healthy = datasets.load("brain", n=6, size=32, seed=1, lesion_fraction=0.0)
    assert int(healthy.labels.sum()) == 0
    with pytest.raises(ValueError, match="lesion_fraction"):
        datasets.load("brain", n=2, lesion_fraction=1.5)


def test_brain_lesion_changes_the_image_locally():
    rng = np.random.default_rng(0)
    images = brain_phantom.template_slices()[:2]
    images = torch.nn.functional.interpolate(images, size=(64, 64))
    out = brain_phantom.add_lesions(images, np.array([True, False]), rng)
    diff = (out - images).abs()[:, 0]
    assert diff[1].max() == 0  # untouched slice
    changed = (diff[0] > 0.05).float().mean()
    assert 0.005 < changed < 0.5  # a lesion, not the whole slice


def test_bad_names_and_arguments():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; available: histology"):
        datasets.load("cifar")
    with pytest.raises(TypeError):
        datasets.load(3)
    with pytest.raises(ValueError, match="n must be at least 1"):
        datasets.load("digits", n=0)
    with pytest.raises(TypeError, match="size must be an int"):
        datasets.load("digits", size=16.0)
    with pytest.raises(ValueError, match="more than 'faces' holds"):
        datasets.load("faces", n=1000)
    with pytest.raises(ValueError, match="takes no root"):
        datasets.load("digits", root="/tmp")


def test_available_lists_builtin_and_external():
    names = datasets.available()
    for n in LABELLED + SINGLE + ["image_folder", "nifti", "mnist", "fashion_mnist"]:
        assert n in names
    assert "mnist" not in datasets.available(external_too=False)


def test_builtins_load_with_sockets_disabled(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in datasets.available(external_too=False):
        ds = datasets.load(name, size=16, **({} if name in SINGLE else {"n": 2}))
        assert ds.images.shape[-1] == 16


def test_builtins_load_without_network_namespace():
    """Every built-in loads in a process with no network at all (``unshare -n``), when available."""
    code = (
        "from helpers import datasets\n"
        "for n in datasets.available(external_too=False):\n"
        "    datasets.load(n, size=16, **({} if n in ('retina', 'camera', 'astronaut') else {'n': 2}))\n"
        "print('offline ok')\n"
    )
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed (util-linux)")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces)")
    out = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "offline ok" in out.stdout


def _column_coded_image() -> np.ndarray:
    """A 512×512 RGB image whose pixels encode their column: R = col mod 256, G = col // 256."""
    cols = np.broadcast_to(np.arange(512), (512, 512))
    image = np.zeros((512, 512, 3), dtype=np.uint8)
    image[..., 0], image[..., 1] = cols % 256, cols // 256
    return image


@pytest.mark.parametrize("size", [8, 32, 128])
def test_histology_regions_are_disjoint(monkeypatch, size):
    monkeypatch.setattr(datasets.builtin, "skimage_image", lambda name: _column_coded_image())
    seen = {}
    for region in ("train", "test", "all"):
        ds = datasets.load("histology", n=40, size=size, seed=3, region=region)
        rgb = (ds.images * 255).round().long()  # (N, 3, H, W); flips and rotations keep values
        seen[region] = rgb[:, 0] + 256 * rgb[:, 1]  # column index of every pixel
        assert region in ds.description
    train_start, train_stop = datasets.histology_columns("train")
    test_start, test_stop = datasets.histology_columns("test")
    assert (train_start, train_stop, test_start, test_stop) == (0, 384, 384, 512)
    assert int(seen["train"].min()) >= 0 and int(seen["train"].max()) < 384
    assert int(seen["test"].min()) >= 384 and int(seen["test"].max()) < 512
    # every crop is one contiguous size-wide strip of columns inside its region
    spans = seen["test"].flatten(1)
    assert ((spans.max(1).values - spans.min(1).values) == size - 1).all()


def test_histology_region_real_image_deterministic_and_default_unchanged():
    a = datasets.load("histology", n=6, size=16, seed=5, region="test")
    b = datasets.load("histology", n=6, size=16, seed=5, region="test")
    c = datasets.load("histology", n=6, size=16, seed=5, region="train")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    default = datasets.load("histology", n=6, size=16, seed=5)
    assert torch.equal(
        default.images, datasets.load("histology", n=6, size=16, seed=5, region="all").images
    )
    # crops of the test strip are found in the right quarter of the image, never in the left ¾
    image = torch.from_numpy(datasets.skimage_image("immunohistochemistry").copy())
    patch = (
        datasets.load("histology", n=1, size=16, seed=1, region="test").images[0] * 255
    ).round()
    windows = image.permute(2, 0, 1).float().unfold(1, 16, 1).unfold(2, 16, 1)  # (3, h, w, 16, 16)
    found = set()
    for k in range(4):
        for p in (torch.rot90(patch, k, (1, 2)), torch.rot90(patch.flip(2), k, (1, 2))):
            match = (windows == p[:, None, None]).all(-1).all(-1).all(0)  # (h, w)
            found |= {int(col) for col in torch.nonzero(match)[:, 1]}
    assert found and min(found) >= 384


def test_histology_region_and_option_errors():
    with pytest.raises(ValueError, match="region 'val'; expected one of all, train, test"):
        datasets.load("histology", n=2, region="val")
    with pytest.raises(TypeError, match="unknown option.* regoin .*'histology'; it takes: region"):
        datasets.load("histology", n=2, regoin="train")
    with pytest.raises(TypeError, match="'digits'; it takes no options"):
        datasets.load("digits", n=2, region="train")
    with pytest.raises(ValueError, match="size 129 is out of range"):
        datasets.load("histology", n=1, size=129, region="test")


def test_skimage_image_public_and_read_only():
    image = datasets.skimage_image("immunohistochemistry")
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert not image.flags.writeable
    with pytest.raises(ValueError, match="no image 'nope'"):
        datasets.skimage_image("nope")
