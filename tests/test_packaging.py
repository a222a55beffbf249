"""pyproject.toml and environment.yml list the same dependencies with the same ranges."""

import re
import tomllib

from helpers import runtime

ROOT = runtime.project_root()


def _pyproject() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    extras = project["optional-dependencies"]
    return set(project["dependencies"]).union(*extras.values())


def _environment() -> set[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    specs = set()
    for line in lines:
        m = re.match(r'\s*-\s*"(.+)"\s*$', line)
        if m and not m.group(1).startswith("-e"):
            specs.add(m.group(1))
    return specs


def test_environment_matches_pyproject():
    assert _environment() == _pyproject()


def test_environment_installs_this_folder():
    # conda runs the pip section from the folder that holds environment.yml: the project root
    lines = [ln.strip() for ln in (ROOT / "environment.yml").read_text().splitlines()]
    assert '- "-e .[dev,site,grading]"' in lines


def test_no_exact_pins():
    for spec in _pyproject():
        assert "==" not in spec, f"exact pin {spec}: use a range"


def test_stack_is_declared():
    names = {re.split(r"[<>=!~ \[]", s)[0].lower() for s in _pyproject()}
    for pkg in (
        "torch",
        "torchvision",
        "diffusers",
        "timm",
        "numpy",
        "matplotlib",
        "scikit-image",
        "scikit-learn",
        "nilearn",
        "safetensors",
        "tqdm",
        "ipywidgets",
        "jupyterlab",
        "papermill",
        "nbval",
        "pytest",
        "hypothesis",
        "ruff",
    ):
        assert pkg in names, pkg


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make figures") < 2000 and readme.index("make test") < 2000
