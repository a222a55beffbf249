"""helpers.conditioned: cross-attention U-Net, null-embedding dropout, guidance formula."""

import pytest
import torch

from helpers import conditioned, diffusion, training


def _net(**kw):
    torch.manual_seed(0)
    return conditioned.CrossAttnUNet(
        3, cond_dim=8, tokens=2, base_channels=8, channel_mults=(1, 2), **kw
    )


def test_shapes_finite_and_input_checks():
    net = _net()
    out = net(torch.randn(3, 3, 16, 16), torch.tensor([0, 5, 99]), cond=torch.randn(3, 8))
    assert out.shape == (3, 3, 16, 16) and torch.isfinite(out).all()
    assert net(torch.randn(2, 3, 16, 16), torch.tensor([1, 2])).shape == (2, 3, 16, 16)  # cond=None
    with pytest.raises(ValueError, match=r"cond must be \(2, 8\)"):
        net(torch.randn(2, 3, 16, 16), torch.tensor([1, 2]), cond=torch.randn(2, 7))
    with pytest.raises(ValueError):
        conditioned.CrossAttnUNet(3, cond_dim=0)


def test_none_is_the_zero_embedding():
    net = _net()
    for p in net.parameters():  # leave the zero-initialised layers non-trivial
        p.data.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 7])
    assert torch.allclose(net(x, t), net(x, t, cond=torch.zeros(2, 8)), atol=1e-6)
    assert not torch.allclose(net(x, t), net(x, t, cond=torch.randn(2, 8)), atol=1e-4)


def test_cross_attention_to_one_token_is_a_constant_shift():
    xa = conditioned.CrossAttention(8, context_dim=4)
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
        expected = conditioned.cfg_combine(eps_c, eps_u, w)
        assert torch.allclose(
            diffusion.guided_eps(net, x, t, cond=c, guidance=w), expected, atol=1e-5
        )
    assert torch.equal(
        conditioned.cfg_combine(torch.tensor([2.0]), torch.tensor([1.0]), 3), torch.tensor([5.0])
    )
    assert torch.equal(
        conditioned.cfg_combine(torch.tensor([2.0]), torch.tensor([1.0]), -1), torch.tensor([1.0])
    )


def test_drop_embeddings_rate():
    cond = torch.ones(20000, 4)
    dropped, mask = conditioned.drop_embeddings(cond, 0.1, torch.Generator().manual_seed(0))
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
    training.train(
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
    res = training.train(
        net, x, schedule=s, steps=3, batch_size=8, cond=torch.randn(16, 8), progress=False
    )
    out = diffusion.sample(
        res.ema, (2, 3, 16, 16), schedule=s, steps=3, cond=torch.randn(2, 8), guidance=2.0
    )
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()


def test_cosine_to_reference():
    ref = torch.eye(3)
    samples = ref[:, None].repeat(1, 2, 1)  # each sample equals its reference
    own, other = conditioned.cosine_to_reference(samples, ref, torch.eye(3))
    assert own == pytest.approx(1.0) and other == pytest.approx(1 / 3)


def test_config():
    assert conditioned.CondConfig.preset("smoke").cond_drop == 0.1
    assert conditioned.CondConfig.preset("gpu").size >= 64
    with pytest.raises(ValueError, match="not divisible"):
        conditioned.CondConfig(size=30, channel_mults=(1, 2, 2))
