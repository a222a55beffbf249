"""Tests for helpers.attention_cost (behaviour only; no timing assertions)."""

import numpy as np
import pytest
import torch

from helpers import attention, attention_cost


def test_fit_exponent_known_values():
    n = np.array([100, 200, 400, 800])
    assert attention_cost.fit_exponent(n, 3e-6 * n**2.0) == pytest.approx(2.0)
    assert attention_cost.fit_exponent(n, 5 * n) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        attention_cost.fit_exponent([1, 2], [0.0, 1.0])
    # skipped sizes (NaN) are left out of the fit
    assert attention_cost.fit_exponent([1, 2, 4, 8], [1.0, 4.0, 16.0, np.nan]) == pytest.approx(2)
    with pytest.raises(ValueError, match="≥ 2"):
        attention_cost.fit_exponent([1, 2], [1.0, np.nan])


def _timings(noise: float, exponent: float = 2.0, seed: int = 0, repeats: int = 7):
    """Synthetic repeats: the true time c·N^exponent plus non-negative load (others only add)."""
    rng = np.random.default_rng(seed)
    n = np.array([2048, 3072, 4096, 6144, 8192])
    base = 1e-8 * n.astype(float) ** exponent
    times = base[:, None] * (1 + noise * rng.exponential(size=(n.size, repeats)))
    return attention_cost.Timing(n=n, times=times, bytes=np.zeros(n.size))


def test_exponent_interval_covers_the_truth_and_widens_with_noise():
    quiet = _timings(0.01)
    fit_q = attention_cost.fit_exponent_interval(quiet.n, quiet.times)
    assert fit_q.interval[0] <= fit_q.slope <= fit_q.interval[1]
    assert fit_q.interval[0] - 0.01 <= 2.0 <= fit_q.interval[1] + 0.01
    busy = _timings(2.0, repeats=3)
    fit_b = attention_cost.fit_exponent_interval(busy.n, busy.times)
    assert fit_b.width > fit_q.width
    with pytest.raises(ValueError, match=r"\(K, R\)"):
        attention_cost.fit_exponent_interval(quiet.n, quiet.times[0])


def test_timing_quartiles_and_spread():
    t = attention_cost.Timing(
        n=np.array([1, 2]),
        times=np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [2.0] * 5]),
        bytes=np.zeros(2),
    )
    np.testing.assert_allclose(t.seconds, [1.0, 2.0])
    np.testing.assert_allclose(t.quartiles(), [[2.0, 3.0, 4.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(t.spread(), [2.0 / 3.0, 0.0])


def test_timing_warning_logic():
    quiet, busy = _timings(0.01), _timings(2.0, repeats=3)
    fits = {"dense": attention_cost.fit_exponent_interval(quiet.n, quiet.times)}
    assert attention_cost.timing_warning({"dense": quiet}, fits) is None
    message = attention_cost.timing_warning({"dense": quiet, "dilated_local": busy})
    assert message.startswith("WARNING") and "dilated_local" in message and "dense" not in message
    wide = {"dense": attention_cost.ExponentFit(1.9, (1.2, 2.4))}
    assert "wide interval" in attention_cost.timing_warning({"dense": quiet}, wide)
    # the thresholds are parameters
    assert attention_cost.timing_warning({"d": busy}, max_spread=1e9) is None


def test_sizes_that_do_not_fit_on_the_gpu_are_skipped(monkeypatch):
    cfg = attention_cost.AttentionCostConfig.preset(
        "smoke", token_counts=(128, 256), repeats=1, warmup=0
    )
    assert attention_cost._fits("dense", 10**6, cfg, torch.device("cpu"))  # no limit on the CPU
    monkeypatch.setattr(attention_cost, "_fits", lambda m, n, c, d: not (m == "dense" and n > 128))
    res = attention_cost.measure(
        cfg, generator=torch.Generator().manual_seed(0), memory=False, progress=False
    )
    assert res["dense"].seconds[0] > 0 and np.isnan(res["dense"].seconds[1])
    assert np.all(res["sdpa"].seconds > 0)


def test_measure_keeps_every_repeat_and_measures_cpu_memory():
    cfg = attention_cost.AttentionCostConfig.preset(
        "smoke", token_counts=(128, 256), repeats=2, warmup=0
    )
    res = attention_cost.measure(cfg, generator=torch.Generator().manual_seed(0), progress=False)
    assert set(res) == set(cfg.methods)
    assert res["dense"].times.shape == (2, 2) and np.all(res["dense"].times > 0)
    # the explicit path holds the scores and the softmax weights at once: about 2× the scores
    for n, peak in zip((128, 256), res["dense"].bytes, strict=True):
        scores = attention.score_bytes(n, heads=cfg.heads)
        assert 2 * scores <= peak < 2 * scores + 4 * n * cfg.heads * cfg.head_dim * 4
    assert np.all(res["sdpa"].bytes < res["dense"].bytes / 4)


def test_peak_cpu_bytes_sees_a_temporary():
    def fn():
        big = torch.ones(1000, 1000)  # 4 MB, freed when fn returns
        return float(big.sum())

    assert 4_000_000 <= attention_cost.peak_cpu_bytes(fn) < 4_200_000


def test_branches_of_each_setting():
    cfg = attention_cost.AttentionCostConfig.preset("laptop")
    assert attention_cost.branches("dilated_local", 8192, cfg) == list(
        zip(cfg.segment_lengths, cfg.dilation_rates, strict=True)
    )
    assert attention_cost.branches("dilated_longnet", 8192, cfg)[-1] == (8192, 8)
    assert attention_cost.branches("dilated_gigapath", 8192, cfg)[3] == (185363, 8)
    assert attention_cost.branches("dense", 8192, cfg) == []
    # the local setting never reaches past its longest segment; the other two span the sequence
    for method, span in [("dilated_local", 1024), ("dilated_longnet", 8192)]:
        ws, rs = zip(*attention_cost.branches(method, 8192, cfg), strict=True)
        assert max(min(w, 8192) for w in ws) == span


def test_best_time_and_repeats_call_fn():
    calls = []
    t = attention_cost.best_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t >= 0
    assert attention_cost.time_repeats(lambda: None, repeats=4, warmup=0).shape == (4,)


def test_config_validation():
    for p in ("smoke", "laptop", "gpu"):
        attention_cost.AttentionCostConfig.preset(p)
    with pytest.raises(ValueError, match="increasing"):
        attention_cost.AttentionCostConfig(token_counts=(512, 256))
    with pytest.raises(ValueError, match="unknown methods"):
        attention_cost.AttentionCostConfig(methods=("flash",))
    with pytest.raises(ValueError, match="first_segment"):
        attention_cost.AttentionCostConfig(token_counts=(512, 1024), first_segment=1024)
    # a segment its rate does not divide is padded, not rejected
    cfg = attention_cost.AttentionCostConfig(segment_lengths=(100,), dilation_rates=(3,))
    assert cfg.segment_lengths == (100,)
    with pytest.raises(ValueError, match="positive"):
        attention_cost.AttentionCostConfig(segment_lengths=(0,), dilation_rates=(3,))
    with pytest.raises(ValueError, match="profile"):
        attention_cost.AttentionCostConfig.preset("tpu")
