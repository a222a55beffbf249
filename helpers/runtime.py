"""Profiles, device choice, seeding, timers and where figures go.

Every notebook starts with ``run = runtime.setup(PROFILE, seed=SEED)``. The run object knows the
resolved profile (``smoke``, ``laptop`` or ``gpu``), the device (cuda > mps > cpu) and the folder
that :func:`helpers.plot.savefig` writes into.

Examples
--------
>>> from helpers import runtime
>>> run = runtime.setup("smoke", seed=0, verbose=False)
>>> run.profile
'smoke'
"""

from __future__ import annotations

import logging
import os
import platform
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

logger = logging.getLogger(__name__)

PROFILES: tuple[str, ...] = ("smoke", "laptop", "gpu")
"""The concrete profiles. ``"auto"`` resolves to ``"gpu"`` with CUDA, else ``"laptop"``."""

PROFILE_ENV = "COURSE_PROFILE"
BUILD_ENV = "COURSE_BUILD_DIR"

T = TypeVar("T")

_current: Run | None = None


def project_root() -> Path:
    """The kit's root folder (the one holding ``pyproject.toml``), else the working directory."""
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def build_dir() -> Path:
    """Root of generated output: ``$COURSE_BUILD_DIR`` or ``<project>/build``."""
    env = os.environ.get(BUILD_ENV)
    return Path(env) if env else project_root() / "build"


def cache_dir() -> Path:
    """Where downloads, trained encoders and checkpoints are cached: ``<project>/data/cache``."""
    env = os.environ.get("COURSE_CACHE_DIR")
    return Path(env) if env else project_root() / "data" / "cache"


def resolve_profile(profile: str = "auto") -> str:
    """Turn ``"auto"`` (or the ``COURSE_PROFILE`` override) into a concrete profile name.

    Parameters
    ----------
    profile : str
        One of ``"auto"``, ``"smoke"``, ``"laptop"``, ``"gpu"``. ``COURSE_PROFILE`` in the
        environment replaces ``"auto"``.

    Returns
    -------
    str
        ``"smoke"``, ``"laptop"`` or ``"gpu"``.
    """
    if not isinstance(profile, str):
        raise TypeError(f"profile must be a string, got {type(profile).__name__}")
    name = profile.strip().lower()
    if name == "auto":
        name = os.environ.get(PROFILE_ENV, "auto").strip().lower() or "auto"
    if name == "auto":
        name = "gpu" if torch.cuda.is_available() else "laptop"
    if name not in PROFILES:
        valid = ", ".join(("auto",) + PROFILES)
        raise ValueError(
            f"unknown profile {profile!r} (resolved to {name!r}); valid profiles: {valid}"
        )
    return name


def detect_device(prefer: str | None = None) -> torch.device:
    """The best available device: cuda, then mps, then cpu (or ``prefer`` when given)."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (all devices)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def version(package: str) -> str:
    """Installed version of ``package``, or ``"missing"``."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def pick(presets: Mapping[str, T], profile: str) -> T:
    """Choose the preset for ``profile`` (``"auto"`` is resolved first)."""
    name = resolve_profile(profile)
    if name not in presets:
        raise ValueError(f"no preset for profile {name!r}; presets exist for {sorted(presets)}")
    return presets[name]


@dataclass(frozen=True)
class Run:
    """What a notebook knows about the current run.

    Attributes
    ----------
    profile : str
        The resolved profile: ``"smoke"``, ``"laptop"`` or ``"gpu"``.
    device : torch.device
        Where tensors and models go.
    seed : int
        The seed every random source was set from.
    figure_dir : pathlib.Path
        Folder that :func:`helpers.plot.savefig` writes into.
    """

    profile: str
    device: torch.device
    seed: int
    figure_dir: Path
    started: float = field(default_factory=time.perf_counter)

    def generator(self, offset: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
        """A fresh ``torch.Generator`` seeded with ``seed + offset``."""
        g = torch.Generator(device=device)
        g.manual_seed(self.seed + offset)
        return g

    def elapsed(self) -> float:
        """Seconds since :func:`setup`."""
        return time.perf_counter() - self.started

    def summary(self) -> str:
        """The one-line description printed by :func:`setup`."""
        return (
            f"profile={self.profile} device={self.device} seed={self.seed} "
            f"threads={torch.get_num_threads()} "
            f"torch={version('torch')} diffusers={version('diffusers')} timm={version('timm')} "
            f"python={platform.python_version()}"
        )


def configure_threads(env: Mapping[str, str] | None = None) -> int:
    """Apply ``COURSE_NUM_THREADS`` (if set) to torch's intra-op thread pool; return the count.

    On a shared machine (a class server, several notebooks at once) one thread per notebook is
    often much faster than letting every process use all cores.
    """
    env = os.environ if env is None else env
    value = env.get("COURSE_NUM_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"COURSE_NUM_THREADS must be a positive integer, got {value!r}")
        torch.set_num_threads(int(value))
    return torch.get_num_threads()


def setup(
    profile: str = "auto",
    seed: int = 0,
    *,
    device: str | None = None,
    figure_dir: str | Path | None = None,
    verbose: bool = True,
) -> Run:
    """Resolve the profile, pick the device, seed everything and choose the figure folder.

    Parameters
    ----------
    profile : str
        ``"auto"`` (default; ``COURSE_PROFILE`` overrides it), ``"smoke"``, ``"laptop"``, ``"gpu"``.
    seed : int
        Seed for ``random``, NumPy and torch.
    device : str, optional
        Force a device (``"cpu"``, ``"cuda"``, ``"mps"``); default cuda > mps > cpu.
    figure_dir : str or Path, optional
        Where figures go; default ``<build>/<profile>/figures``.
    verbose : bool
        Print the one-line summary (profile, device, versions).

    Returns
    -------
    Run
        Also remembered as the current run, used by :func:`helpers.plot.savefig`.
    """
    global _current
    name = resolve_profile(profile)
    configure_threads()
    seed_everything(seed)
    folder = Path(figure_dir) if figure_dir is not None else build_dir() / name / "figures"
    run = Run(profile=name, device=detect_device(device), seed=seed, figure_dir=folder)
    _current = run
    if verbose:
        print(run.summary())
    logger.info("run set up: %s", run.summary())
    return run


def current() -> Run | None:
    """The run made by the last :func:`setup`, or ``None``."""
    return _current


def reset() -> None:
    """Forget the current run (figures are then not saved)."""
    global _current
    _current = None


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """Measure wall time: ``with timer() as t: ...`` then ``t["seconds"]``."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - start
