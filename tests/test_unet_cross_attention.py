"""helpers.unet with cond_mode="cross_attention"; null-condition dropout; the guidance formula."""

import pytest
import torch

from helpers import diffusion, diffusion_training, metrics, unet
from helpers.course import experiments


def _net(**kw):
    return unet.UNet(
        3, cond_dim=8, cond_mode="cross_attention", context_tokens=2, base_channels=8,
        channel_mults=(1, 2), seed=0, **kw,
    )  # fmt: skip


def test_shapes_finite_and_input_checks():
    net = _net()
    out = net(torch.randn(3, 3, 16, 16), torch.tensor([0, 5, 99]), cond=torch.randn(3, 8))
    assert out.shape == (3, 3, 16, 16) and torch.isfinite(out).all()
    assert net(torch.randn(2, 3, 16, 16), torch.tensor([1, 2])).shape == (2, 3, 16, 16)  # cond=None
    with pytest.raises(ValueError, match=r"cond must be \(2, 8\)"):
        net(torch.randn(2, 3, 16, 16), torch.tensor([1, 2]), cond=torch.randn(2, 7))
    with pytest.raises(ValueError):
        unet.UNet(3, cond_dim=0, cond_mode="cross_attention")


def test_none_is_the_zero_embedding():
    net = _net()
    for p in net.parameters():  # leave the zero-initialised layers non-trivial
        p.data.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 7])
    assert torch.allclose(net(x, t), net(x, t, cond=torch.zeros(2, 8)), atol=1e-6)
    assert not torch.allclose(net(x, t), net(x, t, cond=torch.randn(2, 8)), atol=1e-4)


def test_cross_attention_to_one_token_is_a_constant_shift():
    xa = unet.CrossAttention(8, context_dim=4)
    torch.nn.init.normal_(xa.proj.weight)
    ctx = torch.randn(2, 1, 4)
    a, b = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    # with a single token the softmax weight is 1 for every query: the added term ignores x
    assert torch.allclose(xa(a, ctx) - a, xa(b, ctx) - b, atol=1e-5)


def test_guidance_formula_matches_diffusion_guided_eps():
    net = _net()
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    x, t, c = torch.randn(2, 3, 16, 16), torch.tensor([10, 20]), torch.randn(2, 8)
    eps_c, eps_u = net(x, t, cond=c), net(x, t, cond=torch.zeros_like(c))
    for w in (0.0, 1.0, 3.0):
        expected = diffusion.classifier_free_guidance(eps_c, eps_u, w)
        assert torch.allclose(
            diffusion.guided_eps(net, x, t, cond=c, guidance=w), expected, atol=1e-5
        )
    assert torch.equal(
        diffusion.classifier_free_guidance(torch.tensor([2.0]), torch.tensor([1.0]), 3),
        torch.tensor([5.0]),
    )
    assert torch.equal(
        diffusion.classifier_free_guidance(torch.tensor([2.0]), torch.tensor([1.0]), -1),
        torch.tensor([1.0]),
    )


def test_drop_embeddings_rate():
    cond = torch.ones(20000, 4)
    _, dropped, mask = diffusion.drop_condition(
        _net(), None, cond, 0.1, batch=20000, generator=torch.Generator().manual_seed(0)
    )
    assert abs(float(mask.float().mean()) - 0.1) < 0.01
    assert torch.equal(dropped[mask], torch.zeros(int(mask.sum()), 4))
    assert torch.equal(dropped[~mask], cond[~mask])


class _Recorder(torch.nn.Module):
    """Predicts zeros and counts how many conditioning rows reach it as the null embedding."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.null, self.total = 0, 0

    def forward(self, x, t, y=None, cond=None):
        self.null += int((cond.abs().sum(1) == 0).sum())
        self.total += cond.shape[0]
        return x * self.w


def test_training_replaces_ten_percent_by_the_null_embedding():
    rec = _Recorder()
    x = torch.rand(64, 1, 4, 4) * 2 - 1
    s = diffusion.Schedule.make("linear", T=50)
    diffusion_training.train(
        rec,
        x,
        schedule=s,
        steps=200,
        batch_size=50,
        cond=torch.ones(64, 3),
        cond_drop=0.1,
        progress=False,
    )
    assert abs(rec.null / rec.total - 0.1) < 0.02


def test_trains_and_samples_smoke():
    net = _net()
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    s = diffusion.Schedule.make("linear", T=50)
    res = diffusion_training.train(
        net, x, schedule=s, steps=3, batch_size=8, cond=torch.randn(16, 8), progress=False
    )
    out = diffusion.sample(
        res.ema, (2, 3, 16, 16), schedule=s, steps=3, cond=torch.randn(2, 8), guidance=2.0
    )
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()


def test_cosine_to_reference():
    ref = torch.eye(3)
    samples = ref[:, None].repeat(1, 2, 1)  # each sample equals its reference
    own, other = metrics.cosine_to_reference(samples, ref, torch.eye(3))
    assert own == pytest.approx(1.0) and other == pytest.approx(1 / 3)


def test_config():
    assert experiments.CondConfig.preset("smoke").cond_drop == 0.1
    assert experiments.CondConfig.preset("gpu").size >= 64
    with pytest.raises(ValueError, match="not divisible"):
        experiments.CondConfig(size=30, channel_mults=(1, 2, 2))


def test_state_dict_names_of_the_former_cross_attention_unet():
    """Checkpoints of the former ``CrossAttnUNet`` load: the parameter names are unchanged."""
    names = set(_net().state_dict())
    assert {"to_tokens.weight", "mid_cross.q.weight", "down_cross.1.0.kv.weight"} <= names
    assert {"up_cross.1.0.proj.weight", "time_mlp.0.weight", "conv_out.weight"} <= names
    assert not any(n.startswith("cond_mlp") for n in names)


def test_one_forward_for_both_modes():
    """Without cross-attention layers, the cross-attention U-Net's path is the plain U-Net's."""
    plain = unet.UNet(3, base_channels=8, channel_mults=(1, 2), seed=0)
    xa = unet.UNet(3, base_channels=8, channel_mults=(1, 2), cond_dim=4, seed=0,
                   cond_mode="cross_attention", cross_resolutions=())  # fmt: skip
    xa.load_state_dict({**xa.state_dict(), **plain.state_dict()})
    for p in (*plain.parameters(), *xa.parameters()):
        p.data.add_(0.05)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([1, 2])
    with torch.no_grad():
        xa.mid_cross.proj.weight.zero_()
        xa.mid_cross.proj.bias.zero_()
        torch.testing.assert_close(xa(x, t, cond=torch.randn(2, 4)), plain(x, t))
