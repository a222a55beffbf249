"""Checkers for the exercises of notebook 01 (Deep Image Prior).

Each checker derives what it compares against from the package (the noise model, the Lanczos
downsampler, the skip network), never from a stored literal.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .feedback import Exercise, Feedback, close


def _ex01_1(answer: Any) -> Feedback:
    sigma = 50 / 255
    expected = -10 * math.log10(sigma**2)  # PSNR = 10·log10(1 / MSE), MSE = σ² in expectation
    return close(answer, expected, rel=5e-3, what="PSNR")


def _ex01_2(answer: Any) -> Feedback:
    from ..degradations import add_noise

    clean = torch.full((1, 1, 512, 512), 0.5)
    noisy = add_noise(clean, 50 / 255, generator=torch.Generator().manual_seed(0))
    expected = float(((clean - noisy) ** 2).mean())  # ≈ σ², measured on a large image
    return close(answer, expected, rel=0.03, what="loss")


def _ex01_3(answer: Any) -> Feedback:
    from ..degradations import LanczosDownsampler

    expected = LanczosDownsampler(4, channels=1)(torch.zeros(1, 1, 128, 128)).numel()
    return close(answer, expected, rel=0, abs_tol=0.5, what="number of pixels")


def _ex01_4(answer: Any) -> Feedback:
    from ..dip import SkipNet

    expected = 0
    for scales in range(1, 9):  # the deepest network whose output keeps the input's size
        net = SkipNet(2, 1, scales=scales, channels=4, skip_channels=1, seed=0)
        try:
            with torch.no_grad():
                ok = net(torch.zeros(1, 2, 96, 96)).shape[-2:] == (96, 96)
        except (RuntimeError, ValueError):
            ok = False
        if ok:
            expected = scales
    return close(answer, expected, rel=0, abs_tol=0.5, what="number of scales")


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "01", 1, "PSNR (dB) of an image with Gaussian noise σ = 50/255 added, not clipped?", _ex01_1
    ),
    Exercise(
        "01",
        2,
        "The stopping rule at σ = 50/255: at what mean squared loss ‖x − x₀‖² does it stop?",
        _ex01_2,
    ),
    Exercise(
        "01",
        3,
        "×4 super-resolution of a 128×128 grey image: how many pixels does the data term compare?",
        _ex01_3,
    ),
    Exercise(
        "01", 4, "At most how many scales can the skip network have for a 96×96 image?", _ex01_4
    ),
)
"""The exercises of notebook 01, in order."""
