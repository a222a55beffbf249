"""A catalogue of bad inputs, tried against the kit and classified: clear, correct, cryptic, silent.

Each case calls one public function the way a user plausibly gets it wrong (an integer or
half-precision tensor, NaN, an empty or wrong-rank tensor, a zero or negative size, an unknown
string, a damaged file …). The outcome is

* ``clear``: a ``ValueError``, ``TypeError``, ``FileNotFoundError``, ``FloatingPointError`` or
  ``KeyError`` raised by the kit's own code (the innermost frame is in ``helpers/``), so the
  message can name the value received and the one expected;
* ``correct``: the call returns, and the case's check confirms the result is right (the input
  is supported);
* ``cryptic``: any other exception, or one raised deep inside torch, NumPy or PIL;
* ``silent``: the call returns something wrong (or something no check can vouch for).

Run ``python tests/bad_inputs.py`` for the counts (``-v`` lists every case);
``tests/test_bad_inputs.py`` asserts that no case is cryptic or silent.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CLEAR_TYPES = (ValueError, TypeError, FileNotFoundError, FloatingPointError, KeyError)


@dataclass
class Case:
    name: str
    fn: Callable[[], object]
    check: Callable[[object], bool] | None = None


CASES: list[Case] = []


def case(name: str, check: Callable[[object], bool] | None = None):
    def register(fn: Callable[[], object]) -> Callable[[], object]:
        CASES.append(Case(name, fn, check))
        return fn

    return register


def classify(c: Case) -> tuple[str, str]:
    """``(outcome, detail)`` of running one case."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                result = c.fn()
                ok = c.check(result) if c.check is not None else False
            finally:
                os.chdir(cwd)
    except Exception as err:  # noqa: BLE001 - classifying is the point
        frames = traceback.extract_tb(err.__traceback__)
        where = frames[-1].filename if frames else ""
        ours = f"{os.sep}helpers{os.sep}" in where
        detail = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:160]
        if isinstance(err, CLEAR_TYPES) and ours and str(err):
            return "clear", detail
        return "cryptic", f"{detail} (raised in {Path(where).name})"
    return ("correct", "") if ok else ("silent", repr(result)[:120])


# --------------------------------------------------------------------------------------------
# small builders


def _rand(*shape, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0)).to(dtype)


def _nan(*shape):
    x = _rand(*shape)
    x.view(-1)[0] = float("nan")
    return x


def _unet(**kw):
    from helpers import unet

    return unet.UNet(1, base_channels=8, channel_mults=(1, 2), attn_resolutions=(), seed=0, **kw)


def _schedule(T=50):
    from helpers import diffusion

    return diffusion.Schedule.make("linear", T=T)


def _train(images, **kw):
    from helpers import diffusion_training

    args = dict(schedule=_schedule(), steps=2, batch_size=2, progress=False)
    args.update(kw)
    return diffusion_training.train(_unet(), images, **args)


def _folder(root: Path, files: dict[str, object]) -> Path:
    """Write PIL images (or bytes) to ``root/<relative path>``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, tuple):  # (image, save options)
            content[0].save(path, **content[1])
        else:
            content.save(path)
    return root


def _pil(mode, size=(8, 8), color=0):
    from PIL import Image

    return Image.new(mode, size, color)


def _load_folder(files, **kw):
    from helpers import datasets

    root = _folder(Path("imgs"), files)
    return datasets.load("image_folder", root=root, **kw)


def _nifti(path: Path, data: np.ndarray, *, slope=None, inter=None) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(data, np.eye(4))
    if slope is not None:
        img.header.set_slope_inter(slope, inter or 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def _brain_volume(dtype=np.float32) -> np.ndarray:
    z, y, x = np.mgrid[0:12, 0:24, 0:24]
    ball = ((x - 12) ** 2 + (y - 12) ** 2 + (z - 6) ** 2) < 90
    vol = np.where(ball, 100.0 + x, 0.0).transpose(2, 1, 0)  # (X, Y, Z)
    return vol.astype(dtype)


def _load_nifti(**kw):
    from helpers import datasets

    return datasets.load("nifti", root=Path("brats"), size=16, **kw)


def _ckpt(model=None, path="c.safetensors", **kw):
    from helpers import checkpoint

    model = model or torch.nn.Linear(3, 2)
    return checkpoint.save_training_state(Path(path), model=model, step=1, **kw)


def _flip_byte(path: Path, offset_from_end: int) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def _finite_tensor(x) -> bool:
    return isinstance(x, torch.Tensor) and bool(torch.isfinite(x).all())


# ============================================================================================
# datasets


@case("datasets.load: unknown name")
def _():
    from helpers import datasets

    return datasets.load("nope")


@case("datasets.load: name not a string")
def _():
    from helpers import datasets

    return datasets.load(3)


for _n in (0, -1, 2.5, True):

    @case(f"datasets.load digits n={_n!r}")
    def _(n=_n):
        from helpers import datasets

        return datasets.load("digits", n=n, size=8)


for _s in (0, -5, 8.0, True):

    @case(f"datasets.load digits size={_s!r}")
    def _(s=_s):
        from helpers import datasets

        return datasets.load("digits", n=2, size=s)


@case("datasets.load: unknown option")
def _():
    from helpers import datasets

    return datasets.load("digits", n=2, size=8, colour=True)


@case("datasets.load histology region='nope'")
def _():
    from helpers import datasets

    return datasets.load("histology", n=2, size=8, region="nope")


for _f in (1.5, -0.1, float("nan")):

    @case(f"datasets.load brain lesion_fraction={_f}")
    def _(f=_f):
        from helpers import datasets

        return datasets.load("brain", n=2, size=16, lesion_fraction=f)


@case("datasets.load seed='a'")
def _():
    from helpers import datasets

    return datasets.load("digits", n=2, size=8, seed="a")


@case("image_folder: no root")
def _():
    from helpers import datasets

    return datasets.load("image_folder")


@case("image_folder: missing folder")
def _():
    from helpers import datasets

    return datasets.load("image_folder", root="does-not-exist")


@case(
    "image_folder: .ipynb_checkpoints is not a class",
    check=lambda ds: ds.class_names == ("cat", "dog") and ds.labels.tolist() == [0, 1],
)
def _():
    return _load_folder(
        {
            "cat/a.png": _pil("L"),
            "dog/b.png": _pil("L", color=255),
            ".ipynb_checkpoints/c-checkpoint.png": _pil("L"),
        },
        size=8,
    )


@case(
    "image_folder: hidden ._ file (macOS) is not an image",
    check=lambda ds: len(ds) == 2,
)
def _():
    return _load_folder(
        {"cat/a.png": _pil("L"), "dog/b.png": _pil("L"), "dog/._b.png": b"\x00\x05\x16\x07junk"},
        size=8,
    )


for _s in (0, -3):

    @case(f"image_folder size={_s}")
    def _(s=_s):
        return _load_folder({"cat/a.png": _pil("L")}, size=s)


for _n in (0, -2):

    @case(f"image_folder n={_n}")
    def _(n=_n):
        return _load_folder({"cat/a.png": _pil("L")}, size=8, n=n)


for _c in (2, 0, True):

    @case(f"image_folder channels={_c!r}")
    def _(c=_c):
        return _load_folder({"cat/a.png": _pil("L")}, size=8, channels=c)


@case(
    "image_folder: 16-bit PNG (mid grey)",
    check=lambda ds: abs(float(ds.images.mean()) - 0.5) < 0.01,
)
def _():
    from PIL import Image

    img = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    return _load_folder({"a/x.png": img}, size=8, channels=1)


@case(
    "image_folder: I;16 TIFF (mid grey)",
    check=lambda ds: abs(float(ds.images.mean()) - 0.5) < 0.01,
)
def _():
    from PIL import Image

    img = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))  # mode I;16
    return _load_folder({"a/x.tif": img}, size=8, channels=1)


@case(
    "image_folder: float32 TIFF in [0, 1]",
    check=lambda ds: abs(float(ds.images.mean()) - 0.25) < 0.01,
)
def _():
    from PIL import Image

    img = Image.fromarray(np.full((8, 8), 0.25, dtype=np.float32), mode="F")
    return _load_folder({"a/x.tif": img}, size=8, channels=1)


@case("image_folder: float TIFF with NaN")
def _():
    from PIL import Image

    a = np.full((8, 8), 0.25, dtype=np.float32)
    a[0, 0] = np.nan
    return _load_folder({"a/x.tif": Image.fromarray(a, mode="F")}, size=8, channels=1)


def _exif_rotated():
    """A 4×8 image whose left half is white, stored with EXIF orientation 6 (rotate 90° CW)."""
    from PIL import Image

    a = np.zeros((4, 8), dtype=np.uint8)
    a[:, :4] = 255
    img = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6
    return img, {"exif": exif.tobytes()}


@case(
    "image_folder: EXIF orientation applied",
    check=lambda ds: (
        float(ds.images[0, 0, :4].mean()) > 0.9 and float(ds.images[0, 0, 4:].mean()) < 0.1
    ),
)
def _():
    # stored 4×8 (left half white), shown rotated 90° clockwise: 8×4, top half white; the
    # centre square crop then keeps rows 2…5, of which the upper 2 are white (resized to 8)
    return _load_folder({"a/x.png": _exif_rotated()}, size=8, channels=1)


@case(
    "image_folder: palette PNG with a transparent colour, over white",
    check=lambda ds: float(ds.images.min()) > 0.99,
)
def _():
    from PIL import Image

    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    img.info["transparency"] = 0
    return _load_folder({"a/x.png": (img, {"transparency": 0})}, size=8)


@case(
    "image_folder: LA (grey + alpha), transparent = white",
    check=lambda ds: float(ds.images.min()) > 0.99,
)
def _():
    return _load_folder({"a/x.png": _pil("LA", color=(0, 0))}, size=8, channels=1)


@case(
    "image_folder: RGBA half transparent red over white",
    check=lambda ds: (
        abs(float(ds.images[0, 0].mean()) - 1.0) < 0.02
        and abs(float(ds.images[0, 1].mean()) - 0.5) < 0.02
    ),
)
def _():
    return _load_folder({"a/x.png": _pil("RGBA", color=(255, 0, 0, 128))}, size=8)


@case(
    "image_folder: CMYK JPEG (pure cyan)",
    check=lambda ds: float(ds.images[0, 0].mean()) < 0.1 and float(ds.images[0, 2].mean()) > 0.9,
)
def _():
    return _load_folder({"a/x.jpg": _pil("CMYK", color=(255, 0, 0, 0))}, size=8)


@case("image_folder: corrupt (truncated) PNG")
def _():
    buf = io.BytesIO()
    _pil("RGB", (32, 32), (10, 20, 30)).save(buf, format="PNG")
    return _load_folder({"a/x.png": buf.getvalue()[:40]}, size=8)


@case("image_folder: an empty class folder")
def _():
    Path("imgs/empty").mkdir(parents=True)
    return _load_folder({"cat/a.png": _pil("L")}, size=8)


@case("nifti: volume with NaN voxels", check=lambda ds: _finite_tensor(ds.images))
def _():
    vol = _brain_volume()
    vol[0, 0, 0] = np.nan
    vol[12, 12, 6] = np.inf
    _nifti(Path("brats/c1/c1_t1.nii.gz"), vol)
    return _load_nifti()


@case(
    "nifti: int16 volume equals the float one",
    check=lambda pair: torch.allclose(pair[0].images, pair[1].images, atol=1e-6),
)
def _():
    from helpers import datasets

    _nifti(Path("a/c1/c1_t1.nii.gz"), _brain_volume(np.int16))
    _nifti(Path("b/c1/c1_t1.nii.gz"), _brain_volume(np.float32))
    return (
        datasets.load("nifti", root=Path("a"), size=16),
        datasets.load("nifti", root=Path("b"), size=16),
    )


@case(
    "nifti: scl_slope/scl_inter applied",
    check=lambda pair: torch.allclose(pair[0].images, pair[1].images, atol=1e-5),
)
def _():
    from helpers import datasets

    raw = (_brain_volume() / 2).astype(np.int16)  # stored values; real = 2 · stored
    _nifti(Path("a/c1/c1_t1.nii.gz"), raw, slope=2.0, inter=0.0)
    _nifti(Path("b/c1/c1_t1.nii.gz"), 2.0 * raw.astype(np.float32))
    return (
        datasets.load("nifti", root=Path("a"), size=16),
        datasets.load("nifti", root=Path("b"), size=16),
    )


@case(
    "nifti: 4-D volume of one time point (X, Y, Z, 1)",
    check=lambda ds: len(ds) > 0 and _finite_tensor(ds.images),
)
def _():
    _nifti(Path("brats/c1/c1_t1.nii.gz"), _brain_volume()[..., None])
    return _load_nifti()


@case("nifti: 4-D volume of three time points")
def _():
    _nifti(Path("brats/c1/c1_t1.nii.gz"), np.stack([_brain_volume()] * 3, axis=-1))
    return _load_nifti()


@case("nifti: truncated .nii.gz")
def _():
    path = _nifti(Path("brats/c1/c1_t1.nii.gz"), _brain_volume())
    path.write_bytes(path.read_bytes()[:200])
    return _load_nifti()


@case("nifti: segmentation of another shape")
def _():
    _nifti(Path("brats/c1/c1_t1.nii.gz"), _brain_volume())
    _nifti(Path("brats/c1/c1_seg.nii.gz"), np.zeros((5, 5, 5), dtype=np.uint8))
    return _load_nifti()


for _kw in ({"size": 0}, {"modality": 3}, {"split": "val"}, {"min_brain_fraction": float("nan")}):

    @case(f"nifti {_kw}")
    def _(kw=_kw):
        _nifti(Path("brats/c1/c1_t1.nii.gz"), _brain_volume())
        from helpers import datasets

        return datasets.load("nifti", root=Path("brats"), **{"size": 16, **kw})


# ============================================================================================
# metrics


def _u8(value):
    return np.full((16, 16), value, dtype=np.uint8)


@case("psnr: uint8 images ±5", check=lambda v: abs(v - 34.15) < 0.01)
def _():
    from helpers import metrics

    return metrics.psnr(_u8(100), _u8(105))


@case("psnr: uint8 ±5 on half the pixels", check=lambda v: abs(v - 37.16) < 0.01)
def _():
    from helpers import metrics

    a, b = _u8(100), _u8(100)
    b[::2] += 5
    return metrics.psnr(a, b)


@case("psnr: PIL images", check=lambda v: abs(v - 34.15) < 0.01)
def _():
    from PIL import Image

    from helpers import metrics

    return metrics.psnr(Image.fromarray(_u8(100)), Image.fromarray(_u8(105)))


@case("psnr: uint8 against float")
def _():
    from helpers import metrics

    return metrics.psnr(_u8(100), np.full((16, 16), 0.4))


@case("ssim: uint8 equals scikit-image", check=lambda v: abs(v[0] - v[1]) < 1e-9)
def _():
    from skimage.metrics import structural_similarity

    from helpers import metrics

    a = np.random.default_rng(0).integers(0, 256, (16, 16)).astype(np.uint8)
    b = np.clip(a.astype(int) + 7, 0, 255).astype(np.uint8)
    return metrics.ssim(a, b), structural_similarity(a, b)


@case("ssim: PIL RGB images equal scikit-image", check=lambda v: abs(v[0] - v[1]) < 1e-9)
def _():
    from PIL import Image
    from skimage.metrics import structural_similarity

    from helpers import metrics

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    ours = metrics.ssim(Image.fromarray(a), Image.fromarray(b))
    return ours, structural_similarity(a, b, channel_axis=-1)


@case("psnr: NaN pixel")
def _():
    from helpers import metrics

    return metrics.psnr(_rand(8, 8), _nan(8, 8))


@case("psnr: shapes differ")
def _():
    from helpers import metrics

    return metrics.psnr(_rand(8, 8), _rand(8, 9))


@case("psnr: 1-D signal")
def _():
    from helpers import metrics

    return metrics.psnr(_rand(8), _rand(8))


@case("psnr: empty images")
def _():
    from helpers import metrics

    return metrics.psnr(np.zeros((0, 0)), np.zeros((0, 0)))


for _r in (0, -1, float("nan")):

    @case(f"psnr data_range={_r}")
    def _(r=_r):
        from helpers import metrics

        return metrics.psnr(_rand(8, 8), _rand(8, 8), data_range=r)


@case("psnr: strings")
def _():
    from helpers import metrics

    return metrics.psnr("a", "b")


@case("ssim: image smaller than the window")
def _():
    from helpers import metrics

    return metrics.ssim(_rand(4, 4), _rand(4, 4))


@case("ssim: NaN pixel")
def _():
    from helpers import metrics

    return metrics.ssim(_rand(8, 8), _nan(8, 8))


@case("mse_to_psnr: negative MSE")
def _():
    from helpers import metrics

    return metrics.mse_to_psnr(-1.0)


@case("frechet_distance: NaN feature")
def _():
    from helpers import metrics

    return metrics.frechet_distance(_nan(10, 3), _rand(10, 3))


@case("frechet_distance: Inf feature")
def _():
    from helpers import metrics

    x = _rand(10, 3)
    x[2, 1] = float("inf")
    return metrics.frechet_distance(x, _rand(10, 3))


@case("frechet_distance: one sample")
def _():
    from helpers import metrics

    return metrics.frechet_distance(_rand(1, 3), _rand(10, 3))


@case("frechet_distance: 1-D features")
def _():
    from helpers import metrics

    return metrics.frechet_distance(_rand(10), _rand(10))


@case("frechet_distance: dimensions differ")
def _():
    from helpers import metrics

    return metrics.frechet_distance(_rand(10, 3), _rand(10, 4))


@case("auroc: NaN score")
def _():
    from helpers import metrics

    return metrics.auroc([0, 1, 0, 1], [0.1, float("nan"), 0.3, 0.9])


@case("auroc: label 2")
def _():
    from helpers import metrics

    return metrics.auroc([0, 1, 2], [0.1, 0.2, 0.3])


@case("auroc: one class")
def _():
    from helpers import metrics

    return metrics.auroc([1, 1], [0.1, 0.2])


@case("auroc: lengths differ")
def _():
    from helpers import metrics

    return metrics.auroc([0, 1], [0.1, 0.2, 0.3])


@case("auroc: empty")
def _():
    from helpers import metrics

    return metrics.auroc([], [])


@case("cosine_to_reference: reference of the wrong shape")
def _():
    from helpers import metrics

    return metrics.cosine_to_reference(_rand(2, 3, 4), _rand(3, 4), _rand(5, 4))


@case("cosine_to_reference: others of another width")
def _():
    from helpers import metrics

    return metrics.cosine_to_reference(_rand(2, 3, 4), _rand(2, 4), _rand(5, 3))


# ============================================================================================
# diffusion


for _kind, _T in (("nope", 10), ("linear", 0), ("linear", -1), ("linear", 10.0), ("linear", True)):

    @case(f"Schedule.make({_kind!r}, T={_T!r})")
    def _(kind=_kind, T=_T):
        from helpers import diffusion

        return diffusion.Schedule.make(kind, T=T)


@case("Schedule.make linear start=nan")
def _():
    from helpers import diffusion

    return diffusion.Schedule.make("linear", T=10, start=float("nan"))


@case("Schedule.from_betas: empty")
def _():
    from helpers import diffusion

    return diffusion.Schedule.from_betas(torch.tensor([]))


@case(
    "q_sample: uint8 x0",
    check=lambda x: isinstance(x, torch.Tensor) and x.is_floating_point(),
)
def _():
    from helpers import diffusion

    x0 = torch.full((1, 1, 4, 4), 200, dtype=torch.uint8)
    return diffusion.q_sample(x0, 0, torch.zeros(1, 1, 4, 4, dtype=torch.uint8), _schedule())


@case("q_sample: int64 noise")
def _():
    from helpers import diffusion

    return diffusion.q_sample(
        _rand(1, 1, 4, 4), 3, torch.zeros(1, 1, 4, 4, dtype=torch.long), _schedule()
    )


for _t in (50, -1, 2.5, torch.tensor([1, 2, 3])):

    @case(f"q_sample t={_t!r}")
    def _(t=_t):
        from helpers import diffusion

        x = _rand(2, 1, 4, 4)
        return diffusion.q_sample(x, t, x, _schedule())


@case("q_sample: noise of another shape")
def _():
    from helpers import diffusion

    return diffusion.q_sample(_rand(2, 1, 4, 4), 3, _rand(2, 1, 4, 5), _schedule())


@case("q_sample: 1-D x0")
def _():
    from helpers import diffusion

    return diffusion.q_sample(_rand(4), 3, _rand(4), _schedule())


@case("q_sample: numpy x0")
def _():
    from helpers import diffusion

    return diffusion.q_sample(np.zeros((1, 1, 4, 4)), 3, _rand(1, 1, 4, 4), _schedule())


def _ddim_half():
    from helpers import diffusion

    s = _schedule(1000)
    x, eps = _rand(2, 1, 4, 4) * 2 - 1, _rand(2, 1, 4, 4) - 0.5
    full = diffusion.ddim_step(eps, 0, -1, x, s)
    half = diffusion.ddim_step(eps.half(), 0, -1, x.half(), s)
    return full, half


@case(
    "ddim_step: float16 at t = 0 → −1",
    check=lambda p: (
        _finite_tensor(p[1])
        and p[1].dtype == torch.float16
        and torch.allclose(p[1].float(), p[0], atol=2e-3)
    ),
)
def _():
    return _ddim_half()


@case(
    "ddpm_step: float16 at t = 0",
    check=lambda p: _finite_tensor(p[1]) and torch.allclose(p[1].float(), p[0], atol=2e-3),
)
def _():
    from helpers import diffusion

    s = _schedule(1000)
    x, eps = _rand(2, 1, 4, 4) * 2 - 1, _rand(2, 1, 4, 4) - 0.5
    z = torch.zeros_like(x)
    return (
        diffusion.ddpm_step(eps, 0, x, s, noise=z),
        diffusion.ddpm_step(eps.half(), 0, x.half(), s, noise=z.half()),
    )


for _eta in (-1.0, float("nan")):

    @case(f"ddim_step eta={_eta}")
    def _(eta=_eta):
        from helpers import diffusion

        x = _rand(1, 1, 4, 4)
        return diffusion.ddim_step(x, 10, 5, x, _schedule(), eta=eta)


@case("ddim_step: t_prev ≥ t")
def _():
    from helpers import diffusion

    x = _rand(1, 1, 4, 4)
    return diffusion.ddim_step(x, 5, 5, x, _schedule())


@case("ddpm_step variance='large'")
def _():
    from helpers import diffusion

    x = _rand(1, 1, 4, 4)
    return diffusion.ddpm_step(x, 5, x, _schedule(), variance="large")


@case("ddpm_step: uint8 x_t")
def _():
    from helpers import diffusion

    x = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    return diffusion.ddpm_step(x, 5, x, _schedule(), noise=x)


for _args in ((1000, 0), (1000, 2000), (1000, 5.0), (0, 1)):

    @case(f"ddim_timesteps{_args}")
    def _(args=_args):
        from helpers import diffusion

        return diffusion.ddim_timesteps(*args)


@case("ddim_timesteps spacing='middle'")
def _():
    from helpers import diffusion

    return diffusion.ddim_timesteps(1000, 10, spacing="middle")


def _sample(**kw):
    from helpers import diffusion

    args = dict(schedule=_schedule(20), steps=2)
    args.update(kw)
    shape = args.pop("shape", (2, 1, 8, 8))
    return diffusion.sample(args.pop("model", _unet()), shape, **args)


for _steps in (0, -1, 2.5):

    @case(f"sample steps={_steps!r}")
    def _(steps=_steps):
        return _sample(steps=steps)


@case("sample sampler='euler'")
def _():
    return _sample(sampler="euler")


@case("sample: shape without channels (2, 8, 8)")
def _():
    return _sample(shape=(2, 8, 8))


@case("sample: zero samples", check=lambda x: isinstance(x, torch.Tensor) and x.shape[0] == 0)
def _():
    return _sample(shape=(0, 1, 8, 8))


@case("sample guidance=nan")
def _():
    return _sample(model=_unet(num_classes=3), y=torch.tensor([0, 1]), guidance=float("nan"))


@case("sample eta=-1")
def _():
    return _sample(eta=-1.0)


@case("sample: y of the wrong length")
def _():
    return _sample(model=_unet(num_classes=3), y=torch.tensor([0, 1, 2]))


@case("sample seed='a'")
def _():
    return _sample(seed="a")


@case("sample device='nope'")
def _():
    return _sample(device="nope")


@case(
    "sample: UNet in bfloat16",
    check=lambda x: _finite_tensor(x) and x.dtype == torch.float32 and x.shape == (2, 1, 8, 8),
)
def _():
    return _sample(model=_unet().to(torch.bfloat16))


@case(
    "UNet forward in bfloat16",
    check=lambda x: x.dtype == torch.bfloat16 and _finite_tensor(x.float()),
)
def _():
    net = _unet(num_classes=3).to(torch.bfloat16)
    return net(_rand(2, 1, 8, 8).bfloat16(), torch.tensor([1, 2]), y=torch.tensor([0, 3]))


@case(
    "UNet (cross-attention) forward in bfloat16",
    check=lambda x: x.dtype == torch.bfloat16 and _finite_tensor(x.float()),
)
def _():
    net = _unet(cond_dim=4, cond_mode="cross_attention").to(torch.bfloat16)
    return net(_rand(2, 1, 8, 8).bfloat16(), torch.tensor([1, 2]), cond=_rand(2, 4).bfloat16())


@case("to_signed: uint8 images")
def _():
    from helpers import diffusion

    return diffusion.to_signed(torch.full((1, 1, 2, 2), 200, dtype=torch.uint8))


@case("to_unit: int64")
def _():
    from helpers import diffusion

    return diffusion.to_unit(torch.zeros(1, 1, 2, 2, dtype=torch.long))


for _p in (2.0, -0.5):

    @case(f"drop_condition p={_p}")
    def _(p=_p):
        from helpers import diffusion

        return diffusion.drop_condition(
            _unet(num_classes=3), torch.tensor([0, 1]), None, p, batch=2
        )


@case("classifier_free_guidance: shapes differ")
def _():
    from helpers import diffusion

    return diffusion.classifier_free_guidance(_rand(2, 3), _rand(2, 4), 1.0)


# ============================================================================================
# diffusion_training


@case("train: one image is NaN")
def _():
    return _train(_nan(4, 1, 8, 8))


@case("train: zero images")
def _():
    return _train(torch.zeros(0, 1, 8, 8))


@case("train: uint8 images")
def _():
    return _train(torch.zeros(4, 1, 8, 8, dtype=torch.uint8))


@case(
    "train: float16 images",
    check=lambda r: len(r.loss_history) == 2 and all(map(math.isfinite, r.loss_history)),
)
def _():
    return _train((_rand(4, 1, 8, 8) * 2 - 1).half())


for _kw in (
    {"grad_clip": -1.0},
    {"grad_clip": 0.0},
    {"steps": 0},
    {"batch_size": 0},
    {"lr": 0.0},
    {"lr": float("nan")},
    {"ema_decay": 1.5},
    {"cond_drop": -0.1},
    {"warmup": -5},
    {"lr_schedule": "step"},
    {"checkpoint_every": 0},
    {"seed": "a"},
    {"device": "nope"},
    {"resume": True},
):

    @case(f"train {_kw}")
    def _(kw=_kw):
        return _train(_rand(4, 1, 8, 8) * 2 - 1, **kw)


@case("train: float labels")
def _():
    from helpers import diffusion_training

    return diffusion_training.train(
        _unet(num_classes=2), _rand(4, 1, 8, 8) * 2 - 1, labels=torch.tensor([0.0, 1, 0, 1]),
        schedule=_schedule(), steps=2, batch_size=2, progress=False,
    )  # fmt: skip


@case("train: labels of the wrong length")
def _():
    from helpers import diffusion_training

    return diffusion_training.train(
        _unet(num_classes=2), _rand(4, 1, 8, 8) * 2 - 1, labels=torch.tensor([0, 1]),
        schedule=_schedule(), steps=2, batch_size=2, progress=False,
    )  # fmt: skip


@case("train: label out of range")
def _():
    from helpers import diffusion_training

    return diffusion_training.train(
        _unet(num_classes=2), _rand(4, 1, 8, 8) * 2 - 1, labels=torch.tensor([0, 1, 5, 1]),
        schedule=_schedule(), steps=2, batch_size=2, progress=False,
    )  # fmt: skip


@case("train: condition vector with NaN")
def _():
    from helpers import diffusion_training

    return diffusion_training.train(
        _unet(cond_dim=3), _rand(4, 1, 8, 8) * 2 - 1, cond=_nan(4, 3),
        schedule=_schedule(), steps=2, batch_size=2, progress=False,
    )  # fmt: skip


@case("train: 3-D images")
def _():
    return _train(_rand(4, 8, 8))


@case("train: numpy images")
def _():
    return _train(np.zeros((4, 1, 8, 8), dtype=np.float32))


@case("train: resume from an empty checkpoint file (the user's)")
def _():
    Path("mine.safetensors").write_bytes(b"")
    return _train(_rand(4, 1, 8, 8) * 2 - 1, checkpoint_path="mine.safetensors")


@case("train: resume from a garbage checkpoint file (the user's)")
def _():
    Path("mine.safetensors").write_bytes(b"not a checkpoint at all, just text" * 4)
    return _train(_rand(4, 1, 8, 8) * 2 - 1, checkpoint_path="mine.safetensors")


@case(
    "train: damaged cache file is moved aside and trained again",
    check=lambda r: r[0].steps == 2 and r[1],
)
def _():
    from helpers import runtime

    os.environ["COURSE_CACHE_DIR"] = str(Path("cache").resolve())
    path = runtime.cache_path("99_test", 1)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    result = _train(_rand(4, 1, 8, 8) * 2 - 1, checkpoint_path=path)
    aside = [p for p in path.parent.iterdir() if p.name != path.name]
    return result, bool(aside)


@case("train: resume from a checkpoint of another network")
def _():
    from helpers import diffusion_training

    _train(_rand(4, 1, 8, 8) * 2 - 1, checkpoint_path="mine.safetensors")
    other = _unet(num_classes=3)
    return diffusion_training.train(
        other, _rand(4, 1, 8, 8) * 2 - 1, schedule=_schedule(), steps=3, batch_size=2,
        checkpoint_path="mine.safetensors", progress=False,
    )  # fmt: skip


# ============================================================================================
# gan


def _gan(images, **kw):
    from helpers import gan

    cfg = gan.GANConfig(g_width=4, d_width=4, latent_dim=8, steps=2, batch_size=2)
    return gan.train_gan(images, config=cfg, device="cpu", progress=False, **kw)


@case("train_gan: NaN image")
def _():
    return _gan(_nan(4, 1, 32, 32))


@case("train_gan: uint8 images")
def _():
    return _gan(torch.full((4, 1, 32, 32), 200, dtype=torch.uint8))


@case("train_gan: images in [0, 255] as floats")
def _():
    return _gan(_rand(4, 1, 32, 32) * 255)


@case("train_gan: zero images")
def _():
    return _gan(torch.zeros(0, 1, 32, 32))


@case("train_gan: wrong image size")
def _():
    return _gan(_rand(4, 1, 16, 16))


for _kw in ({"steps": 0}, {"batch_size": -1}):

    @case(f"train_gan {_kw}")
    def _(kw=_kw):
        return _gan(_rand(4, 1, 32, 32), **kw)


@case("GANConfig(image_size=48)")
def _():
    from helpers import gan

    return gan.GANConfig(image_size=48)


for _kw in ({"n": 0}, {"n": 3, "batch_size": 0}):

    @case(f"gan.sample {_kw}")
    def _(kw=_kw):
        from helpers import gan

        g, _ = gan.build(gan.GANConfig(g_width=4, d_width=4, latent_dim=8))
        return gan.sample(g, **kw)


# ============================================================================================
# dip and degradations


def _fit(**kw):
    from helpers import dip

    net = dip.SkipNet(4, 1, scales=2, channels=4, skip_channels=2, seed=0)
    size = kw.pop("size", 16)
    z = kw.pop("z", dip.make_input(4, (size, size), generator=torch.Generator().manual_seed(0)))
    target = kw.pop("target", _rand(1, 1, size, size))
    return dip.fit(net, z, target, iterations=kw.pop("iterations", 3), progress=False, **kw)


for _kw in (
    {"ema": 1.5},
    {"ema": 1.0},
    {"ema": -0.1},
    {"lr": 0.0},
    {"lr": -1.0},
    {"iterations": 0},
    {"reg_noise_std": -1.0},
    {"snapshot_every": -1},
    {"task": "deblur"},
):

    @case(f"dip.fit {_kw}")
    def _(kw=_kw):
        return _fit(**kw)


@case(
    "dip.fit super_resolution factor=3",
    check=lambda r: len(r.loss) == 3 and tuple(r.output.shape) == (1, 1, 48, 48),
)
def _():
    return _fit(size=48, target=_rand(1, 1, 16, 16), task="super_resolution", factor=3)


@case("dip.fit: uint8 target")
def _():
    return _fit(target=torch.zeros(1, 1, 16, 16, dtype=torch.uint8))


@case(
    "dip.fit: float16 target",
    check=lambda r: len(r.loss) == 3 and all(map(math.isfinite, r.loss)),
)
def _():
    return _fit(target=_rand(1, 1, 16, 16).half())


@case("dip.fit: NaN target")
def _():
    return _fit(target=_nan(1, 1, 16, 16))


@case("dip.fit: NaN clean image")
def _():
    return _fit(clean=_nan(1, 1, 16, 16))


@case("dip.fit: mask of the wrong size")
def _():
    return _fit(task="inpaint", mask=torch.ones(1, 1, 8, 8))


@case("dip.fit: z of the wrong rank")
def _():
    return _fit(z=_rand(4, 16, 16))


@case("dip.fit: clean of the wrong shape")
def _():
    return _fit(clean=_rand(1, 1, 8, 8))


for _kw in ({"scales": 0}, {"channels": 0}, {"in_channels": 0}, {"upsample": "cubic"}):

    @case(f"SkipNet {_kw}")
    def _(kw=_kw):
        from helpers import dip

        args = dict(in_channels=4, out_channels=1, scales=2, channels=4)
        args.update(kw)
        return dip.SkipNet(**args)


@case("SkipNet forward: size not divisible")
def _():
    from helpers import dip

    return dip.SkipNet(4, 1, scales=2, channels=4)(_rand(1, 4, 10, 10))


@case("SkipNet forward: uint8 input")
def _():
    from helpers import dip

    return dip.SkipNet(4, 1, scales=2, channels=4)(torch.zeros(1, 4, 16, 16, dtype=torch.uint8))


@case("make_input(4, 8): one int is a square", check=lambda z: tuple(z.shape) == (1, 4, 8, 8))
def _():
    from helpers import dip

    return dip.make_input(4, 8)


for _args, _kw in (
    ((0, (8, 8)), {}),
    ((4, (0, 8)), {}),
    ((4, (8, 8)), {"kind": "grid"}),
    ((4, (8, 8)), {"scale": -1.0}),
):

    @case(f"make_input{_args} {_kw}")
    def _(args=_args, kw=_kw):
        from helpers import dip

        return dip.make_input(*args, **kw)


@case("DIPConfig(size=30, scales=5)")
def _():
    from helpers import dip

    return dip.DIPConfig(size=30, scales=5, channels=8)


@case("data_term task='deblur'")
def _():
    from helpers import dip

    return dip.data_term(_rand(1, 1, 4, 4), _rand(1, 1, 4, 4), "deblur")


@case(
    "LanczosDownsampler(3) on 60×60 gives 20×20",
    check=lambda y: tuple(y.shape) == (1, 1, 20, 20),
)
def _():
    from helpers import degradations

    return degradations.LanczosDownsampler(3, channels=1)(_rand(1, 1, 60, 60))


for _f in (1, 0, 2.0, True):

    @case(f"lanczos_kernel({_f!r})")
    def _(f=_f):
        from helpers import degradations

        return degradations.lanczos_kernel(f)


@case("LanczosDownsampler channels=0")
def _():
    from helpers import degradations

    return degradations.LanczosDownsampler(2, channels=0)


@case("LanczosDownsampler: (C, H, W) input")
def _():
    from helpers import degradations

    return degradations.LanczosDownsampler(2, channels=1)(_rand(1, 8, 8))


for _sigma in (-1.0, float("nan")):

    @case(f"add_noise sigma={_sigma}")
    def _(sigma=_sigma):
        from helpers import degradations

        return degradations.add_noise(_rand(1, 1, 4, 4), sigma)


@case("add_noise: uint8 image")
def _():
    from helpers import degradations

    return degradations.add_noise(torch.full((1, 1, 4, 4), 200, dtype=torch.uint8), 0.1)


for _args in (((8, 8), 1.0), ((8, 8), float("nan")), ((0, 8), 0.5), ((-2, 8), 0.5)):

    @case(f"random_mask{_args}")
    def _(args=_args):
        from helpers import degradations

        return degradations.random_mask(*args)


for _kw in ({"size": 8}, {"size": 0}, {"size": 64, "font_size": 0}, {"size": 64, "stroke": -1}):

    @case(f"text_mask {_kw}")
    def _(kw=_kw):
        from helpers import degradations

        return degradations.text_mask(**kw)


@case("shuffle_pixels: (C, H, W)")
def _():
    from helpers import degradations

    return degradations.shuffle_pixels(_rand(1, 4, 4))


# ============================================================================================
# unet


for _kw in (
    {"in_channels": 0},
    {"base_channels": 0},
    {"channel_mults": ()},
    {"channel_mults": (0,)},
    {"num_classes": 0},
    {"cond_dim": 0},
    {"heads": 0},
    {"dropout": 1.5},
    {"cond_mode": "concat"},
):

    @case(f"UNet {_kw}")
    def _(kw=_kw):
        from helpers import unet

        args = dict(in_channels=1, base_channels=8, channel_mults=(1, 2))
        args.update(kw)
        return unet.UNet(**args)


@case("UNet forward: uint8 x")
def _():
    return _unet()(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([1, 2]))


@case("UNet forward: float32 x into a bfloat16 network")
def _():
    return _unet().to(torch.bfloat16)(_rand(2, 1, 8, 8), torch.tensor([1, 2]))


@case("UNet forward: label out of range")
def _():
    return _unet(num_classes=3)(_rand(2, 1, 8, 8), torch.tensor([1, 2]), y=torch.tensor([0, 9]))


@case("UNet forward: cond of the wrong width")
def _():
    return _unet(cond_dim=4)(_rand(2, 1, 8, 8), torch.tensor([1, 2]), cond=_rand(2, 5))


@case("UNet forward: size not divisible")
def _():
    return _unet()(_rand(2, 1, 7, 7), torch.tensor([1, 2]))


@case("UNet forward: t of the wrong shape")
def _():
    return _unet()(_rand(2, 1, 8, 8), torch.tensor([1]))


@case("make_model kind='dit'")
def _():
    from helpers import unet

    return unet.make_model("dit")


# ============================================================================================
# vit, attention, sinusoidal, tiling


for _p in (0, 3.0, (4, 0)):

    @case(f"patchify patch_size={_p!r}")
    def _(p=_p):
        from helpers import vit

        return vit.patchify(_rand(1, 1, 8, 8), p)


@case("patchify: 3-D images")
def _():
    from helpers import vit

    return vit.patchify(_rand(1, 8, 8), 4)


@case("patchify: size not divisible")
def _():
    from helpers import vit

    return vit.patchify(_rand(1, 1, 10, 10), 4)


@case("PatchEmbed: uint8 images")
def _():
    from helpers import vit

    return vit.PatchEmbed(8, 4, 1, 16)(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


@case("PatchEmbed: float16 images into a float32 layer")
def _():
    from helpers import vit

    return vit.PatchEmbed(8, 4, 1, 16)(_rand(2, 1, 8, 8).half())


@case("PatchEmbed embed_dim=0")
def _():
    from helpers import vit

    return vit.PatchEmbed(8, 4, 1, 0)


for _kw in ({"patch_size": 0}, {"num_heads": 0}, {"lr": float("nan")}, {"pos_embed": "rope"}):

    @case(f"ViTConfig {_kw}")
    def _(kw=_kw):
        from helpers import vit

        return vit.ViTConfig(**kw)


def _vit_data(images=None, labels=None):
    from helpers import vit

    cfg = vit.ViTConfig(img_size=8, patch_size=4, embed_dim=8, depth=1, num_heads=2, epochs=1)
    x = _rand(4, 1, 8, 8) if images is None else images
    y = torch.tensor([0, 1, 2, 3]) if labels is None else labels
    return vit.train_vit(x, y, cfg, device="cpu", progress=False)


@case("train_vit: NaN image")
def _():
    return _vit_data(images=_nan(4, 1, 8, 8))


@case("train_vit: uint8 images")
def _():
    return _vit_data(images=torch.zeros(4, 1, 8, 8, dtype=torch.uint8))


@case("train_vit: label out of range")
def _():
    return _vit_data(labels=torch.tensor([0, 1, 2, 30]))


@case("train_vit: float labels")
def _():
    return _vit_data(labels=torch.tensor([0.0, 1, 2, 3]))


@case("attention_rollout residual=2")
def _():
    from helpers import vit

    model = vit.TinyViT(vit.ViTConfig(img_size=8, patch_size=4, depth=1, embed_dim=8, num_heads=2))
    return vit.attention_rollout(model, _rand(1, 1, 8, 8), residual=2.0)


@case("attention: 3-D q")
def _():
    from helpers import attention

    q = _rand(1, 4, 8)
    return attention.attention(q, q, q)


@case("attention: uint8 q, k, v")
def _():
    from helpers import attention

    q = torch.ones(1, 1, 4, 8, dtype=torch.uint8)
    return attention.attention(q, q, q)


@case(
    "dilated_attention: N = 0",
    check=lambda y: isinstance(y, torch.Tensor) and tuple(y.shape) == (1, 2, 0, 4),
)
def _():
    from helpers import attention

    q = torch.zeros(1, 2, 0, 4)
    return attention.dilated_attention(q, q, q, [4], [1])


for _w, _r in (([0], [1]), ([4, 8], [1]), ([6], [4])):

    @case(f"dilated_attention w={_w} r={_r}")
    def _(w=_w, r=_r):
        from helpers import attention

        q = _rand(1, 2, 8, 4)
        return attention.dilated_attention(q, q, q, w, r)


@case("score_bytes(n_tokens=-10)")
def _():
    from helpers import attention

    return attention.score_bytes(-10)


@case("dilated_score_bytes(n_tokens=-10)")
def _():
    from helpers import attention

    return attention.dilated_score_bytes(-10, [4], [1])


for _args in ((torch.tensor([1, 2]), 1), (torch.tensor([1, 2]), 6, float("nan"))):

    @case(f"sinusoidal_embedding{tuple(map(str, _args))}")
    def _(args=_args):
        from helpers import sinusoidal

        return sinusoidal.sinusoidal_embedding(
            args[0], args[1], max_period=args[2] if len(args) > 2 else 10000.0
        )


for _g, _d in ((4, 6), (0, 8)):

    @case(f"sincos_2d({_g}, {_d})")
    def _(g=_g, d=_d):
        from helpers import sinusoidal

        return sinusoidal.sincos_2d(g, d)


for _args in ((16, 16, 0), (16, 16, 4, 0), (16, 16, 32)):

    @case(f"tile_coords{_args}")
    def _(args=_args):
        from helpers import tiling

        return tiling.tile_coords(*args)


@case("grid_index tile_size=0")
def _():
    from helpers import tiling

    return tiling.grid_index(torch.tensor([[0, 8]]), 0)


@case("pca_colors n_components=0")
def _():
    from helpers import tiling

    return tiling.pca_colors(_rand(4, 4, 8), n_components=0)


@case("embed_tiles: 4-D image")
def _():
    from helpers import tiling

    return tiling.embed_tiles(_rand(1, 1, 8, 8), lambda t: t.flatten(1), tile_size=4)


# ============================================================================================
# large_image


def _large(**kw):
    from helpers import large_image

    args = dict(schedule=_schedule(20), patch=8, channels=1, steps=2, guidance=0.0)
    args.update(kw)
    return large_image.sample_large(_unet(cond_dim=3), args.pop("grid", _rand(2, 2, 3)), **args)


for _kw in (
    {"stride": 0},
    {"window_batch": 0},
    {"steps": 0},
    {"patch": 0},
    {"guidance": float("nan")},
):

    @case(f"sample_large {_kw}")
    def _(kw=_kw):
        return _large(**kw)


@case("sample_large: 2-D grid")
def _():
    return _large(grid=_rand(2, 3))


@case("window_positions stride=0")
def _():
    from helpers import large_image

    return large_image.window_positions(16, 16, window=8, stride=0)


@case("window_positions: window larger than the canvas")
def _():
    from helpers import large_image

    return large_image.window_positions(16, 16, window=32, stride=8)


@case("overlap_weights: windows that leave a gap")
def _():
    from helpers import large_image

    return large_image.overlap_weights(16, 16, [(0, 0)], 8)


@case("grid_conditions patch=0")
def _():
    from helpers import large_image

    return large_image.grid_conditions(_rand(2, 2, 3), [(0, 0)], patch=0, window=8)


@case("slerp: shapes differ")
def _():
    from helpers import large_image

    return large_image.slerp(_rand(3), _rand(4), 0.5)


for _kw in ({"tile": 0}, {"tile": 4, "offset": 4}):

    @case(f"seam_ratio {_kw}")
    def _(kw=_kw):
        from helpers import large_image

        return large_image.seam_ratio(_rand(1, 8, 8), **kw)


@case("seam_ratio: NaN image")
def _():
    from helpers import large_image

    return large_image.seam_ratio(_nan(1, 8, 8), 4)


# ============================================================================================
# memorization


@case("max_correlation: one NaN training image")
def _():
    from helpers import memorization

    train = _rand(6, 1, 4, 4)
    train[2, 0, 0, 0] = float("nan")
    return memorization.max_correlation(train[[0, 1]], train)


@case("max_correlation: NaN generated image")
def _():
    from helpers import memorization

    return memorization.max_correlation(_nan(2, 1, 4, 4), _rand(6, 1, 4, 4))


@case(
    "max_correlation: uint8 images find the copy",
    check=lambda m: m.indices.tolist() == [3],
)
def _():
    from helpers import memorization

    train = (_rand(6, 1, 4, 4) * 255).to(torch.uint8)
    return memorization.max_correlation(train[[3]], train)


@case("max_correlation: shapes differ")
def _():
    from helpers import memorization

    return memorization.max_correlation(_rand(2, 1, 4, 4), _rand(6, 1, 4, 5))


@case("max_correlation: no training images")
def _():
    from helpers import memorization

    return memorization.max_correlation(_rand(2, 1, 4, 4), torch.zeros(0, 1, 4, 4))


@case("max_correlation: 1-D")
def _():
    from helpers import memorization

    return memorization.max_correlation(_rand(4), _rand(4))


for _kw in ({"batch_size": 0}, {"max_shift": -1}):

    @case(f"max_correlation {_kw}")
    def _(kw=_kw):
        from helpers import memorization

        return memorization.max_correlation(_rand(2, 1, 4, 4), _rand(6, 1, 4, 4), **kw)


@case("max_cosine: NaN feature")
def _():
    from helpers import memorization

    return memorization.max_cosine(_rand(2, 3), _nan(6, 3))


for _g in (0, 3):

    @case(f"min_tiled_l2 grid={_g}")
    def _(g=_g):
        from helpers import memorization

        return memorization.min_tiled_l2(_rand(2, 1, 4, 4), _rand(6, 1, 4, 4), grid=g)


@case("min_tiled_l2: Inf training image")
def _():
    from helpers import memorization

    t = _rand(6, 1, 4, 4)
    t[1, 0, 1, 1] = float("inf")
    return memorization.min_tiled_l2(_rand(2, 1, 4, 4), t)


@case("memorization_rate threshold=nan")
def _():
    from helpers import memorization

    return memorization.memorization_rate([0.9, 0.99], float("nan"))


@case("memorization_rate: NaN value")
def _():
    from helpers import memorization

    return memorization.memorization_rate([0.9, float("nan")], 0.95)


@case("memorization_rate: no values")
def _():
    from helpers import memorization

    return memorization.memorization_rate([], 0.95)


for _q in (1.5, 0.0):

    @case(f"calibrated_threshold quantile={_q}")
    def _(q=_q):
        from helpers import memorization

        return memorization.calibrated_threshold([0.1, 0.2], q)


@case("calibrated_threshold: NaN value")
def _():
    from helpers import memorization

    return memorization.calibrated_threshold([0.1, float("nan"), 0.3], 0.5)


@case("top_pairs k=-1")
def _():
    from helpers import memorization

    m = memorization.max_correlation(_rand(2, 1, 4, 4), _rand(6, 1, 4, 4))
    return memorization.top_pairs(m, -1)


@case("plant_copies: more copies than samples")
def _():
    from helpers import memorization

    return memorization.plant_copies(_rand(2, 1, 4, 4), _rand(6, 1, 4, 4), 5)


@case("plant_copies noise_std=nan")
def _():
    from helpers import memorization

    return memorization.plant_copies(
        _rand(2, 1, 4, 4), _rand(6, 1, 4, 4), 1, noise_std=float("nan")
    )


# ============================================================================================
# classifier, self_supervised, embedding_prior


def _cls(images=None, labels=None, **kw):
    from helpers import classifier

    x = _rand(4, 1, 8, 8) if images is None else images
    y = torch.tensor([0, 1, 0, 1]) if labels is None else labels
    kw.setdefault("epochs", 1)
    return classifier.train_classifier(x, y, device="cpu", **kw)


@case("train_classifier: float labels")
def _():
    return _cls(labels=torch.tensor([0.0, 1, 0, 1]))


@case("train_classifier epochs=0")
def _():
    return _cls(epochs=0)


@case("train_classifier: NaN image")
def _():
    return _cls(images=_nan(4, 1, 8, 8))


@case("train_classifier: uint8 images")
def _():
    return _cls(images=torch.zeros(4, 1, 8, 8, dtype=torch.uint8))


@case("train_classifier num_classes=0")
def _():
    return _cls(num_classes=0)


@case("train_classifier: negative label")
def _():
    return _cls(labels=torch.tensor([0, -1, 0, 1]))


@case("train_classifier: zero images")
def _():
    return _cls(images=torch.zeros(0, 1, 8, 8), labels=torch.zeros(0, dtype=torch.long))


@case("classifier.accuracy: label count differs")
def _():
    from helpers import classifier

    return classifier.accuracy(classifier.SmallCNN(1, 2), _rand(4, 1, 8, 8), torch.tensor([0, 1]))


@case("classifier.predict batch_size=0")
def _():
    from helpers import classifier

    return classifier.predict(classifier.SmallCNN(1, 2), _rand(4, 1, 8, 8), batch_size=0)


@case("self_supervised.embed: wrong channels")
def _():
    from helpers import self_supervised

    return self_supervised.embed(self_supervised.Encoder(3, 8, 8), _rand(2, 1, 8, 8))


@case("self_supervised.embed batch_size=0")
def _():
    from helpers import self_supervised

    return self_supervised.embed(self_supervised.Encoder(1, 8, 8), _rand(2, 1, 8, 8), batch_size=0)


@case("knn_accuracy k=0")
def _():
    from helpers import self_supervised

    x, y = _rand(4, 3), torch.tensor([0, 1, 0, 1])
    return self_supervised.knn_accuracy(x, y, x, y, k=0)


@case("SSLConfig(size=30)")
def _():
    from helpers import self_supervised

    return self_supervised.SSLConfig(size=30)


@case("info_nce temperature=0")
def _():
    from helpers import self_supervised

    return self_supervised.info_nce(_rand(4, 3), _rand(4, 3), temperature=0.0)


@case("load_encoder('nope')")
def _():
    from helpers import self_supervised

    return self_supervised.load_encoder("nope")


@case("embedding_prior.prompt_to_label: unknown prompt")
def _():
    from helpers import embedding_prior

    return embedding_prior.prompt_to_label("a photo of a cat")


# ============================================================================================
# checkpoint


@case("checkpoint.read: empty file")
def _():
    from helpers import checkpoint

    Path("e.safetensors").write_bytes(b"")
    return checkpoint.read("e.safetensors")


@case("checkpoint.read: garbage file")
def _():
    from helpers import checkpoint

    Path("g.safetensors").write_bytes(b"\xff" * 64)
    return checkpoint.read("g.safetensors")


@case("checkpoint.read: truncated file")
def _():
    from helpers import checkpoint

    path = _ckpt(torch.nn.Linear(30, 20))
    path.write_bytes(path.read_bytes()[:-100])
    return checkpoint.read(path)


@case("load_training_state: one flipped bit in the weights")
def _():
    from helpers import checkpoint

    path = _flip_byte(_ckpt(torch.nn.Linear(30, 20)), 40)
    return checkpoint.load_training_state(path, model=torch.nn.Linear(30, 20))


@case("load_training_state: one flipped bit in the RNG state")
def _():
    from helpers import checkpoint

    gen = torch.Generator().manual_seed(0)
    path = _ckpt(generators={"data": gen})
    data = bytearray(path.read_bytes())
    state = gen.get_state().numpy().tobytes()
    at = bytes(data).find(state[:64])
    data[at + 100] ^= 0x01
    path.write_bytes(bytes(data))
    return checkpoint.load_training_state(
        path, model=torch.nn.Linear(3, 2), generators={"data": torch.Generator()}
    )


class _Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(5, 4)
        self.out = torch.nn.Linear(4, 5, bias=False)
        self.out.weight = self.embed.weight  # tied, as in language models


@case(
    "save_training_state: tied weights save and reload equal",
    check=lambda pair: (
        torch.equal(pair[0].embed.weight, pair[1].embed.weight)
        and pair[1].out.weight is pair[1].embed.weight
    ),
)
def _():
    from helpers import checkpoint

    torch.manual_seed(0)
    a, b = _Tied(), _Tied()
    path = _ckpt(a)
    checkpoint.load_training_state(path, model=b)
    return a, b


@case("save_training_state: NaN weights")
def _():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    return _ckpt(net)


@case("load_training_state: checkpoint of another network")
def _():
    from helpers import checkpoint

    path = _ckpt(torch.nn.Linear(3, 2))
    return checkpoint.load_training_state(path, model=torch.nn.Linear(4, 2))


@case(
    "atomic_save: file mode follows the umask",
    check=lambda mode: mode == 0o666 & ~0o022,
)
def _():
    from helpers import checkpoint

    old = os.umask(0o022)
    try:
        path = checkpoint.atomic_save({"w": torch.ones(2)}, "m.safetensors")
    finally:
        os.umask(old)
    return path.stat().st_mode & 0o777


@case(
    "atomic_save: orphan temporary file of a killed save is cleaned",
    check=lambda names: names == ["m.safetensors"],
)
def _():
    from helpers import checkpoint

    # the name a save that was killed between creating and renaming its file leaves behind
    Path("m.safetensors.99999999.abc.tmp").write_bytes(b"half")
    os.utime("m.safetensors.99999999.abc.tmp", (0, 0))
    checkpoint.atomic_save({"w": torch.ones(2)}, "m.safetensors")
    return sorted(p.name for p in Path(".").iterdir())


@case("atomic_save: a value that is not a tensor")
def _():
    from helpers import checkpoint

    return checkpoint.atomic_save({"w": [1, 2]}, "m.safetensors")


# ============================================================================================
# runtime, plot, widgets, results, course


@case("runtime.setup profile='fast'")
def _():
    from helpers import runtime

    return runtime.setup("fast", verbose=False)


@case("runtime.setup seed='a'")
def _():
    from helpers import runtime

    return runtime.setup("smoke", seed="a", verbose=False)


@case("runtime.cache_path: stem with a slash")
def _():
    from helpers import runtime

    return runtime.cache_path("a/b")


@case("Presets.preset: unknown field")
def _():
    from helpers import dip

    return dip.DIPConfig.preset("smoke", colour=1)


@case("plot.image_grid: no images")
def _():
    from helpers import plot

    return plot.image_grid([])


@case("plot.image_grid ncols=0")
def _():
    from helpers import plot

    return plot.image_grid(_rand(3, 1, 4, 4), ncols=0)


@case("plot.image_grid: 1-D images")
def _():
    from helpers import plot

    return plot.image_grid([_rand(4)])


@case("plot.savefig: name with a folder")
def _():
    import matplotlib.pyplot as plt

    from helpers import plot

    return plot.savefig(plt.figure(), "../x")


@case("widgets.snapshot_slider max_static=0")
def _():
    from helpers import widgets

    return widgets.snapshot_slider(_rand(3, 1, 4, 4), static=True, display=False, max_static=0)


@case("run.record: key with spaces")
def _():
    from helpers import runtime

    run = runtime.setup("smoke", notebook="99_demo", verbose=False)
    return run.record("my key", 1.0, label="x")


@case(
    "site --out: a folder of the user's is never emptied",
    check=lambda kept: kept,
)
def _():
    from helpers.course import website

    mine = Path("mine")
    (mine / "src").mkdir(parents=True)
    (mine / "src" / "thesis.tex").write_text("months of work")
    try:
        website.assemble(mine)
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - the case is about what is left on disk
        pass
    return (mine / "src" / "thesis.tex").exists()


def _one_error_line(result) -> bool:
    code, err = result
    return code != 0 and err.count("\n") == 1 and err.startswith("error:") and "a-file" in err


@case("python -m helpers site --out <below a file>: one line naming it", check=_one_error_line)
def _():
    import contextlib

    from helpers.__main__ import main

    Path("a-file").write_text("x")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["site", "--out", "a-file/site"])
    return code, err.getvalue()


@case("python -m helpers run --out <below a file>: one line naming it", check=_one_error_line)
def _():
    import contextlib

    from helpers.__main__ import main

    Path("a-file").write_text("x")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "--profile", "smoke", "--only", "00", "--out", "a-file/build"])
    return code, err.getvalue()


# ============================================================================================


def run(verbose: bool = False) -> Counter:
    """Classify every case; print a line per case (``verbose``) and the counts."""
    import logging

    logging.disable(logging.CRITICAL)
    torch.set_num_threads(int(os.environ.get("COURSE_NUM_THREADS", "1")))
    counts: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["COURSE_BUILD_DIR"] = str(Path(tmp) / "build")
        os.environ["COURSE_CACHE_DIR"] = str(Path(tmp) / "cache")
        for c in CASES:
            os.environ["COURSE_CACHE_DIR"] = str(Path(tmp) / "cache")
            outcome, detail = classify(c)
            counts[outcome] += 1
            if verbose:
                print(f"{outcome:>8}  {c.name}  {detail}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args(argv)
    counts = run(args.verbose)
    total = sum(counts.values())
    print(
        f"{total} bad inputs tried: {counts['clear']} clear errors, {counts['correct']} correct "
        f"results, {counts['cryptic']} cryptic errors, {counts['silent']} silently wrong"
    )
    return 0 if not (counts["cryptic"] or counts["silent"]) else 1


if __name__ == "__main__":
    sys.exit(main())
