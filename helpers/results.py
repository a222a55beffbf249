"""The machine-readable results file of a notebook: its headline numbers, one JSON file per run.

A notebook records each number it claims with :meth:`helpers.runtime.Run.record`; the numbers land
in ``<build>/<profile>/results/<notebook>.json``, with the names of the figures the run saved
(:func:`add_figure`). The file's header carries the id of the run that wrote it: a record from
another run (two runs of one notebook into one build folder) starts the file afresh instead of
mixing the two runs' numbers, and the runner reports only a file of its own run. The run report reads these files, and the
"What you should see" table at the end of each notebook is rendered from the committed copy of a
laptop run (``notebooks/results/<notebook>.<profile>.json``) by :func:`markdown_table`, so the
table and the run it describes cannot drift apart.

Examples
--------
>>> r = Result("acc", "held-out accuracy", 0.973, at_least=0.9)
>>> r.status, r.display()
('pass', '0.973')
>>> Result("fd", "Fréchet distance", 0.0123, interval=(0.01, 0.015), fmt=".3f").display()
'0.012 [0.010, 0.015]'
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import files

__all__ = ["Result", "add_figure", "markdown_table", "path_for", "read", "record", "reset", "write"]

STATUSES = ("pass", "warn", "n/a")
"""``pass``: every bound met; ``warn``: a bound missed; ``n/a``: nothing to compare with."""


@dataclass(frozen=True)
class Result:
    """One headline number of a notebook.

    Attributes
    ----------
    key : str
        Identifier, unique within the notebook (letters, digits, ``_``), e.g. ``"ddim50_accuracy"``.
    label : str
        What the number is, as a table row says it.
    value : float, int or str
        The measured value (a string for categorical results).
    unit : str
        Unit (``"dB"``, ``"s"``, ``"%"``…), ``""`` for plain numbers.
    interval : (float, float) or None
        A confidence interval or a min–max spread, as the label says.
    at_least, at_most : float or None
        Bounds the notebook must reach; they decide :attr:`status`.
    paper : str
        The paper's value or setting, as text ("" when not comparable).
    gpu : str
        What the ``gpu`` profile is expected to give ("" when unknown); never measured here.
    fmt : str
        Format spec of the value and interval, e.g. ``".3g"``, ``".1%"``, ``".2f"``.
    """

    key: str
    label: str
    value: float | int | str
    unit: str = ""
    interval: tuple[float, float] | None = None
    at_least: float | None = None
    at_most: float | None = None
    paper: str = ""
    gpu: str = ""
    fmt: str = ".3g"

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.replace("_", "").isalnum():
            raise ValueError(f"result key must be letters, digits and '_', got {self.key!r}")
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"result {self.key!r} needs a label (what the number is)")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float | str):
            raise TypeError(
                f"result {self.key!r}: value must be a number or a string, got "
                f"{type(self.value).__name__}"
            )
        if isinstance(self.value, float) and not math.isfinite(self.value):
            if self.at_least is not None or self.at_most is not None:
                raise ValueError(
                    f"result {self.key!r} has a bound but a non-finite value {self.value}"
                )
        if self.interval is not None:
            lo, hi = self.interval
            if not lo <= hi:
                raise ValueError(f"result {self.key!r}: interval {self.interval} has low > high")
            object.__setattr__(self, "interval", (float(lo), float(hi)))
        try:
            format(1.0, self.fmt)
        except ValueError as err:
            raise ValueError(f"result {self.key!r}: bad format spec {self.fmt!r}") from err

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """A result from its JSON form (as :func:`record` writes it; ``status`` is derived)."""
        fields = {k: v for k, v in data.items() if k != "status"}
        if fields.get("interval") is not None:
            fields["interval"] = tuple(fields["interval"])
        return cls(**fields)

    @property
    def status(self) -> str:
        """``"pass"`` when every bound holds, ``"warn"`` when one is missed, else ``"n/a"``."""
        if self.at_least is None and self.at_most is None:
            return "n/a"
        if isinstance(self.value, str):
            raise TypeError(f"result {self.key!r}: a string value cannot meet a numeric bound")
        ok = (self.at_least is None or self.value >= self.at_least) and (
            self.at_most is None or self.value <= self.at_most
        )
        return "pass" if ok else "warn"

    def _number(self, value: float | int | str) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not self.fmt.endswith("%"):
            return f"{value:,}".replace(",", " ") if abs(value) >= 10_000 else str(value)
        return format(value, self.fmt)

    def display(self) -> str:
        """The value as a table shows it: formatted, with its interval and unit."""
        text = self._number(self.value)
        if self.interval is not None:
            text += f" [{self._number(self.interval[0])}, {self._number(self.interval[1])}]"
        return f"{text} {self.unit}".strip()

    def target(self) -> str:
        """The bounds as text, e.g. ``"≥ 0.8"``, ``"≤ 360 s"`` or ``"0.5 – 0.9"``."""
        unit = f" {self.unit}" if self.unit else ""
        if self.at_least is not None and self.at_most is not None:
            return f"{self._number(self.at_least)} – {self._number(self.at_most)}{unit}"
        if self.at_least is not None:
            return f"≥ {self._number(self.at_least)}{unit}"
        if self.at_most is not None:
            return f"≤ {self._number(self.at_most)}{unit}"
        return ""


def path_for(folder: str | Path, notebook: str) -> Path:
    """The results file of ``notebook`` (e.g. ``"03_ddpm_ddim"``) in ``folder``."""
    if not isinstance(notebook, str) or not notebook or "/" in notebook or "\\" in notebook:
        raise ValueError(f"notebook name must be a file stem like '03_ddpm_ddim', got {notebook!r}")
    return Path(folder) / f"{notebook}.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON through a temporary file and a rename (readers never see half)."""
    files.write_text(path, json.dumps(data, indent=1, ensure_ascii=False))


def reset(path: str | Path, *, header: dict[str, Any] | None = None) -> None:
    """Start ``path`` afresh (no results, no figures), as :func:`helpers.runtime.setup` does."""
    write(path, [], header=header)


def write(
    path: str | Path,
    items: list[Result | dict[str, Any]],
    *,
    figures: list[str] | tuple[str, ...] = (),
    header: dict[str, Any] | None = None,
) -> None:
    """Write the whole results file of one run: its header, every result and figure name.

    :class:`helpers.runtime.Run` keeps its results in memory and rewrites the file with all of
    them at each record, so the file always holds one run's complete numbers, whichever run
    wrote last into a shared folder.
    """
    rows = [{**asdict(r), "status": r.status} if isinstance(r, Result) else dict(r) for r in items]
    _write(Path(path), {**(header or {}), "results": rows, "figures": list(figures)})


def _current(path: Path, header: dict[str, Any] | None) -> dict[str, Any]:
    """The file's data, or a fresh start when it is missing, unreadable or another run's."""
    empty: dict[str, Any] = {"results": [], "figures": []}
    if not path.exists():
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty
    ours = (header or {}).get("run_id")
    if not isinstance(data, dict) or (ours and data.get("run_id") not in (None, ours)):
        return empty
    return data


def read(path: str | Path) -> dict[str, Any]:
    """The results file as a dict: ``"results"`` (list of :class:`Result`) plus its header fields.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a results file (the message names it).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = [Result.from_dict(r) for r in data.get("results", [])]
    except FileNotFoundError:
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{path} is not a results file ({type(err).__name__}: {err})") from err
    return {**data, "results": items}


def record(path: str | Path, result: Result, *, header: dict[str, Any] | None = None) -> None:
    """Add ``result`` to the file at ``path`` (replacing one with the same key); set the header."""
    path = Path(path)
    data = _current(path, header)
    items = [r for r in data.get("results", []) if r.get("key") != result.key]
    items.append({**asdict(result), "status": result.status})
    _write(path, {**data, **(header or {}), "results": items})


def add_figure(path: str | Path, name: str, *, header: dict[str, Any] | None = None) -> None:
    """Note in the results file at ``path`` that the run saved the figure file ``name``."""
    path = Path(path)
    data = _current(path, header)
    figures = [f for f in data.get("figures", []) if f != name] + [name]
    _write(path, {**data, **(header or {}), "figures": figures})


def markdown_table(per_profile: dict[str, dict[str, Any]]) -> str:
    """The "What you should see" table: one row per result, one column per measured profile.

    Parameters
    ----------
    per_profile : dict
        ``{profile: read(path)}`` for the profiles that were run (e.g. ``{"laptop": …}``); the
        rows follow the first profile's order. The ``gpu`` column shows a measured value when a
        ``gpu`` run is given, else the expectation recorded as ``gpu=`` marked "expected".

    Returns
    -------
    str
        A GitHub-flavoured markdown table.
    """
    if not per_profile:
        raise ValueError("markdown_table needs the results of at least one profile")
    profiles = list(per_profile)
    measured = {p: {r.key: r for r in per_profile[p]["results"]} for p in profiles}
    first = per_profile[profiles[0]]["results"]
    gpu_measured = "gpu" in per_profile
    heads = ["result"] + [f"{p} (measured)" for p in profiles]
    heads += [] if gpu_measured else ["gpu (expected, not measured)"]
    heads += ["target", "status", "paper"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in first:
        cells = [r.label]
        for p in profiles:
            other = measured[p].get(r.key)
            cells.append(other.display() if other is not None else "—")
        if not gpu_measured:
            cells.append(r.gpu or "—")
        cells += [r.target() or "—", r.status if r.status != "n/a" else "—", r.paper or "—"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
