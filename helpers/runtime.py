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
import math
import os
import platform
import random
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import torch

from . import results

logger = logging.getLogger(__name__)

PROFILES: tuple[str, ...] = ("smoke", "laptop", "gpu")
"""The concrete profiles. ``"auto"`` resolves to ``"gpu"`` with CUDA, else ``"laptop"``."""

BUDGET_SECONDS: dict[str, int] = {"smoke": 60, "laptop": 360, "gpu": 600}
"""Time budget of one notebook per profile (DESIGN: smoke ≤ 60 s and laptop ≤ 6 min on a 2-core
CPU, gpu ≤ 10 min on one H100-class GPU)."""

OWN_BUDGET_SECONDS: dict[str, dict[str, int]] = {"05_memorization": {"laptop": 900}}
"""Notebooks with a budget of their own, per profile (the README's table of profiles states it):
05 follows four models through training, which the 6-minute laptop budget cannot hold."""


def budget_seconds(profile: str, notebook: str = "") -> int:
    """The time budget of ``notebook`` under ``profile``: its own (:data:`OWN_BUDGET_SECONDS`)
    or the profile's (:data:`BUDGET_SECONDS`).

    Examples
    --------
    >>> budget_seconds("laptop"), budget_seconds("laptop", "05_memorization"), budget_seconds("smoke", "05_memorization")
    (360, 900, 60)
    """
    if profile not in BUDGET_SECONDS:
        raise ValueError(
            f"unknown profile {profile!r}; expected one of {', '.join(BUDGET_SECONDS)}"
        )
    return OWN_BUDGET_SECONDS.get(notebook, {}).get(profile, BUDGET_SECONDS[profile])


PROFILE_ENV = "COURSE_PROFILE"
BUILD_ENV = "COURSE_BUILD_DIR"
CACHE_ENV = "COURSE_CACHE_DIR"
RUN_ID_ENV = "COURSE_RUN_ID"
"""Set by the runner in the kernel's environment: the id of the run a notebook belongs to."""
STEP_SCALE_ENV = "COURSE_STEP_SCALE"
"""Multiplies every preset's iteration counts (:func:`step_scale`); sizes stay as they are."""
STEP_FLOOR = 2
"""The fewest iterations a scaled count keeps (two: a loop that steps, then steps again)."""

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


def step_scale(env: Mapping[str, str] | None = None) -> float:
    """The factor ``COURSE_STEP_SCALE`` applies to every preset's iteration counts (1 when unset).

    With e.g. ``COURSE_STEP_SCALE=0.001`` every network of a profile keeps its size (widths,
    image sizes, batch sizes, windows, T) but trains and samples for only a few steps
    (:func:`scaled_steps`): the gpu profile's shapes can be built and stepped on a CPU.

    Raises
    ------
    ValueError
        A value that is not a number in (0, 1].
    """
    env = os.environ if env is None else env
    value = env.get(STEP_SCALE_ENV, "").strip()
    if not value:
        return 1.0
    try:
        scale = float(value)
    except ValueError:
        raise ValueError(f"{STEP_SCALE_ENV} must be a number in (0, 1], got {value!r}") from None
    if not 0 < scale <= 1:
        raise ValueError(f"{STEP_SCALE_ENV} must be a number in (0, 1], got {value!r}")
    return scale


def scaled_steps(count: int, scale: float) -> int:
    """``count`` iterations scaled by ``scale``, rounded, at least :data:`STEP_FLOOR` (never more
    than ``count``).

    Examples
    --------
    >>> scaled_steps(8000, 0.001), scaled_steps(300, 0.001), scaled_steps(1, 0.001), scaled_steps(50, 1.0)
    (8, 2, 1, 50)
    """
    if scale >= 1:
        return count
    return min(count, max(STEP_FLOOR, round(count * scale)))


def scaled_stages(stages: Sequence[int], scale: float) -> tuple[int, ...]:
    """Increasing step counts (the stages at which a run is evaluated) scaled by ``scale``:
    each as :func:`scaled_steps`, then raised where needed to stay strictly increasing.

    Examples
    --------
    >>> scaled_stages((200, 400, 800, 1600), 0.001), scaled_stages((200, 4000), 0.01)
    ((2, 3, 4, 5), (2, 40))
    """
    out: list[int] = []
    for count in stages:
        step = scaled_steps(count, scale)
        out.append(max(step, out[-1] + 1) if out else step)
    return tuple(out)


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

    A subclass lists in :attr:`STEP_FIELDS` its iteration counts (training steps, epochs,
    sampling steps, iterations, repeats): :meth:`preset` multiplies them by :func:`step_scale`
    (``COURSE_STEP_SCALE``), before ``overrides`` are applied, so that an explicit override is
    taken as it is. Every other field (a size) is kept.
    """

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ()
    """Names of the int fields that count iterations."""

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
        chosen = pick(cls.presets(), profile)
        scale = step_scale()
        if scale < 1 and cls.STEP_FIELDS:
            scaled = {
                n: (scaled_stages if isinstance(v, tuple) else scaled_steps)(v, scale)
                for n in cls.STEP_FIELDS
                for v in [getattr(chosen, n)]
            }
            chosen = replace(chosen, **scaled)
        return replace(chosen, **overrides)

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


THREADS_ENV = "COURSE_NUM_THREADS"
"""Environment variable that fixes PyTorch's thread count (a positive integer; ``auto`` or unset:
chosen from the cores that are free, :func:`choose_threads`)."""

CGROUP_CPU_FILES: tuple[tuple[str, ...], ...] = (
    ("/sys/fs/cgroup/cpu.max",),  # cgroup v2: "<quota> <period>" or "max <period>"
    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),  # v1
)
"""Where a container's CPU quota is read (the quota of the cgroup the container sees as its root:
Docker ``--cpus``, Kubernetes CPU limits, JupyterHub's ``cpu_limit``)."""


def cgroup_cpu_quota(files: Sequence[Sequence[str | Path]] = CGROUP_CPU_FILES) -> float | None:
    """The CPU quota of this process's container in cores (e.g. ``1.5``), or ``None`` without one.

    Reads cgroup v2's ``cpu.max`` or v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (the
    first that exists in ``files``); an unreadable file or ``max`` / ``-1`` means no quota.
    """
    for names in files:
        try:
            parts = " ".join(Path(n).read_text().strip() for n in names).split()
        except (OSError, ValueError):
            continue
        if len(parts) != 2 or parts[0] in ("max", "-1"):
            return None
        try:
            quota, period = float(parts[0]), float(parts[1])
        except ValueError:
            return None
        return quota / period if quota > 0 and period > 0 else None
    return None


def cpu_cores() -> tuple[int, str]:
    """``(cores, why)``: how many cores this process may use, and what limits it.

    The cores it is allowed to run on (CPU affinity, a cpuset) and, inside a container, the CPU
    quota rounded down (a quota of 1.5 cores is 1 core a thread can have without being throttled).
    """
    import psutil

    total = os.cpu_count() or 1
    try:
        allowed = len(psutil.Process().cpu_affinity() or ()) or total
    except (AttributeError, OSError, psutil.Error):  # macOS has no affinity
        allowed = total
    why = f"{allowed} cores" if allowed == total else f"{allowed} of {total} cores (affinity)"
    quota = cgroup_cpu_quota()
    if quota is not None and math.floor(quota) < allowed:
        return max(1, math.floor(quota)), f"{why}, container quota {quota:g} cores"
    return allowed, why


@dataclass(frozen=True)
class CpuTimes:
    """A reading of CPU time, to tell how much of the machine other processes used since.

    Attributes
    ----------
    wall : float
        ``time.perf_counter()`` when read.
    busy : float or None
        CPU-seconds the cores this process may run on have been busy (all processes), ``None``
        where the platform does not say.
    own : float
        CPU-seconds this process has used (all its threads).
    """

    wall: float
    busy: float | None
    own: float


def cpu_times() -> CpuTimes:
    """Read the busy time of this process's cores and the CPU time of this process and its
    children (psutil)."""
    import psutil

    proc = psutil.Process()
    try:
        per_cpu = psutil.cpu_times(percpu=True)
        try:
            allowed = proc.cpu_affinity() or range(len(per_cpu))
        except (AttributeError, OSError, psutil.Error):
            allowed = range(len(per_cpu))
        busy = 0.0
        for i in allowed:
            t = per_cpu[i]._asdict()
            # guest time is already counted in user and nice (Linux); idle and iowait are not busy
            total = sum(t.values()) - t.get("guest", 0.0) - t.get("guest_nice", 0.0)
            busy += total - t.get("idle", 0.0) - t.get("iowait", 0.0)
    except (OSError, IndexError, psutil.Error):
        busy = None
    # the process's CPU clock (user + system, all threads) at nanosecond resolution, not ticks,
    # plus its children's (a runner's kernels, live or finished): their work is not "others"
    own = time.process_time()
    finished = os.times()
    own += finished.children_user + finished.children_system
    try:
        for child in proc.children(recursive=True):
            try:
                c = child.cpu_times()
                own += c.user + c.system
            except psutil.Error:  # ended meanwhile: counted as finished at the next reading
                pass
    except psutil.Error:
        pass
    return CpuTimes(time.perf_counter(), busy, own)


def others_between(start: CpuTimes, end: CpuTimes) -> float | None:
    """Mean number of cores that *other* processes kept busy between two readings, or ``None``.

    The busy time of this process's cores minus the CPU time of this process and its children
    (a runner's kernels), over the wall time.
    """
    seconds = end.wall - start.wall
    if start.busy is None or end.busy is None or seconds <= 0:
        return None
    return max(0.0, (end.busy - start.busy) - (end.own - start.own)) / seconds


def load_average() -> tuple[float, float, float] | None:
    """The 1-, 5- and 15-minute load averages (runnable processes), or ``None`` where unknown."""
    try:
        import psutil

        return tuple(round(x, 2) for x in psutil.getloadavg())  # type: ignore[return-value]
    except (AttributeError, OSError, RuntimeError):
        return None


def contended(others: float | None, cores: int, threads: int) -> bool | None:
    """Whether other processes wanted the cores this process's threads ran on.

    True when the cores other processes kept busy and this process's threads add up to more than
    the cores there are, by more than a quarter of a core (``None`` when ``others`` is unknown):
    timings taken then are slower than the machine is.
    """
    if others is None:
        return None
    return others + threads > cores + 0.25


@dataclass(frozen=True)
class ThreadChoice:
    """PyTorch's thread count for this process, and what it was chosen from.

    Attributes
    ----------
    threads : int
        The count (``torch.set_num_threads``).
    source : str
        ``"COURSE_NUM_THREADS"`` (set by the user or the runner) or ``"auto"``.
    cores : int
        Cores this process may use (:func:`cpu_cores`), ``cores_why`` saying what limits them.
    others : float or None
        Cores that other processes kept busy when the choice was made (``None``: not measured).
    load_average : tuple of float or None
        1-, 5- and 15-minute load averages when the choice was made.
    jobs : int
        Notebooks or processes sharing the free cores.
    """

    threads: int
    source: str
    cores: int
    cores_why: str = ""
    others: float | None = None
    load_average: tuple[float, float, float] | None = None
    jobs: int = 1

    def why(self) -> str:
        """What the count was chosen from, e.g. ``"auto: 2 cores, 1.3 busy with other processes,
        load average 8.1 7.5 7.4"``."""
        why = [self.cores_why or f"{self.cores} cores"]
        if self.others is not None:
            why.append(f"{self.others:.1f} busy with other processes")
        if self.jobs > 1:
            why.append(f"shared by {self.jobs} jobs")
        if self.load_average is not None:
            why.append("load average " + " ".join(f"{x:.1f}" for x in self.load_average))
        return f"{self.source}: {', '.join(why)}"

    def describe(self) -> str:
        """The count and why, e.g. ``"1 thread (auto: 2 cores, …)"``."""
        return f"{self.threads} thread{'s' if self.threads != 1 else ''} ({self.why()})"


def choose_threads(
    env: Mapping[str, str] | None = None,
    *,
    jobs: int = 1,
    sample_seconds: float = 0.25,
    others: float | None = None,
    cores: tuple[int, str] | None = None,
) -> ThreadChoice:
    """Decide PyTorch's thread count from the cores that are actually free.

    Oversubscribed cores cost far more than idle ones: two PyTorch processes that each use every
    core of a 2-core machine run several times slower each, while one thread each keeps both at
    full speed. So the count is the number of free cores (:func:`cpu_cores` minus the cores
    other processes kept busy over ``sample_seconds``, :func:`cpu_times`), shared by ``jobs``,
    rounded to the nearest whole core, at least 1. ``COURSE_NUM_THREADS`` in ``env`` (a positive
    integer) overrides the choice; ``auto`` or unset chooses.

    Parameters
    ----------
    env : mapping, optional
        Default ``os.environ``.
    jobs : int
        How many processes of this run share the free cores (e.g. notebooks run in parallel).
    sample_seconds : float
        How long to watch the other processes' CPU use.
    others, cores
        Measurements to use instead of measuring (tests, a caller that measured already):
        cores busy with other processes; ``(cores, why)`` as :func:`cpu_cores` returns it.

    Returns
    -------
    ThreadChoice

    Raises
    ------
    ValueError
        ``COURSE_NUM_THREADS`` that is neither a positive integer nor ``auto``; ``jobs < 1``.

    Examples
    --------
    >>> choose_threads({}, others=1.0, cores=(2, "2 cores")).threads  # one core busy: one thread
    1
    >>> choose_threads({}, others=0.1, cores=(2, "2 cores")).threads
    2
    >>> choose_threads({"COURSE_NUM_THREADS": "3"}, cores=(2, "2 cores")).describe()[:30]
    '3 threads (COURSE_NUM_THREADS:'
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    env = os.environ if env is None else env
    value = env.get(THREADS_ENV, "").strip().lower()
    if value not in ("", "auto") and (not value.isdigit() or int(value) < 1):
        raise ValueError(f"{THREADS_ENV} must be a positive integer or 'auto', got {value!r}")
    n, why = cores if cores is not None else cpu_cores()
    if value not in ("", "auto"):
        return ThreadChoice(int(value), THREADS_ENV, n, why, others, load_average(), jobs)
    if others is None:
        start = cpu_times()
        time.sleep(sample_seconds)
        others = others_between(start, cpu_times())
    if others is None:  # the platform does not say: the load average, which counts us too
        load = load_average()
        others = max(0.0, load[0] - 1) if load is not None else 0.0
    free = (n - others) / jobs
    threads = max(1, min(n // jobs or 1, math.floor(free + 0.5)))
    return ThreadChoice(threads, "auto", n, why, round(others, 2), load_average(), jobs)


def configure_threads(
    env: Mapping[str, str] | None = None, *, jobs: int = 1, choice: ThreadChoice | None = None
) -> ThreadChoice:
    """Choose PyTorch's thread count (:func:`choose_threads`, or ``choice``) and apply it.

    Sets torch's intra-op thread pool and the BLAS library that NumPy and SciPy use
    (threadpoolctl), so that neither oversubscribes the cores.
    """
    from threadpoolctl import threadpool_limits

    choice = choice if choice is not None else choose_threads(env, jobs=jobs)
    torch.set_num_threads(choice.threads)
    try:
        threadpool_limits(limits=choice.threads, user_api="blas")
    except (OSError, RuntimeError, ValueError):  # an unusual BLAS build: torch's count stands
        logger.debug("BLAS thread limit not set", exc_info=True)
    return choice


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
    threads : ThreadChoice or None
        PyTorch's thread count and what it was chosen from (:func:`choose_threads`).

    The results file's header also says how busy the machine was: the load average when the run
    was set up and at the last record, the mean number of cores other processes kept busy since
    setup (``cpu_others``) and whether that contended with this run's threads (``contended``,
    :func:`contended`): timings taken under contention are slower than the machine is.
    """

    profile: str
    device: torch.device
    seed: int
    figure_dir: Path
    notebook: str = ""
    results_path: Path | None = None
    started: float = field(default_factory=time.perf_counter)
    run_id: str = ""
    threads: ThreadChoice | None = None
    _cpu_start: CpuTimes = field(default_factory=cpu_times, repr=False, compare=False)
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
            **self.machine(),
        }

    def machine(self) -> dict[str, Any]:
        """How the run shared the machine so far: threads and why, cores, load averages, the
        mean cores other processes kept busy since setup, and whether that was contention."""
        choice = self.threads
        cores = choice.cores if choice is not None else cpu_cores()[0]
        others = others_between(self._cpu_start, cpu_times())
        start = choice.load_average if choice is not None else None
        now = load_average()
        return {
            "threads_chosen": choice.describe() if choice is not None else "",
            "cpu_cores": cores,
            "load_average_start": list(start) if start else None,
            "load_average": list(now) if now else None,
            "cpu_others": None if others is None else round(others, 2),
            "contended": contended(others, cores, torch.get_num_threads()),
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
        """Record the notebook's wall time so far against its budget (:func:`budget_seconds`):
        the last line of every notebook. A run over budget is a ``warn`` in the results, never an
        error (machines are noisy).

        On a CUDA device it also records the peak memory torch allocated on it
        (``torch.cuda.max_memory_allocated``), which ``benchmarks/gpu_check.py`` collects."""
        self.record(
            "run_time",
            round(self.elapsed(), 1),
            label="notebook run time",
            unit="s",
            at_most=budget_seconds(self.profile, self.notebook),
            fmt=".0f",
        )
        if self.device.type == "cuda" and torch.cuda.is_available():
            peak = torch.cuda.max_memory_allocated(self.device) / 1e9
            self.record("gpu_peak_memory", round(peak, 2), label="peak GPU memory allocated",
                        unit="GB", fmt=".2f")  # fmt: skip

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
            f"threads={torch.get_num_threads()}"
            f"{f' ({self.threads.why()})' if self.threads else ''} "
            f"torch={version('torch')} diffusers={version('diffusers')} timm={version('timm')} "
            f"python={platform.python_version()}"
        )


def setup(
    profile: str = "auto",
    seed: int = 0,
    *,
    device: str | None = None,
    figure_dir: str | Path | None = None,
    notebook: str | None = None,
    verbose: bool = True,
) -> Run:
    """Resolve the profile, pick the device and the thread count, seed everything and choose the
    output folders.

    PyTorch's thread count is chosen from the cores that are free (:func:`configure_threads`;
    ``COURSE_NUM_THREADS`` fixes it) and printed with the summary.

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
    choice = configure_threads()
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
        threads=choice,
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
