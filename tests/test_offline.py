"""Offline, literally: smoke notebooks run in a network namespace where only loopback is up.

``unshare -n`` (as root) or ``unshare -rn`` (an unprivileged user namespace) gives the process a
network namespace of its own with no interface but ``lo``; ``ip link set lo up`` lets the
Jupyter kernel talk to papermill over 127.0.0.1, and nothing else is reachable. Notebook 00 loads
every built-in dataset; notebook 04 builds its encoder and diffusion model with an empty cache
(the path where a pretrained encoder or a download would be tempting). Set
``COURSE_OFFLINE_NOTEBOOKS=all`` (or ``01,03``) to run others.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from helpers import runtime

ROOT = runtime.project_root()
NOTEBOOKS = os.environ.get("COURSE_OFFLINE_NOTEBOOKS", "00,04")


def _namespace() -> list[str]:
    """The ``unshare`` command that works here, or skip saying why none does."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare or ip is not installed (util-linux, iproute2): cannot isolate")
    for flags in (["-n"], ["-rn"]):
        probe = subprocess.run(
            ["unshare", *flags, "sh", "-c", "ip link set lo up"], capture_output=True
        )
        if probe.returncode == 0:
            return ["unshare", *flags]
    pytest.skip(
        "unshare -n is not permitted here (needs root, or unprivileged user namespaces: "
        "sysctl kernel.unprivileged_userns_clone=1); the offline check did not run"
    )


def test_the_namespace_has_no_network():
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('93.184.216.34', 80), timeout=3)\n"
        "except OSError as err:\n"
        "    print('unreachable', err)\n"
    )
    out = subprocess.run(
        [*_namespace(), "sh", "-c", f'ip link set lo up && exec "{sys.executable}" -c "$0"', code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "unreachable" in out.stdout, out.stdout + out.stderr


def test_smoke_notebooks_pass_with_only_loopback(tmp_path):
    only = [] if NOTEBOOKS == "all" else ["--only", NOTEBOOKS]
    env = {
        **os.environ,
        "COURSE_CACHE_DIR": str(tmp_path / "cache"),  # nothing cached: everything is made here
        "COURSE_NUM_THREADS": os.environ.get("COURSE_NUM_THREADS", "1"),
    }
    env.pop("HF_HUB_OFFLINE", None)  # not told to stay offline: it must be so by itself
    cmd = f'ip link set lo up && exec "{sys.executable}" -m helpers run --profile smoke "$@"'
    out = subprocess.run(
        [*_namespace(), "sh", "-c", cmd, "sh", *only, "--out", str(tmp_path / "build")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    ran = [line for line in out.stdout.splitlines() if line.strip().startswith("ok")]
    expected = len(NOTEBOOKS.split(",")) if NOTEBOOKS != "all" else len(list(
        (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
    ))  # fmt: skip
    assert len(ran) == expected, out.stdout
