"""The gpu profile checked on a CPU: every preset under ``COURSE_STEP_SCALE``, every gpu network
built at its gpu size and stepped once, its memory estimated against the cards, and every
network run under CPU bf16 autocast."""

import math
import re
from dataclasses import fields

import pytest
import torch

from helpers import attention_cost, dip, gan, ood, radiomics, runtime, self_supervised, svnr, vit  # noqa: F401

# importing these defines every Presets subclass of the kit
from helpers.course import (
    experiments,  # noqa: F401
    gpu_shapes,
)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


PRESETS = sorted({c for c in _subclasses(runtime.Presets) if c.__module__.startswith("helpers.")},
                 key=lambda c: c.__name__)  # fmt: skip
COUNT = re.compile(r"(^|_)(steps|epochs|iters|iterations|repeats|warmup)($|_)|^iters_")
STAGES = re.compile(r"(^|_)stages$")  # increasing step counts at which a run is evaluated
NOT_COUNTS = {("DDPMConfig", "ddim_steps")}  # a tuple of sampler lengths compared, kept as is


def test_step_scale_reads_the_environment():
    assert runtime.step_scale({}) == 1.0
    assert runtime.step_scale({"COURSE_STEP_SCALE": "0.01"}) == 0.01
    for bad in ("0", "-1", "2", "x"):
        with pytest.raises(ValueError, match="COURSE_STEP_SCALE must be a number in"):
            runtime.step_scale({"COURSE_STEP_SCALE": bad})
    assert runtime.scaled_steps(8000, 0.001) == 8
    assert runtime.scaled_steps(300, 0.001) == runtime.STEP_FLOOR
    assert runtime.scaled_steps(1, 0.001) == 1  # never more than the preset asked for


def test_every_preset_class_lists_its_iteration_counts():
    assert len(PRESETS) >= 14
    for cls in PRESETS:
        names = {f.name for f in fields(cls)}
        assert set(cls.STEP_FIELDS) <= names, cls.__name__
        gpu = cls.presets()["gpu"]
        counts = {
            n for n in names
            if (COUNT.search(n) or STAGES.search(n)) and isinstance(getattr(gpu, n), int | tuple)
            and (cls.__name__, n) not in NOT_COUNTS
        }  # fmt: skip
        assert counts == set(cls.STEP_FIELDS), (cls.__name__, counts, cls.STEP_FIELDS)


@pytest.mark.parametrize("profile", runtime.PROFILES)
def test_scaled_presets_keep_every_size_and_validate(monkeypatch, profile):
    for cls in PRESETS:
        full = cls.preset(profile)
        monkeypatch.setenv("COURSE_STEP_SCALE", "0.001")
        scaled = cls.preset(profile)  # validated again by the dataclass
        for f in fields(cls):
            a, b = getattr(full, f.name), getattr(scaled, f.name)
            if f.name in cls.STEP_FIELDS and isinstance(a, tuple):  # stages: scaled, increasing
                assert len(a) == len(b) and all(x < y for x, y in zip(b, b[1:], strict=False)), (
                    f.name,
                    b,
                )
                for i, (x, y) in enumerate(zip(a, b, strict=True)):
                    assert (
                        min(x, runtime.STEP_FLOOR)
                        <= y
                        <= max(runtime.STEP_FLOOR, math.ceil(x * 0.001)) + i
                    )
            elif f.name in cls.STEP_FIELDS:
                assert (
                    min(a, runtime.STEP_FLOOR) <= b <= max(runtime.STEP_FLOOR, math.ceil(a * 0.001))
                )
            else:
                assert a == b, (cls.__name__, f.name)
        if cls.STEP_FIELDS:  # an explicit override is taken as it is
            name = cls.STEP_FIELDS[0]
            value = (7, 9) if isinstance(getattr(full, name), tuple) else 7
            assert getattr(cls.preset(profile, **{name: value}), name) == value
        monkeypatch.delenv("COURSE_STEP_SCALE")
        assert cls.preset(profile) == full


GPU = gpu_shapes.configurations("gpu")


@pytest.mark.parametrize("config", GPU, ids=[c.name for c in GPU])
def test_every_gpu_network_is_built_stepped_and_fits_an_80_gb_card(config):
    torch.manual_seed(0)
    estimate = gpu_shapes.estimate(config)  # built at its gpu size, one AdamW step on 2 examples
    assert estimate.finite
    assert estimate.parameters > 0 and estimate.activation_bytes_per_example > 0
    assert estimate.fits(80), gpu_shapes.table([estimate])


def test_memory_table_names_the_cards():
    smoke = gpu_shapes.configurations("smoke")
    text = gpu_shapes.table([gpu_shapes.estimate(smoke[1])])
    assert "16GB" in text and "80GB" in text and "02 ViT (digits)" in text
    with pytest.raises(ValueError, match="batch must be a positive int"):
        gpu_shapes.estimate(smoke[1], batch=0)


SMOKE = gpu_shapes.configurations("smoke")


@pytest.mark.parametrize("config", SMOKE, ids=[c.name for c in SMOKE])
def test_every_network_trains_a_step_under_cpu_bf16_autocast(config):
    torch.manual_seed(0)
    net = config.build().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(*config.inputs(2))
    out = out[0] if isinstance(out, tuple) else out
    assert torch.isfinite(out.float()).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]  # a head may sit unused
    assert grads and all(torch.isfinite(g).all() for g in grads)
