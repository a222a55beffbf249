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


def test_superpixel_features_keep_patch_tokens_and_average_shifts():
    """Each superpixel gets the patch token that covers it; with one shift and a token that
    is the patch's own mean colour, the local feature equals the superpixel's colour."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 64, generator=g)

    def tokens(tiles):  # (b, 3, 16, 16) → (b, 1 + 4, 3): class token, then 8-px patch means
        patches = tiles.unfold(2, 8, 8).unfold(3, 8, 8).mean((-1, -2))  # (b, 3, 2, 2)
        patch_tokens = patches.flatten(2).transpose(1, 2)  # (b, 4, 3), raster order
        return torch.cat([patch_tokens.mean(1, keepdim=True), patch_tokens], dim=1)

    one = tiling.superpixel_features(image, tokens, tile_size=16, patch_size=8, region_size=32)
    assert one.local.shape == (8, 8, 3) and one.rgb.shape == (8, 8, 3)
    torch.testing.assert_close(one.local, one.rgb)  # the right token lands on each superpixel
    # regional token: the mean of the 2×2 tiles of its 32-px region, on every superpixel of it
    torch.testing.assert_close(one.regional[0, 0], image[:, :32, :32].mean((1, 2)).double())
    torch.testing.assert_close(one.regional[3, 3], one.regional[0, 0])
    # shifted tilings: patch means do not depend on the tiling, so local stays the same; the
    # regional tokens become averages over differently placed regions
    two = tiling.superpixel_features(
        image, tokens, tile_size=16, patch_size=8, region_size=32, shifts=(0, 8, 16)
    )
    torch.testing.assert_close(two.local, one.local)
    assert not torch.allclose(two.regional, one.regional)
    assert two.concat().shape == (8, 8, 9)
    with pytest.raises(ValueError, match="shifts"):
        tiling.superpixel_features(
            image, tokens, tile_size=16, patch_size=8, region_size=32, shifts=(4,)
        )
    with pytest.raises(ValueError, match="tile_tokens must return"):
        tiling.superpixel_features(
            image, lambda t: tokens(t)[:, :3], tile_size=16, patch_size=8, region_size=32
        )


def test_principal_components_explained_variance():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 6, generator=g) * torch.tensor([3.0, 1.0, 0.5, 0.1, 0.1, 0.1])
    scores, explained = tiling.principal_components(x, n_components=3)
    assert scores.shape == (500, 3) and explained[0] > 0.85 and sum(explained) <= 1 + 1e-9
    torch.testing.assert_close(
        scores.var(0)[0] / x.double().var(0).sum(),
        torch.tensor(explained[0], dtype=torch.float64),
        atol=1e-6,
        rtol=0,
    )


def test_grid_index_collides_when_tiles_overlap():
    coords = tiling.tile_coords(64, 64, 32, stride=16).flatten(0, 1)  # 3 × 3 tiles
    by_tile = {tuple(i) for i in tiling.grid_index(coords, 32).tolist()}
    by_stride = {tuple(i) for i in tiling.grid_index(coords, 16).tolist()}
    assert len(by_tile) == 4 and len(by_stride) == 9


@pytest.mark.parametrize("profile", ["smoke", "laptop", "gpu"])
def test_notebook_02_budgets_fit_its_tiling_and_compare_enough_seeds(profile):
    from helpers.course import experiments

    exp = experiments.ViTExperiment.preset(profile)
    # the notebook's geometry: 8-px superpixels, 32-px tiles, 128-px regions
    assert all(s % 8 == 0 and 0 <= s < 128 for s in exp.shifts)
    if profile != "smoke":
        assert exp.ablation_seeds >= 5  # training runs compared over at least five seeds
    with pytest.raises(ValueError, match="shifts"):
        experiments.ViTExperiment(shifts=())


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="tile_size must be a positive int"):
        tiling.grid_index(torch.tensor([[0, 8]]), 0)
    with pytest.raises(ValueError, match="n_components must be a positive int"):
        tiling.pca_colors(torch.rand(4, 4, 8), n_components=0)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        tiling.tile_coords(16, 16, 4, 0)
