"""Run the notebooks with papermill and build the report; check the environment.

``python -m helpers run --profile smoke`` executes every notebook in order, writing
``build/<profile>/notebooks/*.ipynb`` (executed copies), ``build/<profile>/figures/*.png`` (every
figure saved with :func:`helpers.plot.savefig`), ``results.json`` and ``report.html``: one page with
each notebook's figures, its wall time, the profile and the device.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import runtime

logger = logging.getLogger(__name__)


@dataclass
class NotebookResult:
    """Outcome of executing one notebook."""

    name: str
    status: str  # "ok" or "failed"
    seconds: float
    output: str
    figures: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class RunReport:
    """Outcome of :func:`run_notebooks`."""

    profile: str
    device: str
    out_dir: str
    started: str
    notebooks: list[NotebookResult]
    versions: dict[str, str]

    @property
    def ok(self) -> bool:
        return all(nb.status == "ok" for nb in self.notebooks)

    @property
    def report_path(self) -> Path:
        return Path(self.out_dir) / "report.html"


def notebook_dir() -> Path:
    """The folder of the course notebooks."""
    return runtime.project_root() / "notebooks"


def list_notebooks(only: Sequence[str] | None = None, folder: Path | None = None) -> list[Path]:
    """Course notebooks in teaching order (``NN_name.ipynb``), optionally only some.

    Parameters
    ----------
    only : sequence of str, optional
        Prefixes (``"01"``) or stems (``"01_deep_image_prior"``) to keep.
    folder : Path, optional
        Default :func:`notebook_dir`.
    """
    paths = sorted((folder or notebook_dir()).glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return paths
    wanted = [w.strip() for item in only for w in item.split(",") if w.strip()]
    chosen = [
        p
        for p in paths
        if any(p.stem == w or p.stem.startswith(w + "_") or p.name == w for w in wanted)
    ]
    missing = [
        w
        for w in wanted
        if not any(p.stem == w or p.stem.startswith(w + "_") or p.name == w for p in paths)
    ]
    if missing:
        names = ", ".join(p.stem for p in paths)
        raise ValueError(f"no notebook matches {', '.join(missing)}; notebooks are: {names}")
    return chosen


@contextmanager
def _environ(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _figures_of(stem: str, figure_dir: Path) -> list[str]:
    prefix = stem.split("_", 1)[0] + "_"
    return sorted(p.name for p in figure_dir.glob(prefix + "*.png"))


def execute(
    notebook: Path,
    output: Path,
    *,
    profile: str,
    build: Path,
    seed: int = 0,
    kernel: str = "python3",
    progress: bool = False,
) -> tuple[float, str]:
    """Execute one notebook with papermill; returns ``(seconds, error message or "")``."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    in_place = output.resolve() == notebook.resolve()
    # In place, papermill writes a copy under build/: the source is replaced only when every cell
    # ran, so a failing refresh never overwrites a committed notebook (the failed run stays there).
    target = build / profile / "refresh" / output.name if in_place else output
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = ""
    with _environ(
        COURSE_PROFILE=profile,
        COURSE_BUILD_DIR=str(build),
        MPLBACKEND="module://matplotlib_inline.backend_inline",
    ):
        try:
            pm.execute_notebook(
                str(notebook),
                str(target),
                # in place, keep the source's own parameters cell: COURSE_PROFILE selects the profile
                parameters=None if in_place else {"PROFILE": profile, "SEED": seed},
                kernel_name=kernel,
                progress_bar=progress,
                cwd=str(notebook.parent),
            )
        except Exception as err:  # papermill wraps kernel errors; keep going, report it
            error = f"{type(err).__name__}: {err}".strip()[:4000]
    if in_place and target.exists():
        if error:
            error += f"\n(the notebook was left unchanged; the failed run is in {target})"
        else:
            strip_run_metadata(target)
            shutil.move(target, output)
    return time.perf_counter() - start, error


def strip_run_metadata(path: Path) -> None:
    """Drop papermill's per-cell timing metadata so committed notebooks diff cleanly."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def run_notebooks(
    profile: str = "auto",
    *,
    only: Sequence[str] | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    in_place: bool = False,
    progress: bool = False,
) -> RunReport:
    """Execute the notebooks in order and write ``results.json`` and ``report.html``.

    Parameters
    ----------
    profile : str
        ``"auto"``, ``"smoke"``, ``"laptop"`` or ``"gpu"``.
    only : sequence of str, optional
        Notebook prefixes or stems to run (default all).
    out : str or Path, optional
        Build root (default ``build/``); output goes to ``<out>/<profile>/``.
    seed : int
        Passed to each notebook's ``SEED`` parameter.
    in_place : bool
        Write the executed notebooks over the sources (to refresh committed outputs).
    progress : bool
        Show papermill's per-cell progress bar.

    Returns
    -------
    RunReport
    """
    name = runtime.resolve_profile(profile)
    build = Path(out) if out is not None else runtime.build_dir()
    root = build / name
    figure_dir = root / "figures"
    results = []
    for nb in list_notebooks(only):
        target = nb if in_place else root / "notebooks" / nb.name
        for stale in _figures_of(nb.stem, figure_dir):  # the report lists this run's figures only
            (figure_dir / stale).unlink()
        logger.info("executing %s (profile %s)", nb.name, name)
        seconds, error = execute(
            nb, target, profile=name, build=build, seed=seed, progress=progress
        )
        results.append(
            NotebookResult(
                name=nb.stem,
                status="failed" if error else "ok",
                seconds=round(seconds, 1),
                output=os.path.relpath(target, root),
                figures=_figures_of(nb.stem, figure_dir),
                error=error,
            )
        )
    report = RunReport(
        profile=name,
        device=str(runtime.detect_device()),
        out_dir=str(root),
        started=_dt.datetime.now().isoformat(timespec="seconds"),
        notebooks=results,
        versions={p: runtime.version(p) for p in ("torch", "diffusers", "timm", "papermill")},
    )
    write_report(report)
    return report


def write_report(report: RunReport) -> Path:
    """Write ``results.json`` and ``report.html`` into the report's folder."""
    root = Path(report.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    data = asdict(report)
    (root / "results.json").write_text(json.dumps(data, indent=2))
    esc = html.escape
    total = sum(nb.seconds for nb in report.notebooks)
    rows = "".join(
        f"<tr><td><a href='#{esc(nb.name)}'>{esc(nb.name)}</a></td><td class='{nb.status}'>{nb.status}</td>"
        f"<td>{nb.seconds:.1f} s</td><td>{len(nb.figures)}</td></tr>"
        for nb in report.notebooks
    )
    sections = []
    for nb in report.notebooks:
        figs = "".join(
            f"<figure><img src='figures/{esc(f)}' alt='{esc(f)}'><figcaption>{esc(f)}</figcaption></figure>"
            for f in nb.figures
        )
        err = f"<pre class='error'>{esc(nb.error)}</pre>" if nb.error else ""
        sections.append(
            f"<section id='{esc(nb.name)}'><h2>{esc(nb.name)}</h2>"
            f"<p>status <b class='{nb.status}'>{nb.status}</b> · wall time {nb.seconds:.1f} s · "
            f"<a href='{esc(nb.output)}'>executed notebook</a></p>{err}<div class='figs'>{figs or '<p>no figures</p>'}</div></section>"
        )
    versions = " · ".join(f"{k} {esc(v)}" for k, v in report.versions.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Course run report — {esc(report.profile)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .8em; }}
.ok {{ color: #176c2b; }} .failed {{ color: #b00020; }} pre.error {{ background: #fee; padding: .5em; white-space: pre-wrap; }}
.figs {{ display: flex; flex-wrap: wrap; gap: 1em; }} figure {{ margin: 0; max-width: 32em; }}
img {{ max-width: 100%; border: 1px solid #eee; }} figcaption {{ font-size: .8em; color: #555; }}
</style></head><body>
<h1>Image generative models — run report</h1>
<p>profile <b>{esc(report.profile)}</b> · device <b>{esc(report.device)}</b> · started {esc(report.started)} ·
total notebook time {total:.1f} s</p><p>{versions}</p>
<table><tr><th>notebook</th><th>status</th><th>wall time</th><th>figures</th></tr>{rows}</table>
{"".join(sections)}
</body></html>
"""
    path = root / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# doctor


@dataclass
class Check:
    """One line of :func:`doctor`'s findings."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def doctor() -> list[Check]:
    """Check Python, packages, device, kernel, built-in data and writable folders."""
    import sys

    checks = [
        Check(
            "python",
            sys.version_info >= (3, 11),
            sys.version.split()[0],
            "install Python 3.11 or newer",
        )
    ]
    for pkg in (
        "torch",
        "torchvision",
        "diffusers",
        "timm",
        "scikit-image",
        "scikit-learn",
        "nilearn",
        "papermill",
        "nbval",
        "ipywidgets",
        "safetensors",
    ):
        v = runtime.version(pkg)
        checks.append(
            Check(pkg, v != "missing", v, "run `make setup` (or `pip install -e .[dev]`)")
        )
    device = runtime.detect_device()
    checks.append(
        Check("device", True, f"{device} (profile auto → {runtime.resolve_profile('auto')})")
    )
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
        checks.append(
            Check(
                "kernel python3",
                "python3" in specs,
                ", ".join(sorted(specs)) or "none",
                "pip install ipykernel",
            )
        )
    except Exception as err:  # pragma: no cover - depends on the environment
        checks.append(
            Check("kernel python3", False, str(err), "pip install ipykernel jupyter_client")
        )
    from . import datasets

    for name in datasets.available(external_too=False):
        try:
            ds = datasets.load(
                name, n=1 if name not in ("retina", "camera", "astronaut") else None, size=16
            )
            checks.append(Check(f"data {name}", True, f"{tuple(ds.images.shape)}"))
        except Exception as err:
            checks.append(
                Check(
                    f"data {name}",
                    False,
                    f"{type(err).__name__}: {err}",
                    "reinstall scikit-image / scikit-learn / nilearn",
                )
            )
    for folder in (runtime.build_dir(), runtime.cache_dir()):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".write-test"
            probe.write_text("ok")
            probe.unlink()
            checks.append(Check(f"writable {folder.name}/", True, str(folder)))
        except OSError as err:
            checks.append(
                Check(f"writable {folder.name}/", False, str(err), f"make {folder} writable")
            )
    return checks
