"""Tests for the 3-D brain volumes: the generator, the out-of-distribution families, and whole
volumes through ``datasets.load_volumes`` (built in, and NIfTI fixtures written with nibabel)."""

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers import datasets
from helpers.datasets import brain_volumes

SIZE = 24


@pytest.fixture(scope="module")
def volumes():
    return brain_volumes.generate(6, SIZE, seed=0)


def test_generator_shapes_ranges_labels_and_seed(volumes):
    vols, labels = volumes
    assert vols.shape == (6, SIZE, SIZE, SIZE) and vols.dtype == torch.float32
    assert float(vols.min()) >= 0 and float(vols.max()) <= 1
    assert labels.tolist().count(1) == 3 and labels.dtype == torch.int64
    again, _ = brain_volumes.generate(6, SIZE, seed=0)
    other, _ = brain_volumes.generate(6, SIZE, seed=1)
    assert torch.equal(vols, again) and not torch.equal(vols, other)
    brain = (vols > 0.15).float().mean(dim=(1, 2, 3))
    assert bool((brain > 0.15).all()) and bool((brain < 0.7).all())  # a head inside the cube
    assert brain_volumes.template_volume(SIZE).shape == (SIZE, SIZE, SIZE)


def test_lesions_change_volumes_locally():
    clean, _ = brain_volumes.generate(4, SIZE, seed=3, lesion_fraction=0.0)
    lesion, labels = brain_volumes.generate(4, SIZE, seed=3, lesion_fraction=1.0)
    assert labels.tolist() == [1, 1, 1, 1]
    changed = ((lesion - clean).abs() > 0.05).float().mean(dim=(1, 2, 3))
    assert bool((changed > 0.001).all()) and bool((changed < 0.2).all())


def test_no_deformation_gives_the_template_up_to_intensity_and_noise():
    vols, _ = brain_volumes.generate(
        2, SIZE, seed=0, lesion_fraction=0.0, deform=0.0, noise=(0.0, 0.0)
    )
    template = brain_volumes.template_volume(SIZE)
    corr = np.corrcoef(vols[0].flatten().numpy(), template.flatten().numpy())[0, 1]
    assert corr > 0.99


@pytest.mark.parametrize("family", list(brain_volumes.OOD_FAMILIES))
def test_every_family_keeps_shape_range_and_is_seeded(volumes, family):
    vols, _ = volumes
    out = brain_volumes.corrupt(vols, family, seed=5)
    assert out.shape == vols.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out, brain_volumes.corrupt(vols, family, seed=5))
    assert not torch.equal(out, vols)
    assert brain_volumes.SCOPE[family] in ("global", "regional", "local")


def test_families_do_what_they_say(volumes):
    vols, _ = volumes
    head = vols > 0.15
    changed = lambda out: ((out - vols).abs() > 1e-3).float().mean(dim=(1, 2, 3))  # noqa: E731
    contrast = brain_volumes.corrupt(vols, "contrast", seed=1)
    for v, c, m in zip(vols, contrast, head, strict=True):
        assert np.corrcoef(v[m].numpy(), c[m].numpy())[0, 1] < -0.9  # inverted inside the head
    noisy = brain_volumes.corrupt(vols, "noise", seed=1)
    assert bool(((noisy - vols).std(dim=(1, 2, 3)) > 0.03).all())
    blurred = brain_volumes.corrupt(vols, "blur", seed=1)
    grad = lambda x: x.diff(dim=-1).abs().mean()  # noqa: E731
    assert grad(blurred) < 0.8 * grad(vols)
    shifted = brain_volumes.corrupt(vols, "intensity_shift", seed=1)
    background = vols < 0.05
    assert float((shifted - vols)[background].min()) >= 0.1 - 1e-6
    missing = brain_volumes.corrupt(vols, "missing_slices", seed=1)
    empty = (missing.flatten(2).amax(-1) == 0).sum(1)
    assert bool((empty >= 1).all()) and bool((empty <= SIZE // 3).all())
    rod = changed(brain_volumes.corrupt(vols, "foreign_object", seed=1))
    local = changed(brain_volumes.corrupt(vols, "local_anomaly", seed=1))
    assert bool((local > 0).all()) and bool((local < 0.01).all())  # a local anomaly: under 1 %
    assert bool((rod > local).all()) and bool((rod < 0.05).all())
    bigger = changed(brain_volumes.corrupt(vols, "local_anomaly", seed=1, strength=3))
    assert bool((bigger > 5 * local).all())


def test_corrupt_errors(volumes):
    vols, _ = volumes
    with pytest.raises(KeyError, match="unknown OOD family"):
        brain_volumes.corrupt(vols, "rotation")
    bad = vols.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        brain_volumes.corrupt(bad, "noise")
    with pytest.raises(ValueError, match="empty"):
        brain_volumes.corrupt(vols[:0], "noise")
    with pytest.raises(ValueError, match=r"\(N, D, H, W\)"):
        brain_volumes.corrupt(vols[0], "noise")
    with pytest.raises(ValueError, match="strength"):
        brain_volumes.corrupt(vols, "blur", strength=0)
    with pytest.raises(ValueError, match="lesion_fraction"):
        brain_volumes.generate(2, SIZE, lesion_fraction=1.5)
    with pytest.raises(ValueError, match="at least 8"):
        brain_volumes.generate(2, 6)


def test_load_volumes_builtin():
    vols = datasets.load_volumes("brain", n=3, size=16, seed=2)
    assert vols.volumes.shape == (3, 16, 16, 16) and vols.name == "brain" and len(vols) == 3
    assert "MNI152" in vols.description and "Volumes('brain'" in repr(vols)
    with pytest.raises(ValueError, match="take no root"):
        datasets.load_volumes("brain", root="/tmp")
    with pytest.raises(ValueError, match="unknown volume set"):
        datasets.load_volumes("ct")
    with pytest.raises(TypeError, match="unknown option"):
        datasets.load_volumes("brain", n=2, size=16, modality="t2")


def _write_cases(root, n, *, seg=True, nan=False):
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:20, :24, :18]
    for i in range(n):
        folder = root / f"case_{i:02d}"
        folder.mkdir(parents=True)
        head = ((xx - 9) ** 2 / 49 + (yy - 12) ** 2 / 81 + (zz - 10) ** 2 / 64) < 1
        vol = (head * (100 + 20 * rng.random(head.shape))).astype(np.float32)
        if nan and i == 0:
            vol[0, 0, 0] = np.nan
        nib.save(nib.Nifti1Image(vol, np.eye(4)), str(folder / f"case_{i:02d}_t1.nii.gz"))
        if seg:
            s = np.zeros(vol.shape, dtype=np.uint8)
            if i % 2:
                s[8:10, 10:12, 9:11] = 1
            nib.save(nib.Nifti1Image(s, np.eye(4)), str(folder / f"case_{i:02d}_seg.nii.gz"))


def test_load_volumes_from_a_nifti_folder(tmp_path):
    _write_cases(tmp_path, 6)
    vols = datasets.load_volumes("nifti", root=tmp_path, size=16)
    assert vols.volumes.shape == (6, 16, 16, 16) and vols.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert float(vols.volumes.min()) >= 0 and float(vols.volumes.max()) <= 1
    assert (
        float(vols.volumes.max()) > 0.8
    )  # scaled by the 99.5th percentile, clipped, then resampled
    two = datasets.load_volumes("nifti", root=tmp_path, size=16, n=2, seed=1)
    assert len(two) == 2
    train = datasets.load_volumes("nifti", root=tmp_path, size=16, split="train", test_fraction=0.5)
    test = datasets.load_volumes("nifti", root=tmp_path, size=16, split="test", test_fraction=0.5)
    assert len(train) + len(test) == 6
    # the OOD pipeline runs on real-data volumes as on the phantom
    out = brain_volumes.corrupt(vols.volumes, "local_anomaly", seed=0)
    assert out.shape == vols.volumes.shape


def test_load_volumes_nifti_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.load_volumes("nifti", root=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no volumes"):
        datasets.load_volumes("nifti", root=tmp_path / "empty")
    _write_cases(tmp_path / "nan", 2, nan=True)
    with pytest.raises(ValueError, match="NaN voxels"):
        datasets.load_volumes("nifti", root=tmp_path / "nan", size=16)
    _write_cases(tmp_path / "noseg", 2, seg=False)
    assert datasets.load_volumes("nifti", root=tmp_path / "noseg", size=16).labels is None


def test_to_cube():
    v = np.zeros((10, 20, 6), dtype=np.float32)
    v[2:8, 5:15, 1:5] = 1.0
    cube = datasets.to_cube(v, 12)
    assert cube.shape == (12, 12, 12) and float(cube.max()) <= 1
    with pytest.raises(ValueError, match="volume"):
        datasets.to_cube(np.zeros((4, 4)), 8)
