"""Tests for helpers.vit: patches, patch embedding (against timm), position embeddings, TinyViT."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import sinusoidal, vit


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 4),
    patch=st.integers(1, 6),
    gh=st.integers(1, 5),
    gw=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_patchify_round_trip(batch, channels, patch, gh, gw, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, gh * patch, gw * patch, generator=g)
    tokens = vit.patchify(x, patch)
    assert tokens.shape == (batch, gh * gw, channels * patch * patch)
    assert torch.equal(vit.unpatchify(tokens, patch, (gh * patch, gw * patch)), x)


def test_patchify_token_is_the_patch():
    x = torch.arange(2 * 8 * 12, dtype=torch.float32).reshape(1, 2, 8, 12)
    tokens = vit.patchify(x, 4)  # grid 2 × 3
    # token 4 = row 1, column 1 → pixels [4:8, 4:8] of both channels, (C, P, P) order
    assert torch.equal(tokens[0, 4], x[0, :, 4:8, 4:8].reshape(-1))


def test_patchify_rectangular_patches():
    x = torch.rand(2, 3, 8, 12)
    tokens = vit.patchify(x, (4, 3))
    assert tokens.shape == (2, 8, 36)
    assert torch.equal(vit.unpatchify(tokens, (4, 3), (8, 12)), x)


@pytest.mark.parametrize("shape,patch", [((1, 3, 30, 32), 8), ((1, 1, 16, 17), 4)])
def test_patchify_error_names_sizes(shape, patch):
    with pytest.raises(ValueError, match=rf"{shape[2]}×{shape[3]}.*patch size {patch}×{patch}"):
        vit.patchify(torch.zeros(shape), patch)


def test_bad_inputs():
    with pytest.raises(ValueError, match="B, C, H, W"):
        vit.patchify(torch.zeros(3, 8, 8), 4)
    with pytest.raises(ValueError, match="patch_size"):
        vit.patchify(torch.zeros(1, 1, 8, 8), 0)
    with pytest.raises(ValueError, match="do not fit"):
        vit.unpatchify(torch.zeros(1, 5, 16), 4, 8)
    with pytest.raises(ValueError, match="not divisible"):
        vit.PatchEmbed(30, 8, 3, 16)
    with pytest.raises(ValueError, match="expected"):
        vit.PatchEmbed(32, 8, 3, 16)(torch.zeros(1, 1, 32, 32))
    odd = sinusoidal.sinusoidal_embedding(torch.arange(3), 5)  # an odd width gets a zero column
    assert odd.shape == (3, 5) and torch.equal(odd[:, 4], torch.zeros(3))
    with pytest.raises(ValueError, match="dim must be an int ≥ 2"):
        sinusoidal.sinusoidal_embedding(torch.arange(3), 1)
    with pytest.raises(ValueError, match="divisible by 4"):
        sinusoidal.sincos_2d(4, 6)
    with pytest.raises(ValueError, match="num_heads"):
        vit.ViTConfig(embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="pos_embed"):
        vit.ViTConfig(pos_embed="rope")
    with pytest.raises(ValueError, match="profile"):
        vit.ViTConfig.preset("huge")


@pytest.mark.parametrize("img,patch,chans,dim", [(32, 8, 3, 48), (224, 16, 3, 768), (28, 7, 1, 16)])
def test_patch_embed_matches_timm(img, patch, chans, dim):
    from timm.layers import PatchEmbed as TimmPatchEmbed

    torch.manual_seed(0)
    ref = TimmPatchEmbed(img_size=img, patch_size=patch, in_chans=chans, embed_dim=dim)
    ours = vit.PatchEmbed(img, patch, chans, dim)
    ours.load_state_dict(ref.state_dict())  # strict: same parameter names and shapes
    x = torch.randn(2, chans, img, img, generator=torch.Generator().manual_seed(1))
    assert ours.grid_size == tuple(ref.grid_size) and ours.num_patches == ref.num_patches
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


def test_patch_embed_equals_patchify_then_linear():
    torch.manual_seed(0)
    pe = vit.PatchEmbed(32, 4, 3, 24)
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(pe(x), pe.as_linear()(vit.patchify(x, 4)), rtol=1e-5, atol=1e-5)


def test_sincos_known_values():
    emb = sinusoidal.sinusoidal_embedding(torch.tensor([0.0, 1.0]), 4)
    # ω = [1, 1/100]; position 0 → [0, 0, 1, 1]; position 1 → [sin 1, sin .01, cos 1, cos .01]
    expected = torch.tensor(
        [[0, 0, 1, 1], [math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)]]
    )
    torch.testing.assert_close(emb, expected.float())
    grid = sinusoidal.sincos_2d((2, 3), 8)
    assert grid.shape == (6, 8)
    # token 5 = (row 1, col 2): first half encodes the row, second half the column
    torch.testing.assert_close(
        grid[5, :4], sinusoidal.sinusoidal_embedding(torch.tensor([1.0]), 4)[0]
    )
    torch.testing.assert_close(
        grid[5, 4:], sinusoidal.sinusoidal_embedding(torch.tensor([2.0]), 4)[0]
    )
    # every vector has norm √(dim/2): sin² + cos² = 1 per frequency
    torch.testing.assert_close(grid.norm(dim=1), torch.full((6,), 2.0))


def test_sincos_from_coords_matches_grid_and_timm():
    from timm.layers import build_sincos2d_pos_embed

    coords = torch.tensor([[r, c] for r in range(3) for c in range(4)])
    torch.testing.assert_close(
        sinusoidal.sincos_2d_from_coords(coords, 16), sinusoidal.sincos_2d((3, 4), 16)
    )
    # same frequencies as timm; timm lays blocks out as [sin_row, sin_col, cos_row, cos_col],
    # ours as [sin_row, cos_row, sin_col, cos_col]
    ref = (
        build_sincos2d_pos_embed([3, 4], dim=16)
        .reshape(12, 2, 2, 4)
        .transpose(1, 2)
        .reshape(12, 16)
    )
    torch.testing.assert_close(ref, sinusoidal.sincos_2d((3, 4), 16), atol=1e-5, rtol=0)


def test_sincos_from_real_coordinates_is_smooth():
    a = sinusoidal.sincos_2d_from_coords(torch.tensor([[10.0, 10.0]]), 32)
    b = sinusoidal.sincos_2d_from_coords(torch.tensor([[10.01, 10.0]]), 32)
    assert torch.dist(a, b) < 0.05


@pytest.mark.parametrize("pos", ["learned", "sincos"])
def test_tiny_vit_shapes_and_weights(pos):
    torch.manual_seed(0)
    cfg = vit.ViTConfig(
        img_size=16,
        patch_size=4,
        in_chans=3,
        embed_dim=32,
        depth=2,
        num_heads=4,
        num_classes=5,
        pos_embed=pos,
    )
    model = vit.TinyViT(cfg).eval()
    x = torch.rand(2, 3, 16, 16)
    logits = model(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    tokens, weights = model.tokens(x, return_weights=True)
    assert tokens.shape == (2, 17, 32) and len(weights) == 2
    assert weights[0].shape == (2, 4, 17, 17)
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(2, 4, 17))
    # the fused and the explicit paths give the same logits
    torch.testing.assert_close(model.head(tokens[:, 0]), logits, atol=1e-5, rtol=1e-5)


def test_vit_parameter_count_fixed_architecture():
    cfg = vit.ViTConfig(img_size=32, patch_size=4, in_chans=1, embed_dim=64, depth=4, num_heads=4)
    n = sum(p.numel() for p in vit.TinyViT(cfg).parameters())
    # patch 16·64+64, cls 64, pos 65·64, 4 blocks × (2·128 + 64·192+192 + 64·64+64 + 64·256+256 + 256·64+64), norm 128, head 650
    block = 2 * 128 + (64 * 192 + 192) + (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64)
    assert n == 16 * 64 + 64 + 64 + 65 * 64 + 4 * block + 128 + 650


def test_presets_valid():
    for profile in ("smoke", "laptop", "gpu"):
        assert vit.ViTConfig.preset(profile).epochs >= 1


def test_patch_embed_names_the_dtype_it_wants():
    pe = vit.PatchEmbed(8, 4, 1, 16)
    with pytest.raises(TypeError, match=r"x.float\(\) / 255"):
        pe(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(
        TypeError, match=r"torch.float16 but the network's weights are torch.float32"
    ):
        pe(torch.rand(2, 1, 8, 8).half())
    assert pe.half()(torch.rand(2, 1, 8, 8).half()).dtype == torch.float16
    with pytest.raises(ValueError, match="embed_dim must be a positive int"):
        vit.PatchEmbed(8, 4, 1, 0)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"patch_size": 0}, "patch_size must be a positive int"),  # it divided by zero
        ({"num_heads": 0}, "num_heads must be a positive int"),
        ({"lr": float("nan")}, "lr must be positive"),
    ],
)
def test_vit_config_checks_before_dividing(option, message):
    with pytest.raises(ValueError, match=message):
        vit.ViTConfig(**option)
