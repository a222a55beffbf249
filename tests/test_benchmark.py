"""Tests for helpers.benchmark: interleaving, contention flags and summaries (never timings)."""

from __future__ import annotations

import pytest
import torch

from helpers import benchmark, runtime


def test_variants_alternate_with_a_rotating_order():
    order: list[str] = []
    variants = {name: (lambda name=name: order.append(name)) for name in "abc"}
    c = benchmark.interleaved(variants, repeats=3, warmup=1)
    assert order[:3] == list("abc")  # warm-up
    assert order[3:] == list("abc") + list("bca") + list("cab")
    assert all(len(s) == 3 for s in c.samples.values())
    assert c.threads == torch.get_num_threads() and c.cores >= 1


def _comparison(flags: dict[str, list[bool]]) -> benchmark.Comparison:
    samples = {
        name: [benchmark.Sample(float(i + 1), 1.5 if f else 0.0, f) for i, f in enumerate(fs)]
        for name, fs in flags.items()
    }
    return benchmark.Comparison(samples, threads=1, cores=2, load_start=(1.0, 1.0, 1.0))


def test_contended_samples_are_dropped_when_clean_ones_remain():
    c = _comparison({"a": [True, False, False, True], "b": [True, True, True, True]})
    assert c.kept("a") == [2.0, 3.0] and c.dropped("a") == 2
    assert c.min("a") == 2.0 and c.median("a") == 2.5
    assert c.kept("b") == [1.0, 2.0, 3.0, 4.0] and c.dropped("b") == 0  # all kept, flagged
    assert c.all_contended()
    assert "ALL contended" in c.line("b") and "2 contended dropped" in c.line("a")
    assert "6 of 8 samples contended" in c.load()
    assert c.ratio("a", "b") == (2.0, 2.5 / 2.5)


def test_scale_applies_to_summaries():
    c = _comparison({"a": [False, False]})
    c = benchmark.Comparison(c.samples, 1, 2, scale={"a": 0.5})
    assert c.kept("a") == [0.5, 1.0]


def test_a_busy_neighbour_marks_samples_contended():
    assert runtime.contended(1.6, cores=2, threads=1)
    assert not runtime.contended(0.5, cores=2, threads=1)


@pytest.mark.parametrize("kw", [{"repeats": 0}, {"repeats": True}, {"warmup": -1}])
def test_bad_arguments_are_refused(kw):
    with pytest.raises(ValueError, match="repeats|warmup"):
        benchmark.interleaved({"a": lambda: None}, **kw)
    with pytest.raises(ValueError, match="at least one"):
        benchmark.interleaved({})


def test_gemm_rates_names_every_backend_on_cpu():
    rates = benchmark.gemm_rates([(32, 32, 32)], repeats=1)
    assert "torch.mm" in rates and "numpy" in rates and all(v > 0 for v in rates.values())


def test_cpu_time_is_recorded_and_compared():
    c = benchmark.interleaved({"a": lambda: sum(range(200000)), "b": lambda: None}, repeats=4)
    assert all(x.cpu is not None and x.cpu >= 0 for s in c.samples.values() for x in s)
    assert c.cpu_median("a") > 0 and "CPU median" in c.line("a")
    samples = {
        "a": [benchmark.Sample(9.0, 1.8, True, 2.0)] * 4,
        "b": [benchmark.Sample(3.0, 0.0, False, 1.0)] * 4,
    }
    assert benchmark.Comparison(samples, 1, 2).cpu_ratio("a", "b") == 2.0
