"""Build the course website (Jupyter Book) from ``course/`` and the executed notebooks, offline.

``python -m helpers site`` (or ``make site``) assembles ``build/site/src`` — the lesson pages,
syllabus, figure map and instructor guide from ``course/`` plus copies of the notebooks — and
runs ``jupyter-book build`` on it. The output folder is the kit's own: a new or empty folder is
marked with a file ``.course-site``, and the kit only ever replaces what is inside a marked
folder; a non-empty folder without the mark is refused, never emptied. Notebooks are not re-executed: the committed ones carry the
outputs of a real laptop-profile run, or ``notebooks_from`` points at a ``make figures`` build.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .. import runtime

logger = logging.getLogger(__name__)


MARKER = ".course-site"
"""The file that marks an output folder as made by :func:`build_site`."""


def claim_output(out: Path, *, default: bool = False) -> Path:
    """Make ``out`` the site's folder, or refuse: only folders the kit made are ever overwritten.

    A missing or empty folder is created and marked (:data:`MARKER`); a marked folder is reused;
    the default folder (``<build>/site``) is the kit's by definition.

    Raises
    ------
    ValueError
        ``out`` is a file, or a non-empty folder without the mark (someone else's files).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose a new or empty folder")
    if out.is_dir() and not (out / MARKER).exists() and any(out.iterdir()) and not default:
        raise ValueError(
            f"--out {out} is not empty and was not made by `python -m helpers site`; the site "
            "replaces what is in its folder, so choose a new or empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `python -m helpers site`; its contents are replaced\n")
    return out


def _copy_tree(src: Path, dst: Path) -> None:
    for path in src.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def assemble(out: Path, *, notebooks_from: Path | None = None) -> Path:
    """Copy ``course/`` and the notebooks into ``out/src``; returns that folder.

    ``out`` must be new, empty or made by the kit (:func:`claim_output`).
    """
    root = runtime.project_root()
    out = claim_output(Path(out), default=Path(out) == runtime.build_dir() / "site")
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    _copy_tree(root / "course", src)
    nb_src = notebooks_from or root / "notebooks"
    if not nb_src.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {nb_src}")
    (src / "notebooks").mkdir(parents=True, exist_ok=True)
    for nb in sorted(nb_src.glob("[0-9][0-9]_*.ipynb")):
        shutil.copy2(nb, src / "notebooks" / nb.name)
    return src


def build_site(out: str | Path | None = None, *, notebooks_from: str | Path | None = None) -> Path:
    """Build the site; returns the path of ``index.html``.

    Parameters
    ----------
    out : str or Path, optional
        Output folder (default ``build/site``); the HTML lands in ``<out>/html``.
    notebooks_from : str or Path, optional
        Folder of executed notebooks to publish (default: the committed ``notebooks/``).

    Raises
    ------
    RuntimeError
        When ``jupyter-book`` is missing or the build fails (its log is included).
    ValueError
        When ``out`` is someone else's non-empty folder (:func:`claim_output`).
    OSError
        When ``out`` cannot be written (the error names the path).
    """
    out = Path(out) if out is not None else runtime.build_dir() / "site"
    src = assemble(out, notebooks_from=Path(notebooks_from) if notebooks_from else None)
    exe = Path(sys.executable).with_name("jupyter-book")
    if not exe.exists():
        found = shutil.which("jupyter-book")
        if found is None:
            raise RuntimeError(
                "jupyter-book is not installed: run `pip install -e .[site]` (or `make site`)"
            )
        exe = Path(found)
    build = out / "jb"
    cmd = [
        str(exe),
        "build",
        str(src),
        "--path-output",
        str(build),
        "--builder",
        "html",
        "--keep-going",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    warnings = build_warnings(proc.stdout + proc.stderr)
    (out / "warnings.txt").write_text("".join(f"{w}\n" for w in warnings))
    for warning in warnings:
        logger.warning("site: %s", warning)
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(build / "_build" / "html", html)
    logger.info("site built: %s", html / "index.html")
    return html / "index.html"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def build_warnings(log: str) -> list[str]:
    """The Sphinx warnings in a ``jupyter-book build`` log (colour codes removed).

    Sphinx keeps going past a link to a missing page and only warns, so the build writes these
    to ``warnings.txt`` next to the HTML, where the tests look for them.
    """
    lines = (_ANSI.sub("", line).strip() for line in log.splitlines())
    return [line for line in lines if "WARNING:" in line]
