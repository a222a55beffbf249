"""Shared test settings: headless plotting, a private build folder, small thread count."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")

# Build folder of the test session as `make test` set it, before the per-test isolation below:
# nbval executes the notebooks (smoke profile) first and their figures land under it.
SESSION_BUILD_DIR = os.environ.get("COURSE_BUILD_DIR")


@pytest.fixture(autouse=True)
def _isolated_build(tmp_path_factory, monkeypatch):
    """Tests never write into the project's build/ or data/cache/."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("COURSE_BUILD_DIR", str(root / "build"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(root / "cache"))
    yield
    from helpers import runtime

    runtime.reset()


@pytest.fixture
def no_profile_env(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    return os.environ


@pytest.fixture(scope="session")
def smoke_run_00(tmp_path_factory):
    """Notebook 00 run once by the course runner under the smoke profile: (report, build root).

    Shared by the runner's and the report's tests, so that the notebook runs once per session.
    """
    from helpers.course import runner

    out = tmp_path_factory.mktemp("smoke-run-00")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_CACHE_DIR", str(out / "cache"))
        report = runner.run_notebooks("smoke", only=["00"], out=out / "build")
    return report, out / "build"
