"""The kit installs from a built wheel and runs anywhere: outside a checkout, from any folder.

The wheel is built from a copy of the sources and installed, with pip and no network, into a
fresh virtual environment that reuses this environment's packages for the dependencies (a
``.pth`` file; the editable install of this checkout is not active there). Then, from a folder
outside the repository: the notebooks are copied out, notebooks 00 and 04 run under the smoke
profile with the course runner, and the copied notebook 00 is opened and executed in a kernel as
Jupyter would. Outputs must land in the user's data and cache folders, and nothing may be
written into the repository or into the installed package.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import runtime

ROOT = runtime.checkout_root()
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "build", "cache", "__pycache__", "*.egg-info", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".ipynb_checkpoints", "_build",
)  # fmt: skip

pytestmark = pytest.mark.skipif(ROOT is None, reason="needs the sources: run from a checkout")


def _snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Relative path → (size, mtime) of every file under ``folder`` (except top-level ``skip``)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            st = (Path(dirpath) / name).stat()
            out[str(rel / name)] = (st.st_size, st.st_mtime_ns)
    return out


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the kit's wheel installed: (python, environment, temporary root)."""
    tmp = tmp_path_factory.mktemp("install")
    src, wheels, venv = tmp / "src", tmp / "wheels", tmp / "venv"
    shutil.copytree(ROOT, src, ignore=SKIP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSE_")}
    env.pop("PYTHONPATH", None)
    env.update(
        PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg",
        XDG_DATA_HOME=str(tmp / "user-data"), XDG_CACHE_HOME=str(tmp / "user-cache"),
        COURSE_NUM_THREADS=os.environ.get("COURSE_NUM_THREADS", "1"),
    )  # fmt: skip
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(wheels), str(src)],
        tmp, env,
    )  # fmt: skip
    (wheel,) = wheels.glob("imgen_course-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env
    ).strip()
    # the dependencies: this environment's site-packages, after the venv's own
    Path(purelib, "zz_reuse_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run(
        [str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--force-reinstall",
         "-q", str(wheel)],
        tmp, env,
    )  # fmt: skip
    return python, env, tmp


def test_wheel_installs_with_its_dependencies_satisfied(installed):
    python, env, tmp = installed
    out = _run(
        [str(python), "-c", _CHECK_REQUIREMENTS], tmp, env
    )  # every runtime requirement of the wheel's metadata, met by an installed version
    assert out.strip().endswith("requirements met"), out


_CHECK_REQUIREMENTS = """
from importlib import metadata
from packaging.requirements import Requirement
bad = []
for text in metadata.requires("imgen-course"):
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        bad.append(f"{req} (missing)")
        continue
    if not req.specifier.contains(version, prereleases=True):
        bad.append(f"{req} (installed {version})")
assert not bad, bad
print("requirements met")
"""


def test_runs_anywhere_and_writes_nothing_into_the_repository(installed):
    python, env, tmp = installed
    work = tmp / "elsewhere"
    work.mkdir()
    before = _snapshot(ROOT, skip=(".git", ".venv"))
    where = _run(
        [str(python), "-c",
         "import helpers.runtime as r; print(r.__file__); print(r.project_root()); "
         "print(r.build_dir()); print(r.cache_dir()); print(r.checkout_root())"],
        work, env,
    ).split()  # fmt: skip
    module, material, build, cache, checkout = map(Path, where)
    assert str(ROOT) not in str(module) and module.is_relative_to(python.parent.parent)
    assert material.name == runtime.MATERIAL_DIR and (material / "notebooks").is_dir()
    assert build == tmp / "user-data" / "imgen-course" / "build"
    assert cache == tmp / "user-cache" / "imgen-course" and checkout == Path("None")
    packed = _snapshot(material)

    # the notebooks and course files come out of the installed package
    out = _run([str(python), "-m", "helpers", "notebooks", "course"], work, env)
    assert "copied" in out
    copied = work / "course"
    assert (copied / "00_setup_and_tour.ipynb").exists()
    assert (copied / "course" / "syllabus.md").exists()
    assert (copied / "course" / "solutions" / "00_setup_and_tour.py").exists()

    # the runner, from any folder
    out = _run(
        [str(python), "-m", "helpers", "run", "--profile", "smoke", "--only", "00",
         "--only", "04"],
        work, env,
    )  # fmt: skip
    assert "ok" in out and "failed" not in out, out
    report = build / "smoke" / "report.html"
    assert report.exists() and str(report) in out
    assert (build / "smoke" / "results" / "00_setup_and_tour.json").exists()
    assert any(cache.glob("*.safetensors")), "notebook 04 caches its models in the user's cache"

    # opening a copied notebook: a kernel of the venv executes it where it lies
    out = _run([str(python), "-c", _OPEN_NOTEBOOK, str(copied / "00_setup_and_tour.ipynb")],
               work, dict(env, COURSE_PROFILE="smoke"))  # fmt: skip
    assert "profile=smoke" in out and "installed the course kit" not in out, out

    after = _snapshot(ROOT, skip=(".git", ".venv"))
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"the installed kit wrote into the repository: {changed[:20]}"
    assert _snapshot(material) == packed, "the run wrote into the installed package"


_OPEN_NOTEBOOK = """
import sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient
path = Path(sys.argv[1])
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, kernel_name="python3", timeout=600,
               resources={"metadata": {"path": str(path.parent)}}).execute()
setup = next(c for c in nb.cells if c.cell_type == "code" and "runtime.setup(" in c.source)
print("".join(o.get("text", "") for o in setup.outputs))
"""


def test_outside_a_checkout_outputs_go_to_the_user_folders(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "checkout_root", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_BUILD_DIR")
    monkeypatch.delenv("COURSE_CACHE_DIR")
    assert runtime.build_dir() == tmp_path / "data" / "imgen-course" / "build"
    assert runtime.cache_dir() == tmp_path / "cache" / "imgen-course"
    assert runtime.cache_path("03_x", 1).parent == tmp_path / "cache" / "imgen-course"
    # the environment variables still decide
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    assert runtime.build_dir() == tmp_path / "b" and runtime.cache_dir() == tmp_path / "c"


def test_in_a_checkout_outputs_stay_in_the_checkout(monkeypatch):
    monkeypatch.delenv("COURSE_BUILD_DIR")
    monkeypatch.delenv("COURSE_CACHE_DIR")
    assert runtime.project_root() == ROOT
    assert runtime.build_dir() == ROOT / "build" and runtime.cache_dir() == ROOT / "data" / "cache"


def test_an_installed_kit_refuses_to_refresh_its_packed_notebooks(monkeypatch):
    from helpers.course import runner

    monkeypatch.setattr(runtime, "checkout_root", lambda: None)
    with pytest.raises(ValueError, match="clone the repository"):
        runner.run_notebooks("smoke", only=["00"], in_place=True)


def test_notebooks_command_copies_without_overwriting(tmp_path):
    from helpers.__main__ import main
    from helpers.course import runner

    assert main(["notebooks", str(tmp_path)]) == 0
    first = runner.list_notebooks()[0]
    copied = tmp_path / first.name
    assert copied.read_bytes() == first.read_bytes()
    assert (tmp_path / "course" / "figure_map.md").exists()
    copied.write_text("a student's work")
    assert main(["notebooks", str(tmp_path)]) == 0
    assert copied.read_text() == "a student's work"
    assert main(["notebooks", str(tmp_path), "--overwrite"]) == 0
    assert copied.read_bytes() == first.read_bytes()
