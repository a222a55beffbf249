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


def test_sizes_that_do_not_fit_on_the_gpu_are_skipped(monkeypatch):
    cfg = attention_cost.AttentionCostConfig.preset(
        "smoke", token_counts=(64, 128), repeats=1, warmup=0
    )
    assert attention_cost._fits("dense", 10**6, cfg, torch.device("cpu"))  # no limit on the CPU
    monkeypatch.setattr(attention_cost, "_fits", lambda m, n, c, d: not (m == "dense" and n > 64))
    res = attention_cost.measure(cfg, generator=torch.Generator().manual_seed(0), progress=False)
    assert res["dense"]["seconds"][0] > 0 and np.isnan(res["dense"]["seconds"][1])
    assert np.all(res["sdpa"]["seconds"] > 0)


def test_measure_runs_and_reports_analytic_bytes():
    cfg = attention_cost.AttentionCostConfig.preset(
        "smoke", token_counts=(64, 128), repeats=1, warmup=0
    )
    res = attention_cost.measure(cfg, generator=torch.Generator().manual_seed(0), progress=False)
    assert set(res) == {"dense", "sdpa", "dilated"}
    assert np.all(res["dense"]["seconds"] > 0)
    assert res["dense"]["bytes"].tolist() == [
        attention.score_bytes(n, heads=cfg.heads) for n in (64, 128)
    ]
    assert np.all(res["sdpa"]["bytes"] == 0)


def test_best_time_calls_fn():
    calls = []
    t = attention_cost.best_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t >= 0


def test_config_validation():
    for p in ("smoke", "laptop", "gpu"):
        attention_cost.AttentionCostConfig.preset(p)
    with pytest.raises(ValueError, match="increasing"):
        attention_cost.AttentionCostConfig(token_counts=(512, 256))
    with pytest.raises(ValueError, match="unknown methods"):
        attention_cost.AttentionCostConfig(methods=("flash",))
    with pytest.raises(ValueError, match="dilation rate"):
        attention_cost.AttentionCostConfig(segment_lengths=(100,), dilation_rates=(3,))
    with pytest.raises(ValueError, match="profile"):
        attention_cost.AttentionCostConfig.preset("tpu")
