"""helpers.large_image: slerp, windows and weights, grid conditions, sampler, seam measure."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import diffusion, large_image, unet


def test_slerp_endpoints_norm_and_angle():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(5, 16, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.randn(5, 16, generator=g), dim=1)
    assert torch.allclose(large_image.slerp(a, b, 0.0), a, atol=1e-5)
    assert torch.allclose(large_image.slerp(a, b, 1.0), b, atol=1e-5)
    omega = torch.arccos((a * b).sum(1))
    for t in (0.25, 0.5, 0.8):
        m = large_image.slerp(a, b, t)
        assert torch.allclose(m.norm(dim=1), torch.ones(5), atol=1e-5)  # stays on the sphere
        assert torch.allclose(
            torch.arccos((m * a).sum(1).clamp(-1, 1)), t * omega, atol=1e-4
        )  # constant speed


def test_slerp_parallel_and_lengths():
    a = torch.tensor([2.0, 0.0])
    assert torch.allclose(large_image.slerp(a, a, 0.3), a)
    m = large_image.slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0]), 0.5)
    assert math.isclose(float(m.norm()), 2.0, rel_tol=1e-5)  # lengths interpolate linearly
    with pytest.raises(ValueError):
        large_image.slerp(torch.ones(2), torch.ones(3), 0.5)


@settings(max_examples=25, deadline=None)
@given(cells=st.integers(1, 4), patch=st.sampled_from([4, 8, 16]), frac=st.sampled_from([1, 2, 4]))
def test_every_pixel_covered_and_weights_sum_to_one(cells, patch, frac):
    side = cells * patch
    stride = patch // frac
    pos = large_image.window_positions(side, side, window=patch, stride=stride)
    assert len(pos) == ((side - patch) // stride + 1) ** 2
    w = large_image.overlap_weights(side, side, pos, patch)
    assert w.shape == (len(pos), side, side)
    assert torch.allclose(w.sum(0), torch.ones(side, side))
    assert bool(((w > 0).sum(0) >= 1).all())


def test_grid_that_does_not_fit_raises():
    with pytest.raises(ValueError, match="does not fit"):
        large_image.window_positions(100, 128, window=32, stride=16)
    with pytest.raises(ValueError, match="does not fit"):
        large_image.window_positions(16, 16, window=32, stride=16)
    with pytest.raises(ValueError, match="larger than the window"):
        large_image.window_positions(64, 64, window=16, stride=32)
    net = unet.UNet(
        3, cond_dim=4, cond_mode="cross_attention", base_channels=8, channel_mults=(1, 2)
    )
    s = diffusion.Schedule.make("linear", T=10)
    with pytest.raises(ValueError, match="does not fit"):
        large_image.sample_large(net, torch.randn(2, 2, 4), schedule=s, patch=16, stride=6, steps=2)
    with pytest.raises(ValueError, match="rows, cols, D"):
        large_image.sample_large(net, torch.randn(4, 4), schedule=s, patch=16, steps=2)


def test_grid_conditions_hit_cells_and_interpolate():
    grid = torch.nn.functional.normalize(
        torch.randn(2, 2, 6, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    tiles = large_image.window_positions(32, 32, window=16, stride=16)
    assert torch.allclose(
        large_image.grid_conditions(grid, tiles, patch=16, window=16), grid.reshape(4, 6), atol=1e-5
    )
    centre = large_image.grid_conditions(grid, [(8, 8)], patch=16, window=16)[0]
    top = large_image.slerp(grid[0, 0], grid[0, 1], 0.5)
    bottom = large_image.slerp(grid[1, 0], grid[1, 1], 0.5)
    assert torch.allclose(centre, large_image.slerp(top, bottom, 0.5), atol=1e-5)


def test_sample_large_smoke_and_tiling_equivalence():
    torch.manual_seed(0)
    net = unet.UNet(
        3, cond_dim=4, cond_mode="cross_attention", base_channels=8, channel_mults=(1, 2)
    )
    for p in net.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    s = diffusion.Schedule.make("linear", T=20)
    grid = torch.randn(2, 3, 4)
    img = large_image.sample_large(net, grid, schedule=s, patch=8, stride=4, steps=3, guidance=1.0)
    assert img.shape == (3, 16, 24) and torch.isfinite(img).all()
    # batching windows does not change the result
    loop = large_image.sample_large(
        net, grid, schedule=s, patch=8, stride=4, steps=3, guidance=1.0, window_batch=1
    )
    assert torch.allclose(img, loop, atol=1e-5)
    # naive tiling (stride = patch) equals sampling each tile on its own from the same noise
    naive = large_image.sample_large(
        net, grid, schedule=s, patch=8, stride=8, steps=3, guidance=0.0
    )
    x = torch.randn((1, 3, 16, 24), generator=torch.Generator().manual_seed(0))
    tile = x[:, :, :8, 8:16]
    ts = diffusion.ddim_timesteps(20, 3).tolist()
    for t, tp in zip(ts, ts[1:] + [-1], strict=True):
        with torch.no_grad():
            eps = net(tile, torch.tensor([t]), cond=grid[0, 1][None])
        tile = diffusion.ddim_step(eps, torch.tensor([t]), tp, tile, s, clip_x0=True)
    assert torch.allclose(naive[:, :8, 8:16], diffusion.to_unit(tile[0]), atol=1e-4)


def test_seam_ratio():
    flat = torch.zeros(1, 16, 16)
    tiles = flat.clone()
    tiles[:, :8, :8] = 1.0  # a block edge exactly on the tile border
    noise = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert large_image.seam_ratio(tiles + 0.01 * noise, 8) > 10
    assert 0.5 < large_image.seam_ratio(noise, 8) < 2
    with pytest.raises(ValueError):
        large_image.seam_ratio(torch.rand(1, 8, 8), 8)


def test_seam_ratio_offset_measures_half_window_borders():
    img = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.01
    img[:, :, 12:] += 1.0  # a step at column 12: an odd multiple of 4, not a multiple of 8
    assert (
        large_image.seam_ratio(img, 8) < 0.1
    )  # tile borders at 8, 16, 24 miss it (interior has it)
    assert large_image.seam_ratio(img, 8, offset=4) > 10  # borders at 4, 12, 20, 28 find it
    assert large_image.seam_ratio(img, 4) > 5  # every half-tile border at once
    with pytest.raises(ValueError, match=r"offset must be in \[0, 8\) for tile 8, got 8"):
        large_image.seam_ratio(img, 8, offset=8)
    with pytest.raises(ValueError, match=r"\(C, H, W\), got \(32, 32\)"):
        large_image.seam_ratio(img[0], 8)


def test_overlap_weights_gap_message_names_canvas_window_and_stride():
    positions = [(0, 0), (0, 24), (24, 0), (24, 24)]
    with pytest.raises(ValueError, match=r"40×40 canvas .* 4 windows of 16 px at stride 24"):
        large_image.overlap_weights(40, 40, positions, 16)


def _cond_net():
    return unet.UNet(1, base_channels=8, channel_mults=(1, 2), attn_resolutions=(), cond_dim=3,
                     seed=0)  # fmt: skip


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"stride": 0}, "stride must be a positive int"),  # it used patch // 2
        ({"window_batch": 0}, "window_batch must be a positive int"),  # it failed in range()
        ({"patch": 0}, "patch must be a positive int"),
        ({"guidance": float("nan")}, "guidance must be a finite number"),
    ],
)
def test_sample_large_options_are_checked(option, message):
    s = diffusion.Schedule.make("linear", T=20)
    args = {"schedule": s, "patch": 8, "channels": 1, "steps": 2, **option}
    with pytest.raises(ValueError, match=message):
        large_image.sample_large(_cond_net(), torch.rand(2, 2, 3), **args)


def test_stride_none_is_half_the_patch():
    s = diffusion.Schedule.make("linear", T=20)
    args = {"schedule": s, "patch": 8, "channels": 1, "steps": 2, "guidance": 0.0}
    a = large_image.sample_large(_cond_net(), torch.rand(2, 2, 3), stride=None, **args)
    b = large_image.sample_large(_cond_net(), torch.rand(2, 2, 3), stride=4, **args)
    torch.testing.assert_close(a, b)


def test_seam_ratio_and_grid_conditions_refuse_bad_input():
    img = torch.rand(1, 8, 8)
    img[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="image holds 1 non-finite"):
        large_image.seam_ratio(img, 4)
    with pytest.raises(ValueError, match="patch must be a positive int"):
        large_image.grid_conditions(torch.rand(2, 2, 3), [(0, 0)], patch=0, window=8)
