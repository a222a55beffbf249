"""Every exercise has a check, every reference solution passes it, wrong answers fail."""

import importlib.util

import pytest

from helpers import exercises, runtime
from helpers.course import runner
from helpers.exercises import feedback

SOLUTIONS = runtime.project_root() / "course" / "solutions"


def _solutions(stem: str):
    path = SOLUTIONS / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NOTEBOOKS = [p.stem for p in runner.list_notebooks()]


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_reference_solutions_pass_their_checks(stem):
    listed = exercises.listing(stem[:2])
    assert listed, f"notebook {stem} has no checked exercises"
    module = _solutions(stem)
    for ex in listed:
        solve = getattr(module, f"exercise_{ex.number}")
        feedback = exercises.check(ex.notebook, ex.number, solve())
        assert feedback.correct, f"{stem} exercise {ex.number}: {feedback}"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebooks_point_to_their_checks(stem):
    import nbformat

    nb = nbformat.read(runner.notebook_dir() / f"{stem}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    for ex in exercises.listing(stem[:2]):
        assert f'exercises.check("{ex.notebook}", {ex.number},' in text, (
            f"{stem} does not show the check of exercise {ex.number}"
        )


def _revealed(answer, message: str) -> bool:
    """Whether ``message`` spells out the numeric ``answer`` (as an int or to 3 significant digits)."""
    forms = (
        {f"{answer:.3g}", f"{answer:.2f}", str(answer)}
        if isinstance(answer, float)
        else {str(answer)}
    )
    return any(form in message for form in forms if len(form.strip("-0.")) >= 2)


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_every_check_rejects_wrong_answers_without_revealing_the_right_one(stem):
    module = _solutions(stem)
    for ex in exercises.listing(stem[:2]):
        right = getattr(module, f"exercise_{ex.number}")()
        if isinstance(right, str):
            wrongs = [right + "-not", "something else"]
        else:
            wrongs = [2 * right + 3, -right - 7]  # off in both directions, never equal to right
        for wrong in wrongs:
            feedback = exercises.check(ex.notebook, ex.number, wrong)
            assert not feedback.correct, f"{stem} exercise {ex.number} accepts {wrong!r}"
            if not isinstance(right, str):
                assert not _revealed(right, feedback.message), (stem, ex.number, feedback.message)


def test_wrong_answers_fail_without_revealing():
    fb = exercises.check("00", 1, 3)
    assert not fb.correct and "too low" in str(fb)
    assert "100" not in str(fb)
    assert not exercises.check("00", 3, "gpu").correct
    assert "answer one of" in str(exercises.check("00", 3, "fast"))
    assert not exercises.check(
        "00", 1, "many"
    ).correct  # unreadable answers are feedback, not crashes


def test_unknown_exercise():
    with pytest.raises(ValueError, match="no exercise 00.9"):
        exercises.check("00", 9, 1)
    with pytest.raises(TypeError):
        exercises.check(0, 1, 1)


def test_building_blocks():
    assert feedback.close(1.0, 1.01, rel=0.02)
    assert not feedback.close(2.0, 1.0)
    assert feedback.choice("Blue", "blue", ("red", "blue"))
    assert str(feedback.Feedback(True, "ok")).startswith("✓")


def test_registry_is_explicit():
    """Every notebook module lists its exercises; the registry is exactly their union."""
    import pkgutil

    import helpers.exercises as package

    named = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("nb")
    )
    assert [m.__name__.rsplit(".", 1)[1] for m in exercises.MODULES] == named  # none forgotten
    listed = [ex for m in exercises.MODULES for ex in m.EXERCISES]
    assert sorted((ex.notebook, ex.number) for ex in listed) == sorted(exercises.REGISTRY)
    assert all(m.EXERCISES[0].notebook == m.__name__[-2:] for m in exercises.MODULES)
