"""Student and instructor editions: the autograder gives full marks to the instructor edition and
zero to the untouched student edition, and no solution text reaches the student edition."""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

import nbformat
import pytest

from helpers import exercises, runtime
from helpers.course import assign, runner

pytest.importorskip("otter", reason="the grading extra is not installed: pip install -e .[grading]")
from otter.test_files import ExceptionTestFile  # noqa: E402

SOLUTIONS = runtime.project_root() / "course" / "solutions"
STEMS = [p.stem for p in runner.list_notebooks()]


@pytest.fixture(scope="module")
def assigned(tmp_path_factory) -> dict[str, assign.Assignment]:
    out = tmp_path_factory.mktemp("assign")
    return {a.stem: a for a in assign.assign(out)}


def _solution_lines(stem: str) -> dict[int, list[str]]:
    """Per exercise, the lines of its reference function that carry the solution (its body and
    docstring, at least 12 characters that are not blank)."""
    path = SOLUTIONS / f"{stem}.py"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("exercise_"):
            body = lines[node.lineno : node.end_lineno]  # after the `def` line
            out[int(node.name.split("_")[1])] = [
                ln.strip() for ln in body if len(ln.strip().strip('"')) >= 12
            ]
    return out


def _answer_cells(path: Path) -> dict[int, str]:
    nb = nbformat.read(path, as_version=4)
    return {c.number: nb.cells[c.index].source for c in assign.exercise_cells(nb, path.stem)}


def _text(path: Path) -> str:
    """Every cell's source and the notebook's metadata (where otter keeps public tests)."""
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells) + json.dumps(nb.metadata, ensure_ascii=False)


def _tests(bundle: Path) -> dict[str, str]:
    with zipfile.ZipFile(bundle) as z:
        return {Path(n).stem: z.read(n).decode() for n in z.namelist() if n.startswith("tests/")}


def test_every_notebook_becomes_an_assignment(assigned):
    assert sorted(assigned) == STEMS
    for stem, a in assigned.items():
        registered = [f"exercise_{ex.number}" for ex in exercises.listing(stem[:2])]
        assert list(a.questions) == registered, stem
        assert sorted(_tests(a.autograder)) == sorted(registered), stem
        for path in (a.student, a.instructor, a.master):
            assert path.exists() and path.name == f"{stem}.ipynb"


@pytest.mark.parametrize("stem", STEMS)
def test_no_solution_text_in_the_student_edition(assigned, stem):
    a = assigned[stem]
    student, instructor = _text(a.student), _text(a.instructor)
    for number, lines in _solution_lines(stem).items():
        assert lines, f"{stem} exercise {number}: no solution text to look for"
        for line in lines:
            assert line not in student, f"{stem}: solution text leaked: {line}"
            assert line in instructor, f"{stem}: the instructor edition lacks: {line}"
    assert "def exercise_" not in student and "BEGIN SOLUTION" not in student
    # hidden tests stay in the instructor edition and the autograder
    assert "test_correct" not in student and "test_correct" in instructor
    for source in _tests(a.autograder).values():
        assert "hidden=True" in source and "exercises.check(" in source
    # the edition is handed out clean: no outputs of the committed run
    nb = nbformat.read(a.student, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("stem", STEMS)
def test_self_study_checks_keep_working_in_the_student_edition(assigned, stem):
    cells = _answer_cells(assigned[stem].student)
    for ex in exercises.listing(stem[:2]):
        assert (
            f'exercises.check("{ex.notebook}", {ex.number}, answer_{ex.number})' in cells[ex.number]
        )
    text = _text(assigned[stem].student)
    assert "imgen-course[grading] @ git+" in text  # installs otter with the kit
    assert 'grader.check("exercise_1")' in text


@pytest.mark.parametrize("stem", STEMS)
def test_autograder_tests_full_marks_for_instructor_zero_for_student(assigned, stem):
    """The autograder's own test files, run on the answers each edition's cells produce."""
    a = assigned[stem]
    tests = _tests(a.autograder)
    for edition, expected in ((a.instructor, 1.0), (a.student, 0.0)):
        for number, source in _answer_cells(edition).items():
            env = {"exercises": exercises, "display": lambda *_: None}
            exec(compile(source, f"{edition.name} exercise {number}", "exec"), env)
            test = ExceptionTestFile.from_string(tests[f"exercise_{number}"])
            test.run(env)
            assert test.possible == 1 and test.score == expected, (
                f"{edition.parent.name} {stem} exercise {number}: {test.score}"
            )


def test_grading_executes_the_notebook_full_marks_and_zero(assigned):
    """`otter run` (no Docker) on notebook 00: the whole notebook executes under smoke."""
    a = assigned["00_setup_and_tour"]
    instructor = assign.grade(a.instructor, a.autograder)
    assert instructor.possible == len(a.questions) and instructor.score == instructor.possible, (
        instructor.log[-3000:]
    )
    bundle = assign.autograder_for(a.student, a.autograder.parent)  # by the notebook's name
    assert bundle == a.autograder
    student = assign.grade(a.student, bundle)
    assert student.possible == len(a.questions) and student.score == 0, student.log[-3000:]
    assert set(student.by_question) == set(a.questions)


def test_exercise_cells_off_the_convention_are_refused():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('display(exercises.check("03", 1, answer_1))')]
    with pytest.raises(ValueError, match="does not assign it"):
        assign.exercise_cells(nb, "03_ddpm_ddim")
    nb.cells = [nbformat.v4.new_code_cell('answer_1 = 2\nexercises.check("04", 1, answer_1)')]
    with pytest.raises(ValueError, match="checks exercise 04.1"):
        assign.exercise_cells(nb, "03_ddpm_ddim")
