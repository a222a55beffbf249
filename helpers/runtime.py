"""Profiles, presets, the device rule, seeding, cache paths, timers and the current run.

Every notebook starts with ``run = runtime.setup(PROFILE, seed=SEED, notebook="NN_name")``. The
run knows the resolved profile (``smoke``, ``laptop`` or ``gpu``), the device, the seed, the
folder that :func:`helpers.plot.savefig` writes into, and the results file that
:meth:`Run.record` fills (:mod:`helpers.results`).

Conventions every module follows, defined here once:

* **Presets.** Each topic's settings are a frozen dataclass deriving from :class:`Presets`:
  ``Config.preset(profile="auto", **overrides)`` picks the profile's preset (``"auto"`` resolved
  by :func:`resolve_profile`) and replaces fields, validating again.
* **Device.** ``device=None`` means: where the model already is, for a function handed a model;
  :func:`detect_device` (cuda > mps > cpu) for a function that builds one.
* **Randomness.** Functions that build or train something take ``seed: int``; functions that draw
  one random quantity take ``generator: torch.Generator``. Neither touches the global random state
  (:func:`seeded` initialises a network from a seed inside a forked RNG).
* **The current run.** :func:`setup` remembers the run it makes in this module, the one piece of
  module state of the kit: a notebook sets it up once in its second cell, and
  :func:`helpers.plot.savefig` and :func:`current` read it back, so that every figure and result
  of the notebook lands in that run's folders without passing ``run`` to each call.

Examples
--------
>>> from helpers import runtime
>>> run = runtime.setup("smoke", seed=0, verbose=False)
>>> run.profile
'smoke'
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import random
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Self, TypeVar

import numpy as np
import torch

from . import results

logger = logging.getLogger(__name__)

PROFILES: tuple[str, ...] = ("smoke", "laptop", "gpu")
"""The concrete profiles. ``"auto"`` resolves to ``"gpu"`` with CUDA, else ``"laptop"``."""

BUDGET_SECONDS: dict[str, int] = {"smoke": 60, "laptop": 360, "gpu": 600}
"""Time budget of one notebook per profile (DESIGN: smoke ≤ 60 s and laptop ≤ 6 min on a 2-core
CPU, gpu ≤ 10 min on one H100-class GPU)."""

PROFILE_ENV = "COURSE_PROFILE"
BUILD_ENV = "COURSE_BUILD_DIR"
CACHE_ENV = "COURSE_CACHE_DIR"
RUN_ID_ENV = "COURSE_RUN_ID"
"""Set by the runner in the kernel's environment: the id of the run a notebook belongs to."""

T = TypeVar("T")

CACHE_VERSION = 2
"""Bumped when a cached model's meaning changes without its settings changing (2: the U-Net's
timestep embedding became :func:`helpers.sinusoidal.sinusoidal_embedding`, sines first)."""

_current: Run | None = None


APP_NAME = "imgen-course"
"""The distribution's name: the folder name of the user's cache and data folders (platformdirs)."""

MATERIAL_DIR = "course_material"
"""Folder inside the installed package that holds the course files (``notebooks/``, ``course/``,
``data/registry.json``); the wheel packs them there (see ``setup.py``)."""


def checkout_root() -> Path | None:
    """The repository checkout this package runs from (the folder holding ``pyproject.toml`` and
    ``helpers/``), or ``None`` for an installed kit (a wheel in ``site-packages``)."""
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").exists() and (here / "helpers").is_dir():
        return here
    return None


def project_root() -> Path:
    """The folder of the course files: ``notebooks/``, ``course/``, ``data/registry.json``.

    In a checkout it is the checkout; in an installed kit it is the copy of those files packed
    into the package (:data:`MATERIAL_DIR`), read-only. Outputs never go there: see
    :func:`build_dir` and :func:`cache_dir`.
    """
    root = checkout_root()
    if root is not None:
        return root
    packed = Path(__file__).resolve().parent / MATERIAL_DIR
    return packed if packed.is_dir() else Path.cwd()


def _user_dir(kind: str) -> Path:
    """The user's data (``kind="data"``) or cache folder for the kit (platformdirs)."""
    import platformdirs

    if kind == "data":
        return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def build_dir() -> Path:
    """Root of generated output: ``$COURSE_BUILD_DIR``, else ``<checkout>/build``, else (an
    installed kit) ``build`` in the user's data folder (e.g. ``~/.local/share/imgen-course/build``
    on Linux)."""
    env = os.environ.get(BUILD_ENV)
    if env:
        return Path(env)
    root = checkout_root()
    return root / "build" if root is not None else _user_dir("data") / "build"


def cache_dir() -> Path:
    """Where downloads, trained encoders and checkpoints are cached: ``$COURSE_CACHE_DIR``, else
    ``<checkout>/data/cache``, else (an installed kit) the user's cache folder (e.g.
    ``~/.cache/imgen-course`` on Linux)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    root = checkout_root()
    return root / "data" / "cache" if root is not None else _user_dir("cache")


def cache_path(stem: str, *key: Any, suffix: str = ".safetensors") -> Path:
    """Where a cached artefact named by ``stem`` and the settings ``key`` lives.

    The file name is ``<stem>_<hash>.safetensors`` in :func:`cache_dir`, the hash taken over the
    ``repr`` of ``key`` and :data:`CACHE_VERSION`: other settings, another seed or a new cache
    version give another file, so a cache is never read for settings it was not made with.

    Parameters
    ----------
    stem : str
        Letters, digits, ``_`` and ``-``, e.g. ``"03_digits"``.
    *key
        Everything the artefact depends on (configs, seeds, data recipes); their ``repr`` must be
        deterministic (dataclasses, numbers, strings, tuples).
    suffix : str
        File suffix.

    Examples
    --------
    >>> cache_path("03_digits", 1, "a") == cache_path("03_digits", 1, "a") != cache_path("03_digits", 2, "a")
    True
    """
    if not isinstance(stem, str) or not stem or not all(c.isalnum() or c in "_-" for c in stem):
        raise ValueError(f"cache stem must be letters, digits, '_' or '-', got {stem!r}")
    digest = hashlib.sha1(repr((CACHE_VERSION, *key)).encode()).hexdigest()[:10]
    return cache_dir() / f"{stem}_{digest}{suffix}"


def new_run_id() -> str:
    """A fresh run id: start time, process id and a random suffix (unique across machines)."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"


def checkout_of(start: str | Path | None = None) -> Path | None:
    """The kit checkout holding ``start`` (default: the working directory), or ``None``.

    A checkout is a folder with ``pyproject.toml`` and a ``helpers/`` package; a notebook runs in
    ``<checkout>/notebooks``, so its checkout is found by walking up from there.
    """
    here = Path(start) if start is not None else Path.cwd()
    for folder in (here.resolve(), *here.resolve().parents):
        if (folder / "pyproject.toml").is_file() and (folder / "helpers" / "__init__.py").is_file():
            return folder
    return None


def foreign_helpers(start: str | Path | None = None) -> Path | None:
    """The ``helpers`` package in use when it is not the one of the checkout holding ``start``
    (e.g. an editable install of another checkout), else ``None``."""
    checkout = checkout_of(start)
    ours = Path(__file__).resolve().parent
    if checkout is None or (checkout / "helpers").resolve() == ours:
        return None
    return ours


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


class Presets:
    """Mixin of the frozen settings dataclasses: ``Config.preset(profile="auto", **overrides)``.

    A subclass defines :meth:`presets`, one instance per concrete profile; :meth:`preset` resolves
    the profile, picks its instance and replaces the fields named in ``overrides`` (the dataclass
    validates the result again in ``__post_init__``).
    """

    @classmethod
    def presets(cls) -> dict[str, Self]:
        """One instance per profile (``"smoke"``, ``"laptop"``, ``"gpu"``)."""
        raise NotImplementedError(f"{cls.__name__} defines no presets")

    @classmethod
    def preset(cls, profile: str = "auto", **overrides: Any) -> Self:
        """The settings of ``profile`` with ``overrides`` applied.

        Raises
        ------
        TypeError
            An override that is not a field (the message lists the fields).
        ValueError
            An unknown profile, or an override the dataclass rejects.
        """
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(
                f"{cls.__name__} has no field(s) {', '.join(unknown)}; fields: {', '.join(names)}"
            )
        return replace(pick(cls.presets(), profile), **overrides)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[type-var]


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded, leaving the global random state as it was.

    Used to initialise a network from ``seed`` (``None``: the block draws from the global state,
    which is then advanced as usual).

    Examples
    --------
    >>> with seeded(0):
    ...     a = torch.rand(2)
    >>> with seeded(0):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b)
    True
    """
    if seed is None:
        yield
        return
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


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
    notebook : str
        Name of the notebook (``"03_ddpm_ddim"``), or ``""`` outside one.
    results_path : pathlib.Path or None
        The results file :meth:`record` writes (``<build>/<profile>/results/<notebook>.json``),
        ``None`` without a notebook name.
    run_id : str
        The run this notebook belongs to (``$COURSE_RUN_ID`` from the runner, else a fresh id);
        written into the results file so that two runs into one folder never mix their numbers.
    """

    profile: str
    device: torch.device
    seed: int
    figure_dir: Path
    notebook: str = ""
    results_path: Path | None = None
    started: float = field(default_factory=time.perf_counter)
    run_id: str = ""
    _results: dict[str, results.Result] = field(default_factory=dict, repr=False, compare=False)
    _figures: list[str] = field(default_factory=list, repr=False, compare=False)

    def _header(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "profile": self.profile,
            "seed": self.seed,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "torch": version("torch"),
            "run_id": self.run_id,
        }

    def record(
        self,
        key: str,
        value: float | int | str,
        *,
        label: str,
        unit: str = "",
        interval: tuple[float, float] | None = None,
        at_least: float | None = None,
        at_most: float | None = None,
        paper: str = "",
        gpu: str = "",
        fmt: str = ".3g",
    ) -> None:
        """Write one headline number into this notebook's results file.

        See :class:`helpers.results.Result` for the fields. Recording the same ``key`` again
        replaces the entry, so re-running a cell does not duplicate it. Without a notebook name
        (``setup(..., notebook=None)``) nothing is written.

        Examples
        --------
        >>> run = setup("smoke", notebook="99_demo", verbose=False)
        >>> run.record("accuracy", 0.97, label="held-out accuracy", at_least=0.9)
        >>> results.read(run.results_path)["results"][0].status
        'pass'
        """
        result = results.Result(
            key=key, label=label, value=value, unit=unit, interval=interval,
            at_least=at_least, at_most=at_most, paper=paper, gpu=gpu, fmt=fmt,
        )  # fmt: skip
        self._results.pop(key, None)  # recorded again: replaced, and listed last
        self._results[key] = result
        self._write()

    def record_figure(self, name: str) -> None:
        """Note in the results file that this run saved the figure file ``name`` (the runner's
        report lists a notebook's figures from this note, not from the folder, which other runs
        may share)."""
        if name not in self._figures:
            self._figures.append(name)
        self._write()

    def _write(self) -> None:
        """The whole results file of this run (all its results and figures), atomically."""
        if self.results_path is not None:
            results.write(self.results_path, list(self._results.values()),
                          figures=self._figures, header=self._header())  # fmt: skip

    def record_run_time(self) -> None:
        """Record the notebook's wall time so far against its profile's budget
        (:data:`BUDGET_SECONDS`): the last line of every notebook. A run over budget is a
        ``warn`` in the results, never an error (machines are noisy)."""
        self.record(
            "run_time",
            round(self.elapsed(), 1),
            label="notebook run time",
            unit="s",
            at_most=BUDGET_SECONDS[self.profile],
            fmt=".0f",
        )

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
    notebook: str | None = None,
    verbose: bool = True,
) -> Run:
    """Resolve the profile, pick the device, seed everything and choose the output folders.

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
    notebook : str, optional
        The notebook's name (``"03_ddpm_ddim"``): its results go to
        ``<build>/<profile>/results/<notebook>.json``, started afresh by this call.
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
    results_path = None
    if notebook is not None:
        results_path = results.path_for(build_dir() / name / "results", notebook)
    run = Run(
        profile=name,
        device=detect_device(device),
        seed=seed,
        figure_dir=folder,
        notebook=notebook or "",
        results_path=results_path,
        run_id=os.environ.get(RUN_ID_ENV, "").strip() or new_run_id(),
    )
    run._write()  # the results file starts afresh, with this run's id
    _current = run
    foreign = foreign_helpers()
    line = run.summary()
    if foreign is not None:  # an install of another checkout would run other code, other caches
        line += f"\nhelpers={foreign} (not this checkout's: {checkout_of()})"
        logger.warning("helpers imported from %s, not from the checkout %s", foreign, checkout_of())
    if verbose:
        print(line)
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
