"""Tests for helpers.spacetime: tubelets, their exact inverse, the Conv3d embedding, token counts."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import spacetime, vit


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 2),
    channels=st.integers(1, 4),
    pt=st.integers(1, 3),
    ph=st.integers(1, 4),
    pw=st.integers(1, 4),
    gt=st.integers(1, 3),
    gh=st.integers(1, 3),
    gw=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_patchify_unpatchify_is_an_exact_inverse(batch, channels, pt, ph, pw, gt, gh, gw, seed):
    g = torch.Generator().manual_seed(seed)
    size = (gt * pt, gh * ph, gw * pw)
    video = torch.rand(batch, channels, *size, generator=g)
    tokens = spacetime.patchify(video, (pt, ph, pw))
    assert tokens.shape == (batch, gt * gh * gw, channels * pt * ph * pw)
    assert tokens.shape[1] == spacetime.token_count(size, (pt, ph, pw))
    assert torch.equal(spacetime.unpatchify(tokens, (pt, ph, pw), size), video)
    # and the other way round: any token tensor of the right shape comes back unchanged
    t2 = torch.rand(tokens.shape, generator=g)
    assert torch.equal(
        spacetime.patchify(spacetime.unpatchify(t2, (pt, ph, pw), size), (pt, ph, pw)), t2
    )


def test_a_token_is_its_tubelet_in_time_row_column_order():
    video = torch.arange(2 * 4 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 4, 6)
    tokens = spacetime.patchify(video, (2, 2, 3))  # grid 2 × 2 × 2
    # token 5 = time block 1, row block 0, column block 1
    assert torch.equal(tokens[0, 5], video[0, :, 2:4, 0:2, 3:6].reshape(-1))


def test_one_frame_tubelets_are_vit_patches():
    image = torch.rand(2, 3, 8, 12)
    tokens = spacetime.patchify(image[:, :, None], (1, 4, 4))
    assert torch.equal(tokens, vit.patchify(image, 4))


def test_tubelet_embedding_is_a_linear_map_of_the_tubelets():
    emb = spacetime.TubeletEmbed((2, 4, 4), 3, 16)
    video = torch.rand(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = emb(video)
    assert out.shape == (2, 2 * 2 * 2, 16)
    with torch.no_grad():
        assert torch.allclose(out, emb.as_linear()(spacetime.patchify(video, (2, 4, 4))), atol=1e-5)


def test_token_count_and_attention_cost():
    assert spacetime.token_count((16, 256, 256), (2, 16, 16)) == 8 * 16 * 16
    n1 = spacetime.token_count((8, 32, 32), (2, 8, 8))
    n2 = spacetime.token_count((16, 64, 64), (2, 8, 8))
    assert n2 == 8 * n1
    assert spacetime.attention_flops(n2, 64) == 64 * spacetime.attention_flops(n1, 64)
    assert spacetime.attention_flops(10, 8, layers=3) == 3 * 4 * 100 * 8


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: spacetime.patchify(torch.rand(1, 3, 5, 8, 8), (2, 4, 4)), r"T 5 by 2"),
        (lambda: spacetime.patchify(torch.rand(3, 8, 8), 2), r"\(B, C, T, H, W\)"),
        (lambda: spacetime.patchify(torch.rand(1, 1, 4, 4, 4), (2, 0, 2)), "positive"),
        (lambda: spacetime.unpatchify(torch.rand(1, 7, 8), (1, 2, 2), (2, 4, 4)), "do not fit"),
        (lambda: spacetime.token_count((4, 30, 32), 8), r"H 30 by 8"),
        (lambda: spacetime.attention_flops(0, 8), "n_tokens"),
        (lambda: spacetime.TubeletEmbed(2, 3, 8)(torch.rand(1, 1, 2, 2, 2)), r"\(B, 3, T, H, W\)"),
    ],
)
def test_errors_name_what_was_received(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_sliding_video_is_seeded_and_crops_the_image():
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(1))
    a = spacetime.sliding_video(
        image, frames=6, size=16, generator=torch.Generator().manual_seed(2)
    )
    b = spacetime.sliding_video(
        image, frames=6, size=16, generator=torch.Generator().manual_seed(2)
    )
    assert a.shape == (1, 3, 6, 16, 16) and torch.equal(a, b)
    # every frame is a crop of the image
    windows = image.unfold(1, 16, 1).unfold(2, 16, 1)  # (3, 49, 65, 16, 16)
    for k in range(6):
        frame = a[0, :, k]
        assert (windows == frame[:, None, None]).all(0).flatten(-2).all(-1).any()
    # consecutive frames move (speed 2 px per frame)
    assert not torch.equal(a[0, :, 0], a[0, :, 1])
    grey = spacetime.sliding_video(np.zeros((40, 40), dtype=np.uint8), frames=2, size=8)
    assert grey.shape == (1, 1, 2, 8, 8)
    with pytest.raises(ValueError, match="size must be"):
        spacetime.sliding_video(image, frames=2, size=65)
