"""Tests for helpers.tiling: tile coordinates, tile-wise embedding, PCA colours."""

import pytest
import torch

from helpers import tiling, vit


def test_tile_coords_and_grid_index():
    c = tiling.tile_coords(100, 70, 32)
    assert c.shape == (3, 2, 2)  # tiles crossing the border are dropped
    assert c[2, 1].tolist() == [64, 32]
    c = tiling.tile_coords(64, 64, 32, stride=16)
    assert c.shape == (3, 3, 2)
    assert tiling.grid_index(torch.tensor([[511, 512], [767, 0]]), 256).tolist() == [[1, 2], [2, 0]]


def test_embed_tiles_places_each_tile():
    image = torch.zeros(1, 64, 96)
    image[0, 32:64, 64:96] = 1.0  # only tile (1, 2) is bright
    grid = tiling.embed_tiles(
        image, lambda t: t.mean(dim=(1, 2, 3))[:, None], tile_size=32, batch_size=2
    )
    assert grid.shape == (2, 3)
    expected = torch.zeros(2, 3, 1)
    expected[1, 2] = 1.0
    assert torch.equal(grid.embeddings, expected)
    emb, coords = grid.flat()
    assert emb.shape == (6, 1) and coords[5].tolist() == [32, 64]


def test_embed_tiles_with_a_vit_matches_direct_call():
    torch.manual_seed(0)
    model = vit.TinyViT(
        vit.ViTConfig(img_size=16, patch_size=4, in_chans=3, depth=1, embed_dim=16, num_heads=2)
    ).eval()
    image = torch.rand(3, 48, 32)

    def enc(t):
        return model.tokens(t)[:, 0]

    grid = tiling.embed_tiles(image, enc, tile_size=16, batch_size=4)
    with torch.no_grad():
        direct = enc(image[:, 16:32, 16:32][None])[0]
    torch.testing.assert_close(grid.embeddings[1, 1], direct, atol=1e-5, rtol=1e-5)


def test_pca_colors_range_and_shape():
    g = torch.Generator().manual_seed(0)
    colors = tiling.pca_colors(torch.randn(5, 6, 10, generator=g))
    assert colors.shape == (5, 6, 3) and colors.min() >= 0 and colors.max() <= 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="larger than the image"):
        tiling.tile_coords(10, 10, 32)
    with pytest.raises(ValueError, match="stride"):
        tiling.tile_coords(64, 64, 32, stride=0)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        tiling.embed_tiles(torch.zeros(1, 1, 8, 8), lambda t: t, tile_size=4)
    with pytest.raises(ValueError, match="encoder must return"):
        tiling.embed_tiles(torch.zeros(1, 8, 8), lambda t: t, tile_size=4)


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="tile_size must be a positive int"):
        tiling.grid_index(torch.tensor([[0, 8]]), 0)
    with pytest.raises(ValueError, match="n_components must be a positive int"):
        tiling.pca_colors(torch.rand(4, 4, 8), n_components=0)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        tiling.tile_coords(16, 16, 4, 0)
