"""Bad input gets a clear error naming the value and the expectation, or a correct result.

Two sweeps over the public functions the notebooks use:

* the catalogue of ``tests/bad_inputs.py`` (integer and half tensors, NaN, empty and wrong-rank
  tensors, zero and negative sizes, unknown strings, damaged files, shared folders …): every case
  must end ``clear`` or ``correct``, never ``cryptic`` or ``silent``;
* property-based (hypothesis): each function is called with its tensor argument corrupted (a
  wrong dtype, a NaN or Inf at a random place, an empty or a wrong-rank tensor), with its size
  arguments at zero, negative or non-integer values, and with unknown strings; it must raise a
  ``ValueError`` or ``TypeError`` from the kit's own code, or return a result that is right.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from bad_inputs import CASES, classify
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import (
    attention,
    classifier,
    datasets,
    degradations,
    diffusion,
    diffusion_training,
    dip,
    large_image,
    memorization,
    metrics,
    plot,
    self_supervised,
    tiling,
    unet,
    vit,
    widgets,
)

SWEEP = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_catalogue_case_is_clear_or_correct(case):
    outcome, detail = classify(case)
    assert outcome in ("clear", "correct"), f"{outcome}: {detail}"


def _clear(err: BaseException) -> bool:
    """A ValueError/TypeError with a message, raised by the kit's own code."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = bool(frames) and f"{os.sep}helpers{os.sep}" in frames[-1].filename
    return isinstance(err, ValueError | TypeError) and bool(str(err)) and ours


def _expect_clear_or(accept: Callable[[object], bool] | None, call: Callable[[], object]):
    try:
        result = call()
    except Exception as err:  # noqa: BLE001 - the sweep checks what was raised
        assert _clear(err), f"cryptic: {type(err).__name__}: {err}"
        return
    assert accept is not None and accept(result), f"silently returned {result!r:.200}"


# --------------------------------------------------------------------------------------------
# tensors: each function with one tensor argument corrupted


@st.composite
def corrupted(draw, base: torch.Tensor):
    """``(kind, tensor)``: ``base`` with a wrong dtype, a NaN/Inf, no elements, or another rank."""
    kind = draw(st.sampled_from(["dtype", "nonfinite", "empty", "rank"]))
    if kind == "dtype":
        dtype = draw(st.sampled_from([torch.uint8, torch.int64, torch.bool, torch.complex64]))
        return kind, (base * 200).to(dtype) if dtype != torch.bool else base > 0.5
    if kind == "nonfinite":
        x = base.clone()
        x.view(-1)[draw(st.integers(0, base.numel() - 1))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf])
        )
        return kind, x
    if kind == "empty":
        return kind, base.narrow(draw(st.integers(0, base.ndim - 1)), 0, 0)
    return kind, (base[0] if draw(st.booleans()) else base[None])


def _g(*shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def _tiny_unet(**kw):
    return unet.UNet(1, base_channels=8, channel_mults=(1, 2), attn_resolutions=(), seed=0, **kw)


def _finite(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point() and bool(torch.isfinite(x).all())


def _matches(m) -> bool:  # integer images are numbers: a search over them is a correct result
    return bool(torch.isfinite(m.values).all()) and m.indices.dtype == torch.long


def _nan_where_nan(kind: str, r) -> bool:
    return kind == "nonfinite" and bool((~torch.isfinite(r)).any())


@dataclass
class TensorSpec:
    name: str
    base: Callable[[], torch.Tensor]
    call: Callable[[torch.Tensor], object]
    accept: Callable[[str, object], bool] | None = None  # (kind, result) → a right result?


_S = diffusion.Schedule.make("linear", T=20)
_ENC = self_supervised.Encoder(1, 4, 4, seed=0)

TENSOR_SPECS = [
    TensorSpec("metrics.psnr image", lambda: _g(8, 8), lambda x: metrics.psnr(_g(8, 8), x)),
    TensorSpec(
        "metrics.ssim reference", lambda: _g(1, 8, 8), lambda x: metrics.ssim(x, _g(1, 8, 8))
    ),
    TensorSpec(
        "metrics.frechet_distance",
        lambda: _g(6, 3),
        lambda x: metrics.frechet_distance(x, _g(6, 3)),
        # integer and boolean features are numbers: a Fréchet distance of them is right
        lambda kind, r: kind == "dtype" and isinstance(r, float) and r >= 0,
    ),
    TensorSpec(
        "metrics.auroc scores",
        lambda: _g(4),
        lambda x: metrics.auroc(torch.tensor([0, 1, 0, 1]), x),
        # bool and integer scores rank like numbers: a correct AUROC; (1, 4) scores are 4 scores
        lambda kind, r: (
            (kind == "dtype" and isinstance(r, float) and 0 <= r <= 1)
            or (kind == "rank" and r == metrics.auroc([0, 1, 0, 1], _g(4)))
        ),
    ),
    TensorSpec(
        "diffusion.q_sample x0",
        lambda: _g(2, 1, 4, 4),
        lambda x: diffusion.q_sample(x, 3, _g(2, 1, 4, 4), _S),
        _nan_where_nan,  # a formula: NaN in gives NaN out where it was; the loops check
    ),
    TensorSpec(
        "diffusion.ddim_step eps",
        lambda: _g(2, 1, 4, 4),
        lambda x: diffusion.ddim_step(x, 5, 2, _g(2, 1, 4, 4), _S),
        _nan_where_nan,
    ),
    TensorSpec(
        "diffusion.ddpm_step x_t",
        lambda: _g(2, 1, 4, 4),
        lambda x: diffusion.ddpm_step(_g(2, 1, 4, 4), 5, x, _S, noise=_g(2, 1, 4, 4)),
        _nan_where_nan,
    ),
    TensorSpec(
        "diffusion.to_signed",
        lambda: _g(1, 1, 2, 2),
        diffusion.to_signed,
        # elementwise: an empty or reshaped float tensor maps correctly; NaN stays NaN
        lambda kind, r: kind in ("empty", "rank", "nonfinite") and r.is_floating_point(),
    ),
    TensorSpec(
        "UNet forward x",
        lambda: _g(2, 1, 8, 8),
        lambda x: _tiny_unet()(x, torch.tensor([1, 2])),
        lambda kind, r: kind == "nonfinite",
    ),  # fmt: skip  (NaN in, NaN out: a forward pass)
    TensorSpec(
        "SkipNet forward z",
        lambda: _g(1, 4, 16, 16),
        lambda x: dip.SkipNet(4, 1, scales=2, channels=4, seed=0)(x),
        lambda kind, r: kind == "nonfinite" or (kind == "empty" and r.shape == (0, 1, 16, 16)),
    ),
    TensorSpec(
        "PatchEmbed forward",
        lambda: _g(2, 1, 8, 8),
        lambda x: vit.PatchEmbed(8, 4, 1, 8)(x),
        lambda kind, r: kind == "nonfinite" or (kind == "empty" and r.shape == (0, 4, 8)),
    ),
    TensorSpec(
        "vit.patchify",
        lambda: _g(2, 1, 8, 8),
        lambda x: vit.patchify(x, 4),
        lambda kind, r: kind in ("dtype", "nonfinite", "empty") and r.ndim == 3,
    ),
    TensorSpec(
        "dip.fit target",
        lambda: _g(1, 1, 16, 16),
        lambda x: dip.fit(
            dip.SkipNet(4, 1, scales=2, channels=4, seed=0),
            dip.make_input(4, 16),
            x,
            iterations=1,
            progress=False,
        ),
    ),
    TensorSpec(
        "diffusion_training.train images",
        lambda: _g(4, 1, 8, 8) * 2 - 1,
        lambda x: diffusion_training.train(
            _tiny_unet(), x, schedule=_S, steps=1, batch_size=2, progress=False
        ),
    ),
    TensorSpec(
        "classifier.train_classifier images",
        lambda: _g(4, 1, 8, 8),
        lambda x: classifier.train_classifier(
            x, torch.tensor([0, 1, 0, 1]), epochs=1, device="cpu"
        ),
    ),
    TensorSpec(
        "memorization.max_correlation training",
        lambda: _g(6, 1, 4, 4),
        lambda x: memorization.max_correlation(_g(2, 1, 4, 4), x),
        lambda kind, r: kind == "dtype" and _matches(r),
    ),
    TensorSpec(
        "memorization.min_tiled_l2 generated",
        lambda: _g(2, 1, 4, 4),
        lambda x: memorization.min_tiled_l2(x, _g(6, 1, 4, 4), grid=2),
        lambda kind, r: kind == "dtype" and _matches(r),
    ),
    TensorSpec(
        "memorization.max_cosine",
        lambda: _g(5, 3),
        lambda x: memorization.max_cosine(x, _g(6, 3)),
        lambda kind, r: kind == "dtype" and _matches(r),
    ),
    TensorSpec(
        "large_image.seam_ratio", lambda: _g(1, 8, 8), lambda x: large_image.seam_ratio(x, 4)
    ),
    TensorSpec(
        "degradations.add_noise",
        lambda: _g(1, 1, 4, 4),
        lambda x: degradations.add_noise(x, 0.1),
        lambda kind, r: kind in ("empty", "rank", "nonfinite") and r.is_floating_point(),
    ),
    TensorSpec(
        "LanczosDownsampler forward",
        lambda: _g(1, 1, 8, 8),
        lambda x: degradations.LanczosDownsampler(2, channels=1)(x),
        # NaN in, NaN out (a filter); an empty batch gives an empty batch
        lambda kind, r: kind == "nonfinite" or (kind == "empty" and r.shape == (0, 1, 4, 4)),
    ),
    TensorSpec(
        "attention.attention q",
        lambda: _g(1, 1, 4, 8),
        lambda x: attention.attention(x, _g(1, 1, 4, 8), _g(1, 1, 4, 8)),
        # no queries (or no batch): no outputs
        lambda kind, r: kind == "nonfinite" or (kind == "empty" and r.numel() == 0),
    ),
    TensorSpec(
        "attention.dilated_attention",
        lambda: _g(1, 2, 8, 4),
        lambda x: attention.dilated_attention(x, x, x, [4], [1]),
        lambda kind, r: kind in ("nonfinite", "empty") and r.shape[-1] == 4,
    ),
    TensorSpec(
        "self_supervised.embed images",
        lambda: _g(3, 1, 8, 8),
        lambda x: self_supervised.embed(_ENC, x),
        lambda kind, r: kind == "nonfinite",
    ),
    TensorSpec(
        "plot.image_grid",
        lambda: _g(2, 1, 4, 4),
        lambda x: plot.image_grid(x),
        lambda kind, r: kind in ("dtype", "nonfinite", "rank"),
    ),
]


@pytest.mark.parametrize("spec", TENSOR_SPECS, ids=lambda s: s.name)
@SWEEP
@given(data=st.data())
def test_corrupted_tensors_get_a_clear_error_or_a_right_result(spec, data):
    kind, x = data.draw(corrupted(spec.base()))
    accept = (lambda r: spec.accept(kind, r)) if spec.accept else None
    _expect_clear_or(accept, lambda: spec.call(x))


# --------------------------------------------------------------------------------------------
# sizes: zero, negative, non-integer; and unknown strings


BAD_SIZES = st.one_of(
    st.integers(max_value=0), st.floats(allow_nan=True), st.booleans(), st.just("3")
)

SIZE_SPECS: dict[str, Callable[[object], object]] = {
    "datasets.load n": lambda v: datasets.load("digits", n=v, size=8),
    "datasets.load size": lambda v: datasets.load("digits", n=2, size=v),
    "ddim_timesteps steps": lambda v: diffusion.ddim_timesteps(20, v),
    "Schedule.make T": lambda v: diffusion.Schedule.make("linear", T=v),
    "sample steps": lambda v: diffusion.sample(_tiny_unet(), (1, 1, 8, 8), schedule=_S, steps=v),
    "sample_large stride": lambda v: large_image.sample_large(
        _tiny_unet(cond_dim=3), _g(2, 2, 3), schedule=_S, patch=8, channels=1, steps=1, stride=v
    ),
    "sample_large window_batch": lambda v: large_image.sample_large(
        _tiny_unet(cond_dim=3),
        _g(2, 2, 3),
        schedule=_S,
        patch=8,
        channels=1,
        steps=1,
        window_batch=v,
    ),
    "window_positions stride": lambda v: large_image.window_positions(16, 16, window=8, stride=v),
    "make_input channels": lambda v: dip.make_input(v, (8, 8)),
    "lanczos_kernel factor": lambda v: degradations.lanczos_kernel(v),
    "UNet base_channels": lambda v: unet.UNet(1, base_channels=v),
    "patchify patch_size": lambda v: vit.patchify(_g(1, 1, 8, 8), v),
    "max_correlation batch_size": lambda v: memorization.max_correlation(
        _g(2, 1, 4, 4), _g(4, 1, 4, 4), batch_size=v
    ),
    "min_tiled_l2 grid": lambda v: memorization.min_tiled_l2(
        _g(2, 1, 4, 4), _g(4, 1, 4, 4), grid=v
    ),
    "tile_coords tile_size": lambda v: tiling.tile_coords(16, 16, v),
    "classifier.predict batch_size": lambda v: classifier.predict(
        classifier.SmallCNN(1, 2), _g(2, 1, 8, 8), batch_size=v
    ),
    "plot.image_grid ncols": lambda v: plot.image_grid(_g(2, 1, 4, 4), ncols=v),
    "snapshot_slider max_static": lambda v: widgets.snapshot_slider(
        _g(2, 1, 4, 4), static=True, display=False, max_static=v
    ),
    "train steps": lambda v: diffusion_training.train(
        _tiny_unet(), _g(2, 1, 8, 8), schedule=_S, steps=v, batch_size=2, progress=False
    ),
    "train batch_size": lambda v: diffusion_training.train(
        _tiny_unet(), _g(2, 1, 8, 8), schedule=_S, steps=1, batch_size=v, progress=False
    ),
    "dip.fit iterations": lambda v: dip.fit(
        dip.SkipNet(4, 1, scales=2, channels=4, seed=0),
        dip.make_input(4, 16),
        _g(1, 1, 16, 16),
        iterations=v,
        progress=False,
    ),
}


@pytest.mark.parametrize("name", sorted(SIZE_SPECS))
@SWEEP
@given(value=BAD_SIZES)
def test_bad_sizes_get_a_clear_error(name, value):
    _expect_clear_or(None, lambda: SIZE_SPECS[name](value))


STRING_SPECS: dict[str, tuple[Callable[[str], object], tuple[str, ...]]] = {
    "datasets.load name": (lambda s: datasets.load(s, n=2, size=8), tuple(datasets.available())),
    "histology region": (
        lambda s: datasets.load("histology", n=2, size=8, region=s),
        ("all", "train", "test"),
    ),
    "Schedule.make kind": (lambda s: diffusion.Schedule.make(s, T=10), ("linear", "cosine")),
    "sample sampler": (
        lambda s: diffusion.sample(_tiny_unet(), (1, 1, 8, 8), schedule=_S, steps=2, sampler=s),
        ("ddim", "ddpm"),
    ),
    "ddim_timesteps spacing": (
        lambda s: diffusion.ddim_timesteps(20, 4, spacing=s),
        ("leading", "trailing"),
    ),
    "ddpm_step variance": (
        lambda s: diffusion.ddpm_step(_g(1, 1, 4, 4), 3, _g(1, 1, 4, 4), _S, variance=s),
        ("posterior", "beta"),
    ),
    "dip.fit task": (
        lambda s: dip.fit(
            dip.SkipNet(4, 1, scales=2, channels=4, seed=0),
            dip.make_input(4, 16),
            _g(1, 1, 16, 16),
            task=s,
            iterations=1,
            progress=False,
        ),
        ("denoise",),
    ),
    "make_input kind": (lambda s: dip.make_input(4, (8, 8), kind=s), ("noise", "meshgrid")),
    "UNet cond_mode": (lambda s: unet.UNet(1, cond_dim=3, cond_mode=s), unet.COND_MODES),
    "make_model kind": (lambda s: unet.make_model(s), ("unet", "diffusers")),
    "train lr_schedule": (
        lambda s: diffusion_training.train(
            _tiny_unet(),
            _g(2, 1, 8, 8),
            schedule=_S,
            steps=1,
            batch_size=2,
            lr_schedule=s,
            progress=False,
        ),
        ("cosine", "constant"),
    ),
    "ViTConfig pos_embed": (lambda s: vit.ViTConfig(pos_embed=s), ("learned", "sincos")),
    "runtime profile": (
        lambda s: __import__("helpers.runtime").runtime.resolve_profile(s),
        ("auto", "smoke", "laptop", "gpu"),
    ),
}


@pytest.mark.parametrize("name", sorted(STRING_SPECS))
@SWEEP
@given(text=st.text(max_size=8))
def test_unknown_strings_get_a_clear_error(name, text):
    call, valid = STRING_SPECS[name]
    if text.strip().lower() in valid or text in valid:
        return  # a valid choice, not a bad input
    _expect_clear_or(None, lambda: call(text))
