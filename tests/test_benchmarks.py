"""Every benchmark script runs end to end on a tiny problem and prints its ratio.

Behaviour only: the timings themselves are never asserted (machines are noisy).
"""

import os
import subprocess
import sys

import pytest

from helpers import runtime

ROOT = runtime.project_root()

CASES = {
    "attention.py": (["--quick", "--repeats", "1"], "exponent"),
    "dip.py": (["--quick", "--iterations", "5", "--repeats", "1"], "ratio dip.fit / plain loop"),
    "large_image.py": (["--quick", "--repeats", "1"], "ratio per-window loop / batched"),
    "sampling.py": (["--quick", "--repeats", "1"], "ratio ours/diffusers"),
    "course_under_load.py": (["--dry-run"], "background load used"),
    "memory_format.py": (
        ["--steps", "1", "--repeats", "1", "--only", "ssl"],
        "ratio contiguous / channels_last",
    ),
    # a dry run on the CPU: notebook 00's gpu profile with a few steps (the numbers mean nothing)
    "gpu_check.py": (
        ["--cpu", "--step-scale", "0.001", "--only", "00"],
        "gpu check results written",
    ),
    "memorization.py": (
        [
            "--generated",
            "32",
            "--training",
            "128",
            "--size",
            "16",
            "--pairs",
            "50",
            "--repeats",
            "1",
        ],
        "speed-up over loop",
    ),
}


def test_every_benchmark_is_covered():
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")}
    assert scripts == set(CASES), f"benchmarks without a test case: {scripts - set(CASES)}"


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_and_prints_its_ratio(script, tmp_path):
    args, marker = CASES[script]
    env = {**os.environ, "MPLBACKEND": "Agg", "COURSE_BUILD_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert marker in proc.stdout, proc.stdout[-2000:]
