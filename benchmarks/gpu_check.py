"""The gpu profile of every notebook on a CUDA machine: wall time, peak memory, headline numbers.

Ready to run as it is on a machine with CUDA (one or several GPUs)::

    make gpu-check JOBS=4                               # the same through make
    python benchmarks/gpu_check.py                      # every notebook, 10 min limit each
    python benchmarks/gpu_check.py --jobs 4             # four GPUs, one notebook on each
    python benchmarks/gpu_check.py --only 03 --limit 900

Each notebook runs under ``python -m helpers run --profile gpu`` in its own process, killed at
``--limit`` seconds. The results file (``--out``, default ``build/gpu_check/gpu_check.json``, and a
Markdown table beside it) holds per notebook: status, wall time, the peak GPU memory torch
allocated (recorded by the notebook's last cell, :meth:`helpers.runtime.Run.record_run_time`),
and every headline number with its ``gpu`` expectation, so that the expectations ("expected, not
measured") can be replaced by what was measured.

Without CUDA it measures nothing and says so (exit status 0; ``make bench`` leaves it out);
``--cpu --step-scale 0.001`` instead runs the gpu profile's sizes on the CPU with a few steps
(``COURSE_STEP_SCALE``), a dry run of the script itself: its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from helpers import results, runtime
from helpers.course import runner


def check_notebook(stem: str, *, out: Path, limit: float, env: dict[str, str]) -> dict:
    """Run one notebook in the gpu profile in a process of its own; its row of the results."""
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "helpers", "run", "--profile", "gpu", "--only", stem,
           "--out", str(out)]  # fmt: skip
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit)
        status = "ok" if proc.returncode == 0 else "failed"
        tail = (proc.stdout + proc.stderr)[-1500:] if proc.returncode else ""
    except subprocess.TimeoutExpired:
        status, tail = "timeout", f"stopped after {limit:.0f} s"
    row: dict = {"notebook": stem, "status": status,
                 "wall_seconds": round(time.perf_counter() - started, 1), "error": tail}  # fmt: skip
    path = results.path_for(out / "gpu" / "results", stem)
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        row["device"] = data.get("device", "")
        row["results"] = data.get("results", [])
        for r in row["results"]:
            if r.get("key") == "gpu_peak_memory":
                row["peak_memory_gb"] = r.get("value")
            if r.get("key") == "run_time":
                row["run_time_s"] = r.get("value")
    return row


def markdown(rows: list[dict], header: dict) -> str:
    """The results as a Markdown table (one line per notebook), then each headline number."""
    lines = [
        f"# gpu profile check — {header['device_name']}, torch {header['torch']}, {header['date']}",
        "",
        "| notebook | status | wall time (s) | peak GPU memory (GB) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        peak = r.get("peak_memory_gb", "")
        lines.append(f"| {r['notebook']} | {r['status']} | {r['wall_seconds']} | {peak} |")
    lines.append("")
    for r in rows:
        for res in r.get("results", []):
            lines.append(f"- {r['notebook']} · {res.get('label')}: {res.get('value')} "
                         f"{res.get('unit', '')} (expected: {res.get('gpu') or '—'})")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", help="notebook prefix (repeat); default all")
    parser.add_argument("--limit", type=float, default=runtime.BUDGET_SECONDS["gpu"],
                        help="seconds per notebook before it is stopped (default: the budget)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="notebooks at once, one GPU each")
    parser.add_argument("--out", default=None, help="folder (default build/gpu_check)")
    parser.add_argument("--cpu", action="store_true", help="run without CUDA (a dry run)")
    parser.add_argument("--step-scale", default=None, help="COURSE_STEP_SCALE for the kernels")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.cpu:
        print("gpu check: no CUDA device here, nothing measured; the notebooks' gpu values stay "
              "'expected, not measured' (run this on a CUDA machine)")  # fmt: skip
        return 0
    out = Path(args.out) if args.out else runtime.build_dir() / "gpu_check"
    out.mkdir(parents=True, exist_ok=True)
    stems = [p.stem for p in runner.list_notebooks(args.only)]
    env = dict(os.environ)
    if args.step_scale:
        env[runtime.STEP_SCALE_ENV] = args.step_scale
    slots = runner.job_environments(args.jobs)
    from concurrent.futures import ThreadPoolExecutor

    def one(i_stem: tuple[int, str]) -> dict:
        i, stem = i_stem
        return check_notebook(stem, out=out, limit=args.limit, env=env | slots[i % len(slots)])

    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        rows = list(pool.map(one, enumerate(stems)))
    cuda = torch.cuda.is_available()
    header = {
        "device_name": torch.cuda.get_device_name(0)
        if cuda
        else "cpu (dry run, not a measurement)",
        "gpus": torch.cuda.device_count() if cuda else 0,
        "torch": runtime.version("torch"),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "step_scale": args.step_scale or "1",
        "limit_seconds": args.limit,
    }
    (out / "gpu_check.json").write_text(json.dumps({**header, "notebooks": rows}, indent=1))
    (out / "gpu_check.md").write_text(markdown(rows, header), encoding="utf-8")
    for r in rows:
        print(f"{r['status']:>8}  {r['wall_seconds']:7.1f} s  peak {r.get('peak_memory_gb', '—')} GB  "
              f"{r['notebook']}")  # fmt: skip
    print(f"gpu check results written to {out / 'gpu_check.json'}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
