"""Tests of helpers.validation: every check names the value received and the one expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import validation


def test_check_int_refuses_bools_floats_and_out_of_range_and_keeps_none_apart():
    assert validation.check_int(3, "steps") == 3
    assert validation.check_int(np.int64(4), "steps") == 4
    assert validation.check_int(None, "n", none_ok=True) is None
    with pytest.raises(TypeError, match=r"steps must be an int, got bool True"):
        validation.check_int(True, "steps")
    with pytest.raises(TypeError, match=r"steps must be an int, got float 2.0"):
        validation.check_int(2.0, "steps")
    with pytest.raises(ValueError, match=r"steps must be a positive int, got 0"):
        validation.check_int(0, "steps")
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 5\], got 6"):
        validation.check_int(6, "k", minimum=1, maximum=5)
    with pytest.raises(TypeError, match="or None"):
        validation.check_int("3", "n", none_ok=True)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5])
def test_check_number_refuses_nan_inf_and_out_of_range(bad):
    with pytest.raises(ValueError, match="ema"):
        validation.check_number(bad, "ema", low=0, high=1, high_open=True)


def test_check_number_bounds_open_and_closed():
    assert validation.check_number(0, "x", low=0) == 0.0
    with pytest.raises(ValueError, match=r"lr must be > 0, got 0.0"):
        validation.check_number(0.0, "lr", low=0, low_open=True)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        validation.check_number(1.0, "ema", low=0, high=1, high_open=True)
    with pytest.raises(TypeError, match="number"):
        validation.check_number(True, "lr")
    assert validation.check_number(torch.tensor(0.5), "x") == 0.5


def test_check_choice_lists_the_choices():
    assert validation.check_choice("ddim", "sampler", ("ddim", "ddpm")) == "ddim"
    with pytest.raises(ValueError, match=r"sampler must be one of 'ddim', 'ddpm', got 'euler'"):
        validation.check_choice("euler", "sampler", ("ddim", "ddpm"))
    with pytest.raises(TypeError, match="int 3"):
        validation.check_choice(3, "sampler", ("ddim", "ddpm"))


def test_check_finite_names_count_and_first_index():
    x = torch.zeros(2, 3)
    x[1, 2] = float("nan")
    x[0, 1] = float("inf")
    with pytest.raises(ValueError, match=r"images holds 2 non-finite value\(s\).*\(0, 1\)"):
        validation.check_finite(x, "images")
    a = np.zeros(4)
    a[3] = np.nan
    with pytest.raises(ValueError, match=r"index \(3,\)"):
        validation.check_finite(a, "features")
    validation.check_finite(torch.zeros(3, dtype=torch.uint8), "ints")  # nothing to check


def test_check_tensor_kind_rank_dtype_emptiness():
    x = torch.rand(2, 3)
    assert validation.check_tensor(x, "x", ndim=2, floating=True, finite=True) is x
    with pytest.raises(TypeError, match="ndarray"):
        validation.check_tensor(np.zeros(3), "x")
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\), got \(2, 3\)"):
        validation.check_tensor(x, "x", ndim=4, layout="(N, C, H, W)")
    with pytest.raises(ValueError, match="empty"):
        validation.check_tensor(torch.zeros(0, 3), "x", nonempty=True)
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype torch.uint8"):
        validation.check_tensor(torch.zeros(3, dtype=torch.uint8), "x", floating=True)


def test_check_input_dtype_says_how_to_convert():
    net = torch.nn.Linear(3, 2)
    validation.check_input_dtype(net, torch.rand(1, 3))
    with pytest.raises(TypeError, match=r"x.float\(\) / 255"):
        validation.check_input_dtype(net, torch.zeros(1, 3, dtype=torch.uint8))
    with pytest.raises(
        TypeError, match=r"torch.float16 but the network's weights are torch.float32"
    ):
        validation.check_input_dtype(net, torch.rand(1, 3).half())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # under autocast any float input is fine
        validation.check_input_dtype(net.bfloat16(), torch.rand(1, 3))


def test_seed_and_device():
    assert validation.check_seed(-3) == -3
    with pytest.raises(TypeError, match="seed must be an int"):
        validation.check_seed("a")
    assert validation.as_device(None) is None
    assert validation.as_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'nope' is not a device"):
        validation.as_device("nope")
