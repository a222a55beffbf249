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
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from .. import results, runtime
from .report import (
    NotebookResult,
    RunReport,
    contention_note,
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


def machine_of(produced: Path, run_id: str) -> dict:
    """How a notebook's run shared the machine, from its results file's header (threads, cores,
    load averages, other processes' CPU use, contention; :meth:`helpers.runtime.Run.machine`),
    if this run wrote the file; else empty."""
    try:
        data = json.loads(produced.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("run_id") != run_id:
        return {}
    keys = ("threads", "cpu_cores", "load_average_start", "load_average", "cpu_others", "contended")
    return {k: data[k] for k in keys if k in data}


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
    threads: int | None = None,
) -> tuple[float, str]:
    """Execute one notebook with papermill; returns ``(seconds, error message or "")``.

    ``run_id`` (default: a fresh one) is passed to the kernel as ``COURSE_RUN_ID``; ``threads``
    (default: the kernel chooses, :func:`helpers.runtime.choose_threads`) as
    ``COURSE_NUM_THREADS`` and ``OMP_NUM_THREADS``.
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
    fixed = {"COURSE_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)} if threads else {}
    with _environ(
        **fixed,
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


def job_environments(
    jobs: int, *, cuda_devices: Sequence[str] | None = None, cpus: int | None = None
) -> list[dict[str, str]]:
    """The kernel environment of each of ``jobs`` notebooks run at once.

    With CUDA devices, job ``i`` sees one of them (``CUDA_VISIBLE_DEVICES``, round robin when
    there are more jobs than devices); on every machine each job gets an equal share of the
    cores as its thread limit (``COURSE_NUM_THREADS`` and ``OMP_NUM_THREADS``), so that the jobs
    do not oversubscribe the CPU.

    Parameters
    ----------
    jobs : int
        Notebooks run at once (≥ 1).
    cuda_devices : sequence of str, optional
        Device ids to share out; default: ``$CUDA_VISIBLE_DEVICES`` when set, else every device
        torch sees (none without CUDA).
    cpus : int, optional
        Cores to share out; default: those this process may use (:func:`helpers.runtime.cpu_cores`).

    Examples
    --------
    >>> job_environments(2, cuda_devices=["0", "1"], cpus=16)[1]
    {'COURSE_NUM_THREADS': '8', 'OMP_NUM_THREADS': '8', 'CUDA_VISIBLE_DEVICES': '1'}
    >>> job_environments(3, cuda_devices=[], cpus=2)[2]
    {'COURSE_NUM_THREADS': '1', 'OMP_NUM_THREADS': '1'}
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    if cuda_devices is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            cuda_devices = [d.strip() for d in visible.split(",") if d.strip()]
        else:
            import torch

            cuda_devices = [str(i) for i in range(torch.cuda.device_count())]
    threads = str(max(1, (cpus if cpus is not None else runtime.cpu_cores()[0]) // jobs))
    out = []
    for i in range(jobs):
        env = {"COURSE_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        if cuda_devices:
            env["CUDA_VISIBLE_DEVICES"] = cuda_devices[i % len(cuda_devices)]
        out.append(env)
    return out


def _execute_as_job(env: Mapping[str, str], *args, **kwargs) -> tuple[float, str]:
    """:func:`execute` in a process of its own that first takes the job's environment (one
    :func:`job_environments` entry), which the kernel it starts inherits."""
    os.environ.update(env)
    return execute(*args, **kwargs)


def strip_run_metadata(path: Path) -> None:
    """Drop papermill's per-cell timing metadata so committed notebooks diff cleanly."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


def _start_jobs(
    notebooks: list[Path], jobs: int, *, root: Path, in_place: bool, **kwargs
) -> dict[Path, object]:
    """With ``jobs`` > 1, start every notebook, at most ``jobs`` at once, each in a process of its
    own with a free :func:`job_environments` entry; ``{notebook: future}``, else ``{}``."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    if jobs == 1 or len(notebooks) < 2:
        return {}
    import multiprocessing
    import queue
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    jobs = min(jobs, len(notebooks))
    context = multiprocessing.get_context("spawn")  # a clean process: no inherited torch state
    free: queue.Queue[dict[str, str]] = queue.Queue()
    for env in job_environments(jobs):
        free.put(env)

    def job(nb: Path) -> tuple[float, str]:
        env = free.get()  # one device or core share, given back when the notebook is done
        try:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as process:
                output = nb if in_place else root / "notebooks" / nb.name
                return process.submit(_execute_as_job, env, nb, output, **kwargs).result()
        finally:
            free.put(env)

    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = {nb: pool.submit(job, nb) for nb in notebooks}
    pool.shutdown(wait=False)  # the futures still complete; no new work is accepted
    return futures


def run_notebooks(
    profile: str = "auto",
    *,
    only: Sequence[str] | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    in_place: bool = False,
    progress: bool = False,
    jobs: int = 1,
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
    jobs : int
        Notebooks executed at once, each in its own process with its own device or share of
        the cores (:func:`job_environments`); one report at the end, in teaching order.

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
    # absolute: the kernels run in the notebooks folder, where a relative path means another place
    build = Path(out).resolve() if out is not None else runtime.build_dir()
    root = build / name
    figure_dir = root / "figures"
    mapped = figure_map_captions()
    order = {name: i for i, name in enumerate(mapped)}  # the figure map's reading order
    run_id = runtime.new_run_id()
    started = _dt.datetime.now().isoformat(timespec="seconds")
    outcomes = []
    notebooks = list_notebooks(only)
    pending = _start_jobs(notebooks, jobs, root=root, in_place=in_place, profile=name,
                          build=build, seed=seed, run_id=run_id)  # fmt: skip
    for nb in notebooks:
        target = nb if in_place else root / "notebooks" / nb.name
        produced = results.path_for(root / "results", nb.stem)
        if pending:  # started in parallel: wait for this one, in teaching order
            logger.info("executing %s (profile %s) as one of %d jobs", nb.name, name, jobs)
            seconds, error = pending[nb].result()
            chosen = f"its job's share of the cores (--jobs {jobs})"
        else:
            # from the cores free now (COURSE_NUM_THREADS fixes it)
            threads = runtime.choose_threads()
            logger.info("executing %s (profile %s) with %s", nb.name, name, threads.describe())
            seconds, error = execute(nb, target, profile=name, build=build, seed=seed,
                                     progress=progress, run_id=run_id, threads=threads.threads)  # fmt: skip
            chosen = threads.describe()
        # only what this run recorded: never an earlier or a concurrent run's numbers or figures
        recorded, figures, note = _own_results(produced, run_id, figure_dir)
        machine = machine_of(produced, run_id) | {"threads_chosen": chosen}
        if machine.get("contended"):
            logger.warning("%s: %s", nb.stem, contention_note(machine))
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
                machine=machine,
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
