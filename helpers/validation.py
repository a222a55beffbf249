"""Checks of user input that the modules share, each raising an error that names the value.

The rule of the kit: bad input gets a ``ValueError`` or ``TypeError`` whose message names what was
received and what was expected; nothing wrong is returned silently; ``0`` and ``None`` are never
the same thing. These checks are called where an argument enters a public function:

* :func:`check_int`, :func:`check_number`, :func:`check_choice`, :func:`check_seed` — options;
* :func:`check_tensor`, :func:`check_finite`, :func:`check_floating` — tensors and arrays (kind,
  rank, dtype, emptiness, NaN/Inf);
* :func:`check_input_dtype` — the input of a network has the network's floating dtype;
* :func:`as_device` — a device name or ``None``.

Examples
--------
>>> from helpers import validation
>>> validation.check_int(3, "steps")
3
>>> validation.check_int(0, "steps")
Traceback (most recent call last):
...
ValueError: steps must be a positive int, got 0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_device",
    "check_choice",
    "check_finite",
    "check_floating",
    "check_input_dtype",
    "check_int",
    "check_number",
    "check_seed",
    "check_tensor",
]


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = 1,
    maximum: int | None = None,
    none_ok: bool = False,
) -> int | None:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (bools and floats are refused).

    Parameters
    ----------
    value : int
        The argument (NumPy integers are accepted).
    name : str
        Its name, for the message.
    minimum, maximum : int, optional
        Inclusive bounds (``None``: unbounded on that side).
    none_ok : bool
        Let ``None`` through unchanged (``None`` means "the default", never ``0``).

    Raises
    ------
    TypeError
        Not an integer (``True``, ``2.0`` and ``"3"`` are not).
    ValueError
        Out of range.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        expected = "an int" + (" or None" if none_ok else "")
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        what = (
            "a positive int"
            if (minimum, maximum) == (1, None)
            else f"an int {_bounds(minimum, maximum)}"
        )
        raise ValueError(f"{name} must be {what}, got {value}")
    return value


def _bounds(low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '≥'} {low}"
    if high is not None:
        return f"{'<' if high_open else '≤'} {high}"
    return ""


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    none_ok: bool = False,
) -> float | None:
    """``value`` as a finite ``float`` within the bounds (``*_open``: the bound itself excluded).

    Raises
    ------
    TypeError
        Not a real number (bools are refused).
    ValueError
        NaN, infinite, or out of range.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        expected = "a number" + (" or None" if none_ok else "")
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    value = float(value)
    where = _bounds(low, high, low_open, high_open)
    if not math.isfinite(value):
        raise ValueError(
            f"{name} must be a finite number{' ' + where if where else ''}, got {value}"
        )
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be {where}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``, else a ``ValueError`` (``TypeError`` for a non-string)
    listing them."""
    listed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {listed}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed: any ``int`` (NumPy integers included; not a bool, a float or a string)."""
    return check_int(seed, name, minimum=None)  # type: ignore[return-value]


def as_device(device: str | torch.device | None, name: str = "device") -> torch.device | None:
    """``None``, or ``device`` as a ``torch.device`` (a clear ``ValueError`` for an unknown name)."""
    if device is None or isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(
            f"{name} must be a string such as 'cpu' or 'cuda', a torch.device or None, "
            f"got {type(device).__name__}"
        )
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"{name} {device!r} is not a device; expected 'cpu', 'cuda', 'cuda:0', 'mps' …"
        ) from err


def _kind(x: Any) -> str:
    return type(x).__name__ if not hasattr(x, "shape") else f"{type(x).__name__} {tuple(x.shape)}"


def check_finite(x: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise a ``ValueError`` naming how many values of ``x`` are NaN or infinite, and where."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.inexact):
            return
        bad = ~np.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or Inf), the first at "
                f"index {first}; remove or replace them"
            )
        return
    if not (x.is_floating_point() or x.is_complex()):
        return
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or Inf), the first at "
            f"index {first}; remove or replace them"
        )


def check_floating(x: torch.Tensor, name: str, hint: str = "") -> None:
    """Raise a ``TypeError`` unless ``x`` is a floating-point tensor (``hint``: how to convert)."""
    if not x.is_floating_point():
        how = hint or f"convert it, e.g. {name}.float() (and scale integers to the expected range)"
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; {how}")


def check_tensor(
    x: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    floating: bool = False,
    finite: bool = False,
    nonempty: bool = False,
    layout: str = "",
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the right rank (and dtype, values, size); return it.

    Parameters
    ----------
    x : Tensor
    name : str
        Its name, for the message.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    floating : bool
        Require a floating-point dtype (integers must be converted by the caller, who knows
        their range).
    finite : bool
        Refuse NaN and Inf (:func:`check_finite`).
    nonempty : bool
        Refuse a tensor with no elements (or no rows).
    layout : str
        How the expected shape reads, e.g. ``"(N, C, H, W)"``, for the message.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {layout}".rstrip() + f", got {_kind(x)}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and x.ndim not in allowed:
        want = layout or " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if nonempty and (x.numel() == 0 or (x.ndim and x.shape[0] == 0)):
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); need at least one element")
    if floating:
        check_floating(x, name)
    if finite:
        check_finite(x, name)
    return x


def check_input_dtype(module: torch.nn.Module, x: torch.Tensor, name: str = "x") -> None:
    """Raise a ``TypeError`` unless ``x`` has the floating dtype of ``module``'s weights.

    Integer images must be scaled by the caller (``x.float() / 255``); a network in another
    precision takes inputs in its own (``x.to(torch.bfloat16)``), or runs under ``torch.autocast``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    weight = next((p for p in module.parameters() if p.is_floating_point()), None)
    want = weight.dtype if weight is not None else None
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert integer images "
            f"with {name}.float() / 255 (or to the range the network was trained on)"
        )
    if want is not None and x.dtype != want and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"{name} has dtype {x.dtype} but the network's weights are {want}; pass "
            f"{name}.to({want}) or convert the network with .to({x.dtype})"
        )
