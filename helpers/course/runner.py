"""Run the notebooks with papermill: ``python -m helpers run`` and ``python -m helpers refresh``.

``python -m helpers run --profile smoke`` executes every notebook in order, writing
``build/<profile>/notebooks/*.ipynb`` (executed copies), ``build/<profile>/figures/*.png`` (every
figure saved with :func:`helpers.plot.savefig`), ``build/<profile>/results/*.json`` (each
notebook's headline numbers) and the report (:mod:`helpers.course.report`).

The kernel is told what it runs under, in its environment: ``COURSE_PROFILE``,
``COURSE_BUILD_DIR``, ``COURSE_STATIC_WIDGETS=1`` (no frontend will draw widgets, so
:mod:`helpers.widgets` draws static figures), ``COURSE_RUN_ID`` (the id of this run) and
``PYTHONPATH`` starting with this checkout, so the kernel imports the ``helpers`` of the
notebooks it runs, whatever else is installed.

Several runs may share one build folder (a class server, two terminals). Nothing a run did not
make is deleted: a notebook's figures and numbers in the report are those its own run recorded
(the results file names the run and the figures it saved), and the report keeps the notebooks of
earlier runs into the folder, each with the time of the run that produced it.

``refresh`` executes the committed notebooks in place (laptop profile): a notebook is replaced
only when every cell ran, its results file is kept in ``notebooks/results/`` and its "What you
should see" table is rendered from it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from .. import results, runtime
from .report import (
    NotebookResult,
    RunReport,
    environment,
    figure_caption,
    figure_map_captions,
    fill_lesson_page,
    fill_what_you_should_see,
    notebook_title,
    store_results,
    write_report,
)

logger = logging.getLogger(__name__)


def notebook_dir() -> Path:
    """The folder of the course notebooks."""
    return runtime.project_root() / "notebooks"


def copy_notebooks(dest: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the course notebooks, their committed results and the course files to ``dest``.

    Works in a checkout and in an installed kit (``python -m helpers notebooks DEST``): ``dest``
    gets ``NN_name.ipynb``, ``results/`` and ``course/`` (lesson pages, syllabus, solutions).
    Notebooks already in ``dest`` are kept, so that a student's work is never overwritten,
    unless ``overwrite``.

    Returns
    -------
    list of Path
        The files written.
    """
    dest = Path(dest)
    root = runtime.project_root()
    sources = [(p, dest / p.name) for p in list_notebooks()]
    kept = notebook_dir() / "results"
    sources += [(p, dest / "results" / p.name) for p in sorted(kept.glob("*.json"))]
    course = root / "course"
    sources += [
        (p, dest / "course" / p.relative_to(course))
        for p in sorted(course.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and "_build" not in p.parts
    ]
    written = []
    for source, target in sources:
        if target.exists() and not overwrite:
            logger.info("kept %s (already there)", target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    return written


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


def _own_results(produced: Path, run_id: str, figure_dir: Path) -> tuple[list, list[str], str]:
    """``(results, figures, note)`` of the results file if this run wrote it (figures that still
    exist), else empty lists and a note saying whose file it is."""
    if not produced.exists():
        return [], [], ""
    try:
        data = json.loads(produced.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [], [], f"its results file {produced} is unreadable ({err})"
    if data.get("run_id") != run_id:
        return (
            [],
            [],
            (
                f"its results file was written by another run ({data.get('run_id') or 'unknown'}) "
                "into the same folder"
            ),
        )
    figures = [f for f in data.get("figures", []) if (figure_dir / f).exists()]
    return data.get("results", []), figures, ""


def execute(
    notebook: Path,
    output: Path,
    *,
    profile: str,
    build: Path,
    seed: int = 0,
    kernel: str = "python3",
    progress: bool = False,
    run_id: str | None = None,
) -> tuple[float, str]:
    """Execute one notebook with papermill; returns ``(seconds, error message or "")``.

    ``run_id`` (default: a fresh one) is passed to the kernel as ``COURSE_RUN_ID``.
    """
    import papermill as pm

    run_id = run_id or runtime.new_run_id()
    output.parent.mkdir(parents=True, exist_ok=True)
    in_place = output.resolve() == notebook.resolve()
    # In place, papermill writes a copy under build/: the source is replaced only when every cell
    # ran, so a failing refresh never overwrites a committed notebook (the failed run stays there).
    target = build / profile / "refresh" / output.name if in_place else output
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = ""
    checkout = runtime.checkout_root()
    path = os.environ.get("PYTHONPATH", "")
    if checkout is not None:  # the kernel imports this checkout's helpers, whatever is installed
        path = str(checkout) + (os.pathsep + path if path else "")
    with _environ(
        COURSE_PROFILE=profile,
        COURSE_BUILD_DIR=str(build),
        COURSE_STATIC_WIDGETS="1",
        COURSE_RUN_ID=run_id,
        PYTHONPATH=path,
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
            produced = results.path_for(build / profile / "results", notebook.stem)
            mine = _own_results(produced, run_id, build / profile / "figures")
            if produced.exists() and not mine[2]:  # keep the results, render the tables
                kept = notebook.parent / "results"
                store_results(produced, notebook.stem, profile, kept)
                fill_what_you_should_see(target, kept, name=notebook.stem)
                lesson = notebook.parent.parent / "course" / "lessons" / f"{notebook.stem}.md"
                if lesson.exists():
                    fill_lesson_page(lesson, notebook.stem, kept)
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
    """Execute the notebooks in order and write the report (``run.json``, ``report.html``).

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
    if in_place and runtime.checkout_root() is None:
        raise ValueError(
            "refresh rewrites the committed notebooks of a checkout; this kit is installed "
            f"(its notebooks are in {notebook_dir()}): clone the repository to refresh them"
        )
    build = Path(out) if out is not None else runtime.build_dir()
    root = build / name
    figure_dir = root / "figures"
    mapped = figure_map_captions()
    order = {name: i for i, name in enumerate(mapped)}  # the figure map's reading order
    run_id = runtime.new_run_id()
    started = _dt.datetime.now().isoformat(timespec="seconds")
    outcomes = []
    for nb in list_notebooks(only):
        target = nb if in_place else root / "notebooks" / nb.name
        produced = results.path_for(root / "results", nb.stem)
        logger.info("executing %s (profile %s)", nb.name, name)
        seconds, error = execute(
            nb, target, profile=name, build=build, seed=seed, progress=progress, run_id=run_id
        )
        # only what this run recorded: never an earlier or a concurrent run's numbers or figures
        recorded, figures, note = _own_results(produced, run_id, figure_dir)
        if note and not error:
            logger.warning("%s: %s", nb.stem, note)
        figures = sorted(figures, key=lambda f: (order.get(f, len(order)), f))
        outcomes.append(
            NotebookResult(
                name=nb.stem,
                status="failed" if error else "ok",
                seconds=round(seconds, 1),
                output=os.path.relpath(target, root),
                figures=figures,
                error=error or (f"(note: {note})" if note else ""),
                results=recorded,
                title=notebook_title(nb),
                captions={f: figure_caption(figure_dir / f, mapped) for f in figures},
                run_id=run_id,
                started=started,
            )
        )
    report = RunReport(
        profile=name,
        device=str(runtime.detect_device()),
        out_dir=str(root),
        started=started,
        notebooks=outcomes,
        versions={p: runtime.version(p) for p in ("torch", "diffusers", "timm", "papermill")},
        environment=environment(),
        run_id=run_id,
    )
    write_report(report)
    return report
