"""The course's wall time with one core taken by another PyTorch process, against idle.

A student's laptop is rarely idle: a second notebook, a browser, a training job. This script
runs the course (``python -m helpers run``, each notebook's thread count chosen from the free
cores) alternately without and with a background load — a second process running float32 matrix
products on one thread, i.e. one core busy — and prints each run's wall time, the ratio
loaded / idle (the kit aims at ≤ 1.5) and whether *other* processes (beyond the background
load) used the CPU meanwhile: a run they disturbed is flagged, and the ratio of min times over
clean runs is what counts.

``--fixed-threads N`` adds the same two runs with every kernel pinned to ``N`` threads
(``COURSE_NUM_THREADS``), e.g. all cores as PyTorch does by default, for comparison.

It takes a course run's time several times over: run it on a machine you have to yourself.

Usage::

    python benchmarks/course_under_load.py --profile laptop --only 00 03 05   # a subset
    python benchmarks/course_under_load.py --profile smoke --repeats 2
    python benchmarks/course_under_load.py --dry-run   # check the load process, run nothing
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from helpers import runtime

LOAD = (
    "import torch\n"
    "torch.set_num_threads(1)\n"
    "a = torch.randn(512, 512)\n"
    "while True:\n"
    "    a = torch.tanh(a @ a)\n"
)
"""The background load: one thread of float32 matrix products, for ever."""


def start_load() -> subprocess.Popen:
    """Start the one-core background load (killed by :func:`stop_load`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", LOAD], env=env)


def stop_load(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cpu_of(proc: subprocess.Popen | None) -> float:
    """CPU-seconds the background load has used so far (0 without one)."""
    if proc is None:
        return 0.0
    import psutil

    t = psutil.Process(proc.pid).cpu_times()
    return t.user + t.system


def course(
    profile: str, only: list[str], out: str, threads: int | None, load: subprocess.Popen | None
) -> dict:
    """Run the course once: wall seconds, return code, and the cores *other* processes kept busy
    meanwhile (all busy time of the machine minus the course's and the background load's)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("COURSE_NUM_THREADS", "OMP_NUM_THREADS")
    }
    if threads:
        env["COURSE_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "helpers", "run", "--profile", profile, "--out", out]
    for o in only:
        cmd += ["--only", o]
    children, load_cpu, start = os.times(), _cpu_of(load), runtime.cpu_times()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=runtime.project_root())
    end, load_cpu, after = runtime.cpu_times(), _cpu_of(load) - load_cpu, os.times()
    # the course's CPU time: the runner and its kernels, all waited for (children's times)
    course_cpu = sum(after[2:4]) - sum(children[2:4])
    seconds = end.wall - start.wall
    others = None
    if start.busy is not None and end.busy is not None:
        others = max(0.0, end.busy - start.busy - course_cpu - load_cpu) / seconds
    return {"seconds": seconds, "rc": proc.returncode, "others": others, "tail": proc.stderr[-800:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke", help="smoke | laptop (default smoke)")
    parser.add_argument("--only", nargs="+", default=[], help="notebook prefixes (default: all)")
    parser.add_argument("--repeats", type=int, default=2, help="idle/loaded pairs (alternated)")
    parser.add_argument("--fixed-threads", type=int, default=None, help="also pin N threads")
    parser.add_argument("--dry-run", action="store_true", help="check the load only")
    args = parser.parse_args()
    cores, why = runtime.cpu_cores()
    print(f"cores: {why}; load average {runtime.load_average()}")

    load = start_load()
    try:
        time.sleep(1.0)  # torch imported
        used, start = _cpu_of(load), time.perf_counter()
        time.sleep(2.0)
        share = (_cpu_of(load) - used) / (time.perf_counter() - start)
    finally:
        stop_load(load)
    print(f"background load used {share:.2f} of a core (1.00 on a machine with a core to spare)")
    if args.dry_run:
        print("dry run: ratio loaded / idle not measured")
        return

    variants = [("idle", None, False), ("one-core load", None, True)]
    if args.fixed_threads:
        variants += [
            (f"idle, {args.fixed_threads} threads", args.fixed_threads, False),
            (f"one-core load, {args.fixed_threads} threads", args.fixed_threads, True),
        ]
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory() as out:
        for r in range(args.repeats):
            order = variants if r % 2 == 0 else variants[::-1]
            for name, threads, loaded in order:
                proc = start_load() if loaded else None
                try:
                    res = course(args.profile, args.only, out, threads, proc)
                finally:
                    if proc is not None:
                        stop_load(proc)
                res["disturbed"] = res["others"] is None or res["others"] > 0.25
                runs[name].append(res)
                others = res["others"] if res["others"] is not None else float("nan")
                print(
                    f"{name:32s} {res['seconds']:8.1f} s  rc={res['rc']}  other processes "
                    f"{others:.2f} cores{'  DISTURBED' if res['disturbed'] else ''}"
                )
                if res["rc"]:
                    print(res["tail"])

    def best(name: str) -> tuple[float, bool]:
        clean = [x["seconds"] for x in runs[name] if not x["disturbed"] and not x["rc"]]
        return (min(clean), True) if clean else (min(x["seconds"] for x in runs[name]), False)

    print(f"load average now {runtime.load_average()}")
    pairs = [("one-core load", "idle")]
    if args.fixed_threads:
        n = args.fixed_threads
        pairs.append((f"one-core load, {n} threads", f"idle, {n} threads"))
    for loaded, idle in pairs:
        (t_l, ok_l), (t_i, ok_i) = best(loaded), best(idle)
        median = statistics.median(x["seconds"] for x in runs[loaded]) / statistics.median(
            x["seconds"] for x in runs[idle]
        )
        flag = "" if ok_l and ok_i else "  (no clean run on one side: the machine was busy)"
        print(
            f"ratio {loaded} / {idle}: {t_l / t_i:.2f} at min, {median:.2f} at median "
            f"(aim ≤ 1.5){flag}"
        )


if __name__ == "__main__":
    main()
