"""Tests for helpers.attention: explicit vs fused attention, dilated (LongNet) attention."""

import math

import pytest
import torch

from helpers import attention


def qkv(b=2, h=4, n=32, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, n, d, generator=g) for _ in range(3))


def test_explicit_equals_sdpa():
    q, k, v = qkv(n=50)
    out, w = attention.attention(q, k, v, return_weights=True)
    torch.testing.assert_close(out, attention.sdpa(q, k, v), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 50))


def test_explicit_known_value():
    # two keys with scores 0 and √d·log 3 → weights 1/4, 3/4
    d = 4
    q = torch.zeros(1, 1, 1, d)
    q[..., 0] = 1.0
    k = torch.zeros(1, 1, 2, d)
    k[0, 0, 1, 0] = math.sqrt(d) * math.log(3)
    v = torch.tensor([[[[1.0, 0, 0, 0], [0, 1.0, 0, 0]]]])
    out, w = attention.attention(q, k, v, return_weights=True)
    torch.testing.assert_close(w[0, 0, 0], torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(out[0, 0, 0, :2], torch.tensor([0.25, 0.75]))


@pytest.mark.parametrize("w", [32, 64, 1000])
def test_dilated_degenerate_equals_dense(w):
    q, k, v = qkv(n=32)
    torch.testing.assert_close(
        attention.dilated_attention(q, k, v, [w], [1]),
        attention.attention(q, k, v),
        atol=1e-5,
        rtol=1e-5,
    )


def test_dilated_local_segments_equal_blockwise_dense():
    q, k, v = qkv(n=32)
    out = attention.dilated_attention(q, k, v, [8], [1])
    for s in range(4):
        sl = slice(8 * s, 8 * s + 8)
        torch.testing.assert_close(
            out[:, :, sl],
            attention.attention(q[:, :, sl], k[:, :, sl], v[:, :, sl]),
            atol=1e-5,
            rtol=1e-5,
        )


def test_dilated_head_offsets():
    # one branch w = n, r = 2: head j attends among positions ≡ j mod 2; others get 0
    q, k, v = qkv(h=2, n=16)
    out = attention.dilated_attention(q, k, v, [16], [2])
    for j in range(2):
        idx = torch.arange(j, 16, 2)
        ref = attention.attention(q[:, j : j + 1, idx], k[:, j : j + 1, idx], v[:, j : j + 1, idx])
        torch.testing.assert_close(out[:, j : j + 1, idx], ref, atol=1e-5, rtol=1e-5)
        other = torch.arange(1 - j, 16, 2)
        assert torch.all(out[:, j, other] == 0)


def test_dilated_mixing_by_normalisers_disjoint_keys():
    # branches (w=16, r=2) and ... build disjoint key sets per query: mixing by normalisers of
    # disjoint sets equals dense attention over their union. Head 0 keeps even positions with
    # r=2; (w=2, r=1) gives each even query its pair (itself + next odd). Union for even query
    # 2i: all even positions plus 2i+1; the query itself is counted twice in LongNet's sum.
    q, k, v = qkv(b=1, h=1, n=16, d=4)
    out = attention.dilated_attention(q, k, v, [16, 2], [2, 1])
    i = 4  # an even query
    keys = list(range(0, 16, 2)) + [i, i + 1]  # i appears twice, as in the sum of normalisers
    s = (q[0, 0, i] @ k[0, 0, keys].T) / 2.0
    ref = s.softmax(-1) @ v[0, 0, keys]
    torch.testing.assert_close(out[0, 0, i], ref, atol=1e-5, rtol=1e-5)


def test_dilated_shapes_padding_and_finite():
    q, k, v = qkv(b=1, h=8, n=37, d=8)
    out = attention.dilated_attention(q, k, v, [8, 16, 32, 64], [1, 2, 4, 8])
    assert out.shape == (1, 8, 37, 8) and torch.isfinite(out).all()


def test_dilated_is_not_causal():
    q, k, v = qkv(b=1, h=2, n=32)
    base = attention.dilated_attention(q, k, v, [16, 32], [1, 2])
    v2 = v.clone()
    v2[:, :, -1] += 10.0  # change the last token only
    k2 = k.clone()
    k2[:, :, -1] += 1.0
    out = attention.dilated_attention(q, k2, v2, [16, 32], [1, 2])
    # head 1 with r=2 keeps odd positions, so position 1 sees position 31 in the long branch
    assert not torch.allclose(out[:, 1, 1], base[:, 1, 1])


def test_dilated_errors():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="one dilation rate per segment"):
        attention.dilated_attention(q, k, v, [8, 16], [1])
    with pytest.raises(ValueError, match="not divisible by its dilation rate"):
        attention.dilated_attention(q, k, v, [10], [4])
    with pytest.raises(ValueError, match="positive"):
        attention.dilated_attention(q, k, v, [0], [1])
    with pytest.raises(ValueError, match=r"\(B, H, N, d\)"):
        attention.attention(q[0], k[0], v[0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        attention.sdpa(q.numpy(), k, v)


def test_score_bytes():
    assert attention.score_bytes(1024, heads=2) == 2 * 1024 * 1024 * 4
    # branches of 64 kept tokens each: N/w segments × 64² scores
    n = 4096
    expected = sum((n // w) * 64**2 for w in (64, 128, 256)) * 4
    assert attention.dilated_score_bytes(n, [64, 128, 256], [1, 2, 4]) == expected


def test_multihead_module_paths_agree():
    torch.manual_seed(0)
    mha = attention.MultiHeadSelfAttention(32, 4)
    x = torch.randn(2, 10, 32)
    out_w, w = mha(x, return_weights=True)
    torch.testing.assert_close(mha(x), out_w, atol=1e-5, rtol=1e-5)
    assert w.shape == (2, 4, 10, 10)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        attention.MultiHeadSelfAttention(30, 4)


def test_dilated_attention_over_zero_tokens_is_empty():
    q = torch.zeros(1, 2, 0, 4)
    out = attention.dilated_attention(q, q, q, [4, 8], [1, 2])  # it divided by zero
    assert out.shape == (1, 2, 0, 4)
    assert attention.dilated_score_bytes(0, [4], [1]) == 0 and attention.score_bytes(0) == 0
    with pytest.raises(ValueError, match="n_tokens must be an int ≥ 0"):
        attention.score_bytes(-10)
    with pytest.raises(ValueError, match="n_tokens must be an int ≥ 0"):
        attention.dilated_score_bytes(-10, [4], [1])


def test_integer_queries_are_refused():
    q = torch.ones(1, 1, 4, 8, dtype=torch.uint8)
    with pytest.raises(TypeError, match="q must be a floating-point tensor"):
        attention.attention(q, q, q)
