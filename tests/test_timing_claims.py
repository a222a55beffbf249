"""No notebook asserts a timing: ``make figures`` must not fail because a machine was busy.

Timing cells report what they measured (repeats, spread, exponents with intervals) and warn when
the machine was too noisy; correctness stays asserted. This test reads every assertion of every
notebook and fails on one that depends on a measured time.
"""

import ast
import re

import nbformat
import pytest

from helpers.course import runner

# words (between underscores) of names that carry a measured time, or a quantity fitted to one
TIMING_WORDS = {"s", "sec", "secs", "second", "seconds", "ms", "time", "times", "timing", "timings",
                "slope", "slopes", "exponent", "exponents", "elapsed", "speed", "speedup", "duration",
                "faster", "slower", "wall"}  # fmt: skip
# functions whose result is a clock reading; other called functions are judged by their result's
# name, not their own (``time_map_by_hand(...)`` computes a diffusion time, not a measured one)
CLOCK_CALLS = {"time", "perf_counter", "perf_counter_ns", "process_time", "monotonic", "timeit",
               "repeat", "elapsed_time"}  # fmt: skip


def _is_timing(word: str) -> bool:
    return any(token in TIMING_WORDS for token in re.split(r"[^a-z0-9]+", word.lower()) if token)


def _assertions(source: str) -> list[ast.Assert]:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    return [node for node in ast.walk(tree) if isinstance(node, ast.Assert)]


def _timing_names(node: ast.AST) -> list[str]:
    names = []
    callees = {id(sub.func) for sub in ast.walk(node.test) if isinstance(sub, ast.Call)}
    for sub in ast.walk(node.test):
        word = (
            sub.id
            if isinstance(sub, ast.Name)
            else sub.attr
            if isinstance(sub, ast.Attribute)
            else None
        )
        if word is None and isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            word = sub.value
        if id(sub) in callees and word not in CLOCK_CALLS:
            continue
        if word and (_is_timing(word) or word in CLOCK_CALLS):
            names.append(word)
    return names


def test_the_check_finds_a_timing_assertion():
    bad = (
        "slopes = fit()\nassert slopes['dense'] <= 2.3\nassert t['seconds'] < 5\n"
        "assert time.perf_counter() - t0 < 5\nassert measure_time(f).elapsed < 1\n"
        "assert perf_counter() < deadline"
    )
    good = (
        "assert acc >= 0.9\nassert torch.allclose(a, b)\nassert timesteps[0] == 999 and terms\n"
        "assert torch.allclose(time_map_by_hand(x, schedule), t_star)"
    )
    assert [_timing_names(a) for a in _assertions(bad)] == [
        ["slopes"],
        ["seconds"],
        ["perf_counter", "time"],
        ["elapsed"],
        ["perf_counter"],
    ]
    assert all(not _timing_names(a) for a in _assertions(good))


@pytest.mark.parametrize("path", runner.list_notebooks(), ids=lambda p: p.stem)
def test_no_notebook_asserts_a_timing(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in _assertions(cell.source):
            names = _timing_names(node)
            assert not names, (
                f"{path.name} asserts a timing ({', '.join(names)}): "
                f"{ast.unparse(node)[:120]} — report it with its spread (and a warning) instead"
            )
