"""The run report (``report.html`` and ``run.json``) and the "What you should see" tables.

After a run, :func:`write_report` writes one page that reads like the chapter's results: per
notebook its title, status and wall time, its headline results as a table (measured value,
target, the paper's value, pass / warn / not comparable, the profile; read from the results files
the notebooks wrote, :mod:`helpers.results`), and each figure with a caption that says what it
shows, also its alt text (:func:`figure_caption`); then the run's environment. Runs into one
folder add up: the page keeps the notebooks of earlier runs that this run did not execute, each
marked with the time of its own run, so two people (or two terminals) sharing a build folder do
not erase each other's report.
After a laptop refresh of the committed notebooks, :func:`store_results` keeps a copy of each
notebook's results file beside the notebooks (``notebooks/results/<notebook>.<profile>.json``),
and :func:`fill_what_you_should_see` and :func:`fill_lesson_page` render the table of the
notebook's "What you should see" cell and of its lesson page (``course/lessons/<notebook>.md``)
from it, between the markers :data:`BEGIN` and :data:`END`.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import platform
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .. import files, results, runtime

logger = logging.getLogger(__name__)

BEGIN = "<!-- results: begin (generated from notebooks/results/; do not edit) -->"
END = "<!-- results: end -->"


@dataclass
class NotebookResult:
    """Outcome of executing one notebook."""

    name: str
    status: str  # "ok" or "failed"
    seconds: float
    output: str
    figures: list[str] = field(default_factory=list)
    error: str = ""
    results: list[dict] = field(default_factory=list)
    title: str = ""
    captions: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    started: str = ""


@dataclass
class RunReport:
    """Outcome of :func:`helpers.course.runner.run_notebooks`."""

    profile: str
    device: str
    out_dir: str
    started: str
    notebooks: list[NotebookResult]
    versions: dict[str, str]
    environment: dict[str, str] = field(default_factory=dict)
    run_id: str = ""

    @property
    def ok(self) -> bool:
        return all(nb.status == "ok" for nb in self.notebooks)

    @property
    def report_path(self) -> Path:
        return Path(self.out_dir) / "report.html"


def committed_results_dir() -> Path:
    """Where the results of the committed notebooks' runs are kept: ``notebooks/results``."""
    return runtime.project_root() / "notebooks" / "results"


def store_results(source: Path, notebook: str, profile: str, folder: Path | None = None) -> Path:
    """Copy a run's results file to ``<folder>/<notebook>.<profile>.json`` (default
    :func:`committed_results_dir`); returns the copy's path."""
    results.read(source)  # refuse to keep something that is not a results file
    folder = folder or committed_results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{notebook}.{profile}.json"
    shutil.copyfile(source, target)
    return target


def what_you_should_see(notebook: str, folder: Path | None = None) -> str | None:
    """The markdown table of ``notebook`` from its committed results files, or ``None`` if there
    are none. Profiles appear in the order laptop, gpu, smoke (those that have a file)."""
    folder = folder or committed_results_dir()
    per_profile = {
        p: results.read(folder / f"{notebook}.{p}.json")
        for p in ("laptop", "gpu", "smoke")
        if (folder / f"{notebook}.{p}.json").exists()
    }
    return results.markdown_table(per_profile) if per_profile else None


def fill_what_you_should_see(
    path: Path, folder: Path | None = None, *, name: str | None = None
) -> bool:
    """Replace the table between :data:`BEGIN` and :data:`END` in the notebook at ``path`` with
    :func:`what_you_should_see` of notebook ``name`` (default: the file's stem); returns whether
    the notebook had the markers and a table."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    table = what_you_should_see(name or Path(path).stem, folder)
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "markdown" or BEGIN not in cell.source or END not in cell.source:
            continue
        if table is None:
            return False
        head, rest = cell.source.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        cell.source = f"{head}{BEGIN}\n{table}\n{END}{tail}"
        changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def fill_lesson_page(path: Path, notebook: str, folder: Path | None = None) -> bool:
    """Replace the table between :data:`BEGIN` and :data:`END` in a lesson page (markdown) with
    :func:`what_you_should_see` of ``notebook``; returns whether the page had the markers."""
    text = Path(path).read_text(encoding="utf-8")
    table = what_you_should_see(notebook, folder)
    if table is None or BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    Path(path).write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")
    return True


def table_in_text(text: str) -> str | None:
    """The table between the markers in ``text`` (``None`` without markers)."""
    if BEGIN in text and END in text:
        return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    return None


def table_in_notebook(path: Path) -> str | None:
    """The table between the markers of the notebook at ``path`` (``None`` without markers)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (table := table_in_text(cell.source)) is not None:
            return table
    return None


STATUS_WORDS = {"pass": "pass", "warn": "warn", "n/a": "not comparable"}
"""How the report words a result's status (:attr:`helpers.results.Result.status`)."""


def notebook_title(path: Path) -> str:
    """The title of a notebook: the first ``# `` heading of its first markdown cell ("" if none)."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            return ""
    return ""


_MARKUP = re.compile(r"[`*_]")


def figure_map_captions(path: Path | None = None) -> dict[str, str]:
    """File name → what the figure shows, from the "figure" column of ``course/figure_map.md``."""
    path = path or runtime.project_root() / "course" / "figure_map.md"
    if not path.exists():
        return {}
    out = {}
    head: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if head is None:
            head = cells
            continue
        row = dict(zip(head, cells, strict=False))
        figure = _MARKUP.sub("", row.get("figure", "")).strip()
        if not figure:
            continue
        where = "; ".join(
            text
            for text in (
                _MARKUP.sub("", row.get("chapter topic", "")).strip(),
                f"section “{row['section (cell)']}”" if row.get("section (cell)") else "",
            )
            if text
        )
        caption = figure[0].upper() + figure[1:] + (f" ({where})" if where else "")
        for name in re.findall(r"`([^`]+\.png)`", row.get("file", "")):
            out[name] = caption
    return out


def figure_caption(path: Path, mapped: dict[str, str] | None = None) -> str:
    """What a saved figure shows: the caption stored by ``plot.savefig(..., caption=…)``, else its
    row of the figure map, else a sentence saying that it has no caption."""
    from ..plot import caption_of

    stored = caption_of(path) if path.exists() else None
    if stored:
        return stored
    mapped = figure_map_captions() if mapped is None else mapped
    if mapped.get(path.name):
        return mapped[path.name]
    return f"{path.stem} (no caption: pass caption= to plot.savefig or list it in the figure map)"


def environment() -> dict[str, str]:
    """The machine and software a run used, as the report's last table shows it."""
    import os

    import torch

    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu cores": str(os.cpu_count()),
        "torch threads": os.environ.get("COURSE_NUM_THREADS", "") or str(torch.get_num_threads()),
        "torch built for cuda": torch.version.cuda or "—",
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    for package in ("imgen-course", "torch", "diffusers", "timm", "numpy", "papermill"):
        env[package] = runtime.version(package)
    return env


def _results_table(items: list[dict], profile: str) -> str:
    """An HTML table of a notebook's recorded results (empty when it recorded none)."""
    esc = html.escape
    if not items:
        return "<p class='none'>This notebook recorded no headline results.</p>"
    rows = "".join(
        f"<tr><td>{esc(r.label)}</td><td class='num'>{esc(r.display())}</td>"
        f"<td>{esc(r.target() or '—')}</td><td>{esc(r.paper or '—')}</td>"
        f"<td class='{r.status.replace('/', '')}'>{STATUS_WORDS[r.status]}</td>"
        f"<td>{esc(profile)}</td></tr>"
        for r in map(results.Result.from_dict, items)
    )
    return (
        "<table class='results'><caption>Headline results</caption><tr><th>result</th>"
        "<th>measured</th><th>target</th><th>paper</th><th>status</th><th>profile</th></tr>"
        f"{rows}</table>"
    )


PROFILE_NOTES = {
    "smoke": "Smoke profile: tiny sizes that only prove the code runs; its numbers are not "
    "comparable with the paper or the targets.",
    "laptop": "Laptop profile: course-scale runs on a CPU; each number is checked against the "
    "target the notebook states.",
    "gpu": "GPU profile: the chapter's figures at full scale.",
}


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive lock on ``root/.report.lock`` (where ``fcntl`` exists) while the report is
    read, merged and written."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: runs into one folder are rarer there
        yield
        return
    with open(root / ".report.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _earlier(root: Path, keep_out: set[str]) -> list[NotebookResult]:
    """Notebooks of earlier runs recorded in ``root/run.json`` that are not in ``keep_out``."""
    try:
        data = json.loads((root / "run.json").read_text(encoding="utf-8"))
        names = {f.name for f in fields(NotebookResult)}
        earlier = [NotebookResult(**{k: v for k, v in nb.items() if k in names})
                   for nb in data.get("notebooks", [])]  # fmt: skip
    except (OSError, ValueError, TypeError, AttributeError):
        return []
    for nb in earlier:
        nb.started = nb.started or str(data.get("started", ""))
    return [nb for nb in earlier if nb.name not in keep_out]


def write_report(report: RunReport) -> Path:
    """Write ``run.json`` and ``report.html`` into the report's folder (atomically), keeping the
    notebooks that earlier runs into the folder executed and this one did not."""
    root = Path(report.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        merged = sorted(
            _earlier(root, {nb.name for nb in report.notebooks}) + list(report.notebooks),
            key=lambda nb: nb.name,
        )
        shown = RunReport(**{**{f.name: getattr(report, f.name) for f in fields(report)},
                             "notebooks": merged})  # fmt: skip
        files.write_text(root / "run.json", json.dumps(asdict(shown), indent=2))
        return _write_page(shown, root)


def _write_page(report: RunReport, root: Path) -> Path:
    esc = html.escape
    total = sum(nb.seconds for nb in report.notebooks)
    rows = "".join(
        f"<tr><td><a href='#{esc(nb.name)}'>{esc(nb.name)}</a></td><td>{esc(nb.title)}</td>"
        f"<td class='{nb.status}'>{nb.status}</td><td>{nb.seconds:.1f} s</td>"
        f"<td>{len(nb.results)}</td><td>{len(nb.figures)}</td></tr>"
        for nb in report.notebooks
    )
    sections = []
    for nb in report.notebooks:
        figs = "".join(
            f"<figure><img src='figures/{esc(f)}' alt='{esc(nb.captions.get(f, f))}'>"
            f"<figcaption><b>{esc(f)}</b> — {esc(nb.captions.get(f, f))}</figcaption></figure>"
            for f in nb.figures
        )
        err = f"<pre class='error'>{esc(nb.error)}</pre>" if nb.error else ""
        other_run = (
            f" · from an earlier run ({esc(nb.started)})"
            if report.run_id and nb.run_id != report.run_id
            else ""
        )
        sections.append(
            f"<section id='{esc(nb.name)}'><h2>{esc(nb.title or nb.name)}</h2>"
            f"<p><code>{esc(nb.name)}</code> · status <b class='{nb.status}'>{nb.status}</b>{other_run} · "
            f"wall time {nb.seconds:.1f} s · "
            f"<a href='{esc(nb.output)}'>executed notebook</a></p>{err}"
            f"{_results_table(nb.results, report.profile)}"
            f"<div class='figs'>{figs or '<p>no figures</p>'}</div></section>"
        )
    env = {"profile": report.profile, "device": report.device, "started": report.started}
    env |= report.environment or {}
    env |= {k: v for k, v in report.versions.items() if k not in env}
    env_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in env.items())
    note = PROFILE_NOTES.get(report.profile, "")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Course run report — {esc(report.profile)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: .8em 0; }} td, th {{ border: 1px solid #ccc; padding: .3em .8em; text-align: left; }}
caption {{ text-align: left; font-weight: bold; padding: .2em 0; }} td.num {{ font-variant-numeric: tabular-nums; }}
.ok, .pass {{ color: #176c2b; }} .failed, .warn {{ color: #b00020; }} .na {{ color: #555; }}
pre.error {{ background: #fee; padding: .5em; white-space: pre-wrap; }}
.figs {{ display: flex; flex-wrap: wrap; gap: 1em; }} figure {{ margin: 0; max-width: 32em; }}
img {{ max-width: 100%; border: 1px solid #eee; }} figcaption {{ font-size: .85em; color: #444; }}
section {{ border-top: 1px solid #ddd; margin-top: 2em; }}
</style></head><body>
<h1>Image generative models — run report</h1>
<p>profile <b>{esc(report.profile)}</b> · device <b>{esc(report.device)}</b> · started {esc(report.started)} ·
total notebook time {total:.1f} s</p>
<p class='note'>{esc(note)}</p>
<table><tr><th>notebook</th><th>title</th><th>status</th><th>wall time</th><th>results</th><th>figures</th></tr>{rows}</table>
{"".join(sections)}
<section id='environment'><h2>Environment</h2><table class='environment'>{env_rows}</table></section>
</body></html>
"""
    return files.write_text(root / "report.html", page)
