"""The small U-Net and the diffusers wrapper: shapes, conditioning, finiteness, errors."""

from __future__ import annotations

import pytest
import torch

from helpers import sinusoidal
from helpers.diffusion import null_condition
from helpers.unet import UNet, make_model


@pytest.mark.parametrize(
    ("size", "mults"), [(8, (1, 2)), (16, (1, 2, 2)), (32, (1, 2, 2)), (24, (1, 2))]
)
def test_unet_keeps_shape_and_is_finite(size, mults):
    torch.manual_seed(0)
    net = UNet(1, base_channels=8, channel_mults=mults, attn_resolutions=(2,))
    x = torch.randn(3, 1, size, size)
    out = net(x, torch.tensor([0, 500, 999]))
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_unet_rgb_out_channels_and_rectangular_input():
    net = UNet(3, out_channels=6, base_channels=8, channel_mults=(1, 2), num_res_blocks=2)
    out = net(torch.randn(2, 3, 16, 24), torch.tensor([1, 2]))
    assert out.shape == (2, 6, 16, 24)


def test_output_starts_at_zero_and_moves_after_a_step():
    """The output layer is zero-initialised, so ε̂ = 0 before training."""
    net = UNet(1, base_channels=8, channel_mults=(1, 2))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 4])
    assert net(x, t).abs().max().item() == 0.0
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    (net(x, t) - 1).pow(2).mean().backward()
    opt.step()
    assert net(x, t).abs().max().item() > 0


def _perturb(net: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


def test_class_conditioning_changes_output_and_null_is_default():
    net = _perturb(UNet(1, base_channels=8, channel_mults=(1, 2), num_classes=10))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 10])
    a = net(x, t, y=torch.tensor([1, 1]))
    b = net(x, t, y=torch.tensor([7, 7]))
    assert not torch.allclose(a, b)
    y_null, _ = null_condition(net, torch.tensor([1, 7]), None)
    assert y_null.tolist() == [10, 10]
    torch.testing.assert_close(net(x, t), net(x, t, y=y_null))


def test_vector_conditioning_and_zero_null():
    net = _perturb(UNet(1, base_channels=8, channel_mults=(1, 2), cond_dim=5, num_classes=3))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 10])
    c = torch.randn(2, 5)
    assert not torch.allclose(net(x, t, cond=c), net(x, t))
    torch.testing.assert_close(net(x, t), net(x, t, y=torch.tensor([3, 3]), cond=torch.zeros(2, 5)))


def test_parameter_count_of_the_default_architecture_matches_diffusers():
    ours = make_model(
        "unet", in_channels=1, base_channels=32, channel_mults=(1, 2, 2), attn_resolutions=(4,)
    )
    theirs = make_model(
        "diffusers", in_channels=1, base_channels=32, channel_mults=(1, 2, 2), attn_resolutions=(4,)
    )
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ours) == count(theirs) == 1_112_801


@pytest.mark.parametrize("options", [{}, {"num_classes": 4}, {"cond_dim": 6}])
def test_diffusers_wrapper_has_the_same_call(options):
    net = make_model(
        "diffusers",
        in_channels=1,
        base_channels=8,
        channel_mults=(1, 2),
        attn_resolutions=(2,),
        image_size=16,
        **options,
    )
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([0, 999])
    y = torch.tensor([0, 4]) if "num_classes" in options else None
    cond = torch.randn(2, 6) if "cond_dim" in options else None
    out = net(x, t, y=y, cond=cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert net(x, t).shape == x.shape  # null condition by default


def test_errors_name_what_was_expected():
    net = UNet(1, base_channels=8, channel_mults=(1, 2, 2), num_classes=3)
    t = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"not divisible by 4"):
        net(torch.randn(2, 1, 10, 10), t)
    with pytest.raises(ValueError, match=r"x must be \(B, 1, H, W\)"):
        net(torch.randn(2, 3, 8, 8), t)
    with pytest.raises(ValueError, match=r"t must have shape \(2,\)"):
        net(torch.randn(2, 1, 8, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\].*got values from 0 to 4"):
        net(torch.randn(2, 1, 8, 8), t, y=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"integer labels, got shape \(3,\)"):
        net(torch.randn(2, 1, 8, 8), t, y=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="cond_dim=None"):
        net(torch.randn(2, 1, 8, 8), t, cond=torch.randn(2, 4))
    with pytest.raises(ValueError, match="kind must be"):
        make_model("transformer")
    with pytest.raises(ValueError, match="base_channels"):
        UNet(1, base_channels=0)


def test_timestep_embedding_shape_and_range():
    e = sinusoidal.sinusoidal_embedding(torch.tensor([0, 1, 999]), 9)
    assert e.shape == (3, 9)
    assert e.abs().max() <= 1.0


def test_unet_runs_in_bfloat16_end_to_end():
    """diffusers' U-Net runs in bf16; ours too: the float32 sinusoids follow the weights."""
    for kw, extra in (
        ({"num_classes": 3}, {"y": torch.tensor([0, 3])}),
        ({"cond_dim": 4}, {"cond": torch.rand(2, 4)}),
        ({"cond_dim": 4, "cond_mode": "cross_attention"}, {"cond": torch.rand(2, 4)}),
    ):
        net = UNet(1, base_channels=8, channel_mults=(1, 2), seed=0, **kw)
        ref = net(torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
                  torch.tensor([1, 7]), **extra)  # fmt: skip
        net = net.to(torch.bfloat16)
        out = net(torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)).bfloat16(),
                  torch.tensor([1, 7]), **extra)  # fmt: skip
        assert out.dtype == torch.bfloat16 and bool(torch.isfinite(out.float()).all())
        torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.1)


def test_unet_input_dtype_and_options_are_checked():
    net = UNet(1, base_channels=8, channel_mults=(1, 2), seed=0)
    with pytest.raises(TypeError, match=r"x.float\(\) / 255"):
        net(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.tensor([1, 2]))
    with pytest.raises(
        TypeError, match=r"torch.float32 but the network's weights are torch.bfloat16"
    ):
        net.to(torch.bfloat16)(torch.rand(2, 1, 8, 8), torch.tensor([1, 2]))
    for kw, message in (
        ({"num_classes": 0}, "num_classes must be a positive int"),  # 0 is not "no labels"
        ({"cond_dim": 0}, "cond_dim must be a positive int"),
        ({"heads": 0}, "heads must be a positive int"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\]"),
        ({"channel_mults": (0,)}, "each of channel_mults must be a positive int"),
    ):
        with pytest.raises(ValueError, match=message):
            UNet(1, base_channels=8, **kw)
