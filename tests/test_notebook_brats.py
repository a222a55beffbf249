"""Notebook 05 on real-data input: a BraTS-style folder of NIfTI volumes instead of the phantom.

The notebook's ``DATA = "brats"`` path splits patients between training and held-out sets; here it
runs end to end (smoke profile) on small synthetic volumes written where the notebook looks.
"""

import nibabel as nib
import numpy as np
import papermill as pm

from helpers.course import runner

N_CASES = 60  # about a fifth are held out by the patient split: enough for the smoke sizes


def _write_cases(root, n_cases: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :40]
    for i in range(n_cases):
        case = f"BraTS_{i:03d}"
        folder = root / case
        folder.mkdir(parents=True)
        cy, cx, r = 20 + rng.integers(-3, 4), 20 + rng.integers(-3, 4), 12 + rng.integers(0, 4)
        brain = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).astype(np.float32)
        vol = np.stack([brain * (80 + 40 * rng.random((40, 40))) for _ in range(10)], axis=-1)
        seg = np.zeros_like(vol)
        if i % 2:  # every other patient has a tumour on a few slices
            seg[cy - 3 : cy + 3, cx - 3 : cx + 3, 3:6] = 1
            vol[seg > 0] *= 1.8
        nib.save(
            nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), str(folder / f"{case}_t1.nii.gz")
        )
        nib.save(nib.Nifti1Image(seg, np.eye(4)), str(folder / f"{case}_seg.nii.gz"))


def test_notebook_05_runs_on_a_brats_folder(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _write_cases(cache / "brats", N_CASES)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = runner.notebook_dir() / "05_memorization.ipynb"
    out = tmp_path / "05_brats.ipynb"
    nb = pm.execute_notebook(
        str(source),
        str(out),
        parameters={"PROFILE": "smoke", "SEED": 0, "DATA": "brats"},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(source.parent),
    )
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "NIfTI volumes" in text  # the training set came from the folder, not the phantom
    assert "held-out" in text and "with a lesion" in text
    # the models were trained on the BraTS slices and cached under their own key
    assert any(p.name.startswith("05_ddpm_small_smoke_") for p in cache.iterdir())
    assert any(p.name.startswith("05_ssl_brats_") for p in cache.iterdir())
