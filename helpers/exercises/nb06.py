"""Checkers for the exercises of notebook 06 (latent diffusion and text-to-image).

Each checker computes what it compares against from the package (the autoencoder's geometry, the
scale factor, the spacetime token count, the attention cost), never from a stored literal.
"""

from __future__ import annotations

from typing import Any

import torch

from .feedback import Exercise, Feedback, close


def _ex06_1(answer: Any) -> Feedback:
    from ..latent import AutoencoderConfig

    sd = AutoencoderConfig(size=512, channels=(128, 256, 512, 512))  # f = 8, 4 latent channels
    return close(answer, sd.compression(3), rel=1e-3, what="compression factor")


def _ex06_2(answer: Any) -> Feedback:
    from ..latent import scale_factor

    z = torch.tensor([-1.0, 1.0]) * 3.2 / torch.tensor([-1.0, 1.0]).std()  # std exactly 3.2
    return close(answer, scale_factor(z), rel=2e-3, what="scale factor")


def _ex06_3(answer: Any) -> Feedback:
    from ..diffusion import classifier_free_guidance

    # diffusers: ε_u + s (ε_c − ε_u); with ε_c = 1, ε_u = 0 it is s, the kit's formula gives 1 + w
    expected = float(classifier_free_guidance(torch.ones(1), torch.zeros(1), 6.5))
    return close(answer, expected, rel=1e-3, what="guidance_scale")


def _ex06_4(answer: Any) -> Feedback:
    from ..spacetime import token_count

    return close(
        answer, token_count((16, 256, 256), (2, 16, 16)), rel=0, abs_tol=0.5, what="token count"
    )


def _ex06_5(answer: Any) -> Feedback:
    from ..spacetime import attention_flops, token_count

    n1, n2 = token_count((8, 64, 64), (2, 8, 8)), token_count((16, 128, 128), (2, 8, 8))
    expected = attention_flops(n2, 64) / attention_flops(n1, 64)
    return close(answer, expected, rel=1e-3, what="growth factor")


EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        "06",
        1,
        "By what factor does Stable Diffusion v1's autoencoder (512² RGB → 4×64×64) reduce the number of values?",
        _ex06_1,
    ),
    Exercise(
        "06",
        2,
        "Latents with standard deviation 3.2: what scale factor gives them unit variance?",
        _ex06_2,
    ),
    Exercise("06", 3, "Which diffusers guidance_scale gives the kit's guidance w = 6.5?", _ex06_3),
    Exercise(
        "06",
        4,
        "How many spacetime tokens does a 16-frame 256×256 video give with 2×16×16 tubelets?",
        _ex06_4,
    ),
    Exercise(
        "06",
        5,
        "Frames and frame side both double: by what factor does dense attention over the tokens grow?",
        _ex06_5,
    ),
)
"""The exercises of notebook 06, in order."""
