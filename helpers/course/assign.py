"""Student and instructor editions of the notebooks, with an autograder (otter-grader).

``python -m helpers assign`` (or ``make assign``) turns each course notebook into an assignment in
the format of `otter-grader <https://otter-grader.readthedocs.io>`_'s ``otter assign``. The course
notebooks stay as they are: the *master* notebook that ``otter assign`` reads is generated from

* the course notebook (its exercise cells, ``answer_k = …`` then
  ``display(exercises.check("NN", k, answer_k))``),
* the reference solutions, ``exercise_k()`` in ``course/solutions/NN_name.py``, and
* the checkers of :mod:`helpers.exercises`, which the autograder's tests call.

Each exercise becomes a question ``exercise_k`` worth one point: its solution block is the
reference function and ``answer_k = exercise_k()``; a public test (no points) says whether an
answer is there; a hidden test (the point) asks the exercise's checker. The output folder holds

* ``student/NN_name.ipynb``: the notebook without outputs, solutions or hidden tests, its install
  step asking for the kit's ``grading`` extra, ``grader.check("exercise_k")`` after each
  exercise; the self-study hints (``exercises.check``) keep working;
* ``instructor/NN_name.ipynb``: the same with the solutions and the hidden tests;
* ``autograder/NN_name.zip``: the autograder bundle (for ``otter run``, or Gradescope);
* ``master/NN_name.ipynb``: the generated master notebook, to adapt and assign again with
  ``otter assign``.

:func:`grade` grades a submission locally, without Docker, under the ``smoke`` profile (the
answers do not depend on the profile; the notebook is executed top to bottom to grade it).

Why otter-grader rather than nbgrader: otter's autograder is one zip file that grades a notebook
locally (``otter run``, no container and no database) or on Gradescope, and its tests are plain
Python; nbgrader needs a course directory with a grade database and a Jupyter server extension.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import runtime
from . import launch
from .runner import list_notebooks

logger = logging.getLogger(__name__)

__all__ = [
    "Assignment",
    "ExerciseCell",
    "Grade",
    "assign",
    "exercise_cells",
    "grade",
    "master_notebook",
    "solution_code",
]

CHECK = re.compile(r"exercises\.check\(\s*\"(\d{2})\"\s*,\s*(\d+)\s*,\s*([A-Za-z_]\w*)\s*\)")
"""An exercise cell's check: ``exercises.check("NN", k, answer_k)``."""

QUESTION = "exercise_{number}"
"""The name of an exercise's question in the autograder (``grader.check("exercise_1")``)."""

GRADING_EXTRA = "grading"
"""The kit's extra that brings otter-grader (asked for by the student edition's install step)."""


@dataclass(frozen=True)
class ExerciseCell:
    """Where an exercise is answered in a notebook."""

    index: int
    notebook: str
    number: int
    variable: str


@dataclass(frozen=True)
class Assignment:
    """What :func:`assign` wrote for one notebook."""

    stem: str
    student: Path
    instructor: Path
    autograder: Path
    master: Path
    questions: tuple[str, ...]


@dataclass(frozen=True)
class Grade:
    """The autograder's verdict on one submission."""

    submission: Path
    score: float
    possible: float
    by_question: dict[str, float]
    log: str

    def __str__(self) -> str:
        return f"{self.score:g} / {self.possible:g}  {self.submission.name}"


def exercise_cells(nb, stem: str) -> list[ExerciseCell]:
    """The exercise cells of a notebook, in order.

    An exercise cell is a code cell that assigns the answer variable and shows
    ``exercises.check("NN", k, answer_k)``, where ``NN`` is the notebook's number.

    Raises
    ------
    ValueError
        A cell checks two exercises, checks another notebook's exercise, never assigns its answer
        variable, or an exercise appears twice.
    """
    found: list[ExerciseCell] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        checks = CHECK.findall(cell.source)
        if not checks:
            continue
        if len(checks) > 1:
            raise ValueError(f"{stem}: cell {index} checks {len(checks)} exercises; one per cell")
        notebook, number, variable = checks[0]
        if notebook != stem[:2]:
            raise ValueError(f"{stem}: cell {index} checks exercise {notebook}.{number}")
        if not re.search(rf"^{variable}\s*=", cell.source, flags=re.M):
            raise ValueError(
                f"{stem}: cell {index} checks {variable} but does not assign it "
                f"(expected a line `{variable} = None  # your answer`)"
            )
        found.append(ExerciseCell(index, notebook, int(number), variable))
    numbers = [c.number for c in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{stem}: an exercise is checked in two cells ({numbers})")
    return found


def solution_code(solutions: Path, number: int, variable: str) -> str:
    """The solution block of exercise ``number``: the imports and helpers of the solutions file,
    the function ``exercise_<number>`` as written there, and ``<variable> = exercise_<number>()``.

    Raises
    ------
    LookupError
        The solutions file has no ``exercise_<number>``.
    """
    text = solutions.read_text(encoding="utf-8")
    tree = ast.parse(text)
    lines = text.splitlines()
    name = f"exercise_{number}"

    def segment(node: ast.stmt) -> str:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return "\n".join(lines[first - 1 : node.end_lineno])

    preamble, function = [], None
    for node in tree.body:
        is_docstring = (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        )
        if isinstance(node, ast.FunctionDef) and node.name == name:
            function = segment(node)
        elif isinstance(node, ast.FunctionDef) and re.fullmatch(r"exercise_\d+", node.name):
            continue
        elif not is_docstring:
            preamble.append(segment(node))
    if function is None:
        raise LookupError(f"{solutions} has no function {name}()")
    parts = ["\n".join(preamble)] if preamble else []
    parts += [function, f"{variable} = {name}()"]
    return "\n\n".join(parts)


def _config(stem: str) -> str:
    return f"""# ASSIGNMENT CONFIG
name: {stem}
requirements: requirements.txt
overwrite_requirements: false
run_tests: false
init_cell: false
check_all_cell: false
export_cell: false
solutions_pdf: false
template_pdf: false
generate: true
tests:
  files: false
  ok_format: false"""


def _public_test(variable: str) -> str:
    return f'''""" # BEGIN TEST CONFIG
failure_message: no answer yet; write it into {variable} and run its cell
""" # END TEST CONFIG
def test_answered({variable}):
    assert {variable} is not None, "no answer yet: write it into {variable} and run its cell"'''


def _hidden_test(notebook: str, number: int, variable: str) -> str:
    return f'''""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
def test_correct({variable}):
    from helpers import exercises

    assert {variable} is not None, "no answer"
    feedback = exercises.check("{notebook}", {number}, {variable})
    assert feedback.correct, str(feedback)'''


def _with_solution(source: str, variable: str, solution: str) -> str:
    """The exercise cell with the solution block after the line that assigns ``variable``."""
    lines = source.splitlines()
    at = next(i for i, line in enumerate(lines) if re.match(rf"{variable}\s*=", line))
    block = ["# BEGIN SOLUTION NO PROMPT", *solution.splitlines(), "# END SOLUTION"]
    return "\n".join(lines[: at + 1] + block + lines[at + 1 :])


def master_notebook(path: Path, solutions: Path | None = None, *, url: str | None = None):
    """The otter-assign master notebook of a course notebook.

    Parameters
    ----------
    path : Path
        A course notebook ``NN_name.ipynb``.
    solutions : Path, optional
        Its reference solutions (default ``course/solutions/NN_name.py``).
    url : str, optional
        Repository URL for the install step (default :func:`helpers.course.launch.repository_url`).

    Returns
    -------
    nbformat.NotebookNode
        Outputs cleared, launch links removed, the install step asking for the ``grading``
        extra; one question per exercise.

    Raises
    ------
    ValueError
        The notebook has no exercise cell (see :func:`exercise_cells`).
    """
    import nbformat

    path = Path(path)
    stem = path.stem
    solutions = solutions or runtime.project_root() / "course" / "solutions" / f"{stem}.py"
    nb = nbformat.read(path, as_version=4)
    cells = exercise_cells(nb, stem)
    if not cells:
        raise ValueError(f"{stem} has no exercise cell (`display(exercises.check(...))`)")
    launch.prepare_notebook(nb, stem, url, extras=(GRADING_EXTRA,), links=False)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)

    raw, code = nbformat.v4.new_raw_cell, nbformat.v4.new_code_cell
    by_index = {c.index: c for c in cells}
    out = [raw(_config(stem))]
    for index, cell in enumerate(nb.cells):
        exercise = by_index.get(index)
        if exercise is None:
            out.append(cell)
            continue
        if exercise is cells[0]:
            out.append(
                code(
                    "import otter\n\n"
                    f'grader = otter.Notebook("{stem}.ipynb")  # runs the autograder\'s public '
                    'checks: grader.check("exercise_1")'
                )
            )
        name = QUESTION.format(number=exercise.number)
        solution = solution_code(solutions, exercise.number, exercise.variable)
        cell.source = _with_solution(cell.source, exercise.variable, solution)
        out += [
            raw(f"# BEGIN QUESTION\nname: {name}\npoints: [0, 1]"),
            raw("# BEGIN SOLUTION"),
            cell,
            raw("# END SOLUTION"),
            raw("# BEGIN TESTS"),
            code(_public_test(exercise.variable)),
            code(_hidden_test(exercise.notebook, exercise.number, exercise.variable)),
            raw("# END TESTS"),
            raw("# END QUESTION"),
        ]
    nb.cells = out
    return nb


def assign(
    out: str | Path | None = None,
    *,
    only: Sequence[str] | None = None,
    url: str | None = None,
) -> list[Assignment]:
    """Write the student and instructor editions and the autograder of the notebooks.

    Parameters
    ----------
    out : str or Path, optional
        Output folder (default ``<build>/assign``): ``student/``, ``instructor/``,
        ``autograder/``, ``master/``.
    only : sequence of str, optional
        Notebook prefixes or stems (default all).
    url : str, optional
        Repository URL for the install step (default from ``pyproject.toml``).

    Returns
    -------
    list of Assignment

    Raises
    ------
    RuntimeError
        otter-grader is not installed (the kit's ``grading`` extra).
    """
    import nbformat

    otter_assign = _otter().assign.main
    url = url or launch.repository_url()
    out = Path(out) if out is not None else runtime.build_dir() / "assign"
    folders = {name: out / name for name in ("student", "instructor", "autograder", "master")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    (folders["master"] / "requirements.txt").write_text(
        launch.install_requirement(url, extras=(GRADING_EXTRA,)) + "\n", encoding="utf-8"
    )
    written = []
    for path in list_notebooks(only):
        nb = master_notebook(path, url=url)
        master = folders["master"] / path.name
        nbformat.write(nb, master)
        questions = tuple(
            QUESTION.format(number=c.number)
            for c in exercise_cells(nbformat.read(path, as_version=4), path.stem)
        )
        with tempfile.TemporaryDirectory(prefix=f"assign-{path.stem}-") as tmp:
            result = Path(tmp) / "dist"
            with _quiet():
                otter_assign(str(master), str(result), no_pdfs=True, no_run_tests=True)
            bundles = sorted((result / "autograder").glob(f"{path.stem}-autograder_*.zip"))
            if len(bundles) != 1:
                raise RuntimeError(f"otter assign made {len(bundles)} autograder zips for {path}")
            targets = {
                "student": folders["student"] / path.name,
                "instructor": folders["instructor"] / path.name,
                "autograder": folders["autograder"] / f"{path.stem}.zip",
            }
            shutil.move(result / "student" / path.name, targets["student"])
            shutil.move(result / "autograder" / path.name, targets["instructor"])
            shutil.move(bundles[0], targets["autograder"])
        written.append(
            Assignment(
                path.stem,
                targets["student"],
                targets["instructor"],
                targets["autograder"],
                master,
                questions,
            )  # fmt: skip
        )
        logger.info("assigned %s: %d exercises", path.stem, len(questions))
    return written


def _otter():
    """The otter package (with its ``assign`` and ``run`` modules), or a RuntimeError saying
    how to install it."""
    try:
        import otter
        import otter.assign
        import otter.run
    except ImportError as err:
        raise RuntimeError(
            "otter-grader is not installed: `pip install imgen-course[grading]` "
            "(in a checkout `make setup` installs it)"
        ) from err
    return otter


@contextlib.contextmanager
def _quiet():
    """Keep otter's own messages (it prints and logs at INFO) out of the caller's output."""
    otter_logger = logging.getLogger("otter")
    level = otter_logger.level
    otter_logger.setLevel(logging.WARNING)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        otter_logger.setLevel(level)


def autograder_for(submission: Path, folder: Path | None = None) -> Path:
    """The autograder zip of a submission: ``<folder>/<assignment name>.zip``, the name read
    from the notebook's otter metadata (default folder ``<build>/assign/autograder``)."""
    import nbformat

    nb = nbformat.read(submission, as_version=4)
    name = nb.metadata.get("otter", {}).get("assignment_name")
    if not name:
        raise ValueError(f"{submission} is not a notebook of the student edition (no otter name)")
    folder = folder or runtime.build_dir() / "assign" / "autograder"
    path = folder / f"{name}.zip"
    if not path.exists():
        raise FileNotFoundError(f"no autograder {path}: run `python -m helpers assign` first")
    return path


def grade(
    submission: str | Path, autograder: str | Path | None = None, *, profile: str = "smoke"
) -> Grade:
    """Grade one submitted notebook locally (``otter run``, no Docker).

    The notebook is executed top to bottom in a kernel of this Python, under ``profile``
    (``COURSE_PROFILE``; ``smoke`` by default, which keeps grading fast: the answers do not depend
    on the profile), then the autograder's tests run, hidden ones included.

    Parameters
    ----------
    submission : str or Path
        A notebook of the student edition, answered.
    autograder : str or Path, optional
        Its autograder zip (default :func:`autograder_for`).
    profile : str
        The profile the notebook runs under.

    Returns
    -------
    Grade
        Score, points possible, points per question, and otter's log.

    Raises
    ------
    RuntimeError
        otter-grader is not installed (the kit's ``grading`` extra).
    """
    otter_run = _otter().run.main
    submission = Path(submission).resolve()
    autograder = Path(autograder) if autograder else autograder_for(submission)
    name = runtime.resolve_profile(profile)
    previous = {k: os.environ.get(k) for k in ("COURSE_PROFILE", "COURSE_STATIC_WIDGETS")}
    os.environ.update(COURSE_PROFILE=name, COURSE_STATIC_WIDGETS="1")
    try:
        with _quiet() as buffer:
            results = otter_run(
                str(submission), autograder=str(autograder.resolve()), output_dir=None,
                no_logo=True,
            )  # fmt: skip
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    by_question = {q: float(results.get_score(q)) for q in results.test_files}
    return Grade(
        submission, float(results.total), float(results.possible), by_question, buffer.getvalue()
    )
