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
