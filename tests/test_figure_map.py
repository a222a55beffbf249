"""The figure map lists exactly the figures that a smoke run of the notebooks produces."""

import re
from pathlib import Path

import pytest
from conftest import SESSION_BUILD_DIR

from helpers import runtime
from helpers.course import runner

MAP = runtime.project_root() / "course" / "figure_map.md"
ROW = re.compile(r"^\|(.+)\|\s*$")


def mapped_figures() -> dict[str, str]:
    """File name → notebook stem, from the table rows of the figure map."""
    out = {}
    for line in MAP.read_text().splitlines():
        m = ROW.match(line)
        if not m:
            continue
        cells = [c.strip() for c in m.group(1).split("|")]
        files = re.findall(r"`([0-9]{2}_[A-Za-z0-9_.-]+\.png)`", line)
        notebooks = [c for c in cells if re.fullmatch(r"\[?`?[0-9]{2}_[a-z0-9_]+`?\]?(\(.*\))?", c)]
        for f in files:
            out[f] = notebooks[0] if notebooks else ""
    return out


@pytest.fixture(scope="module")
def smoke_figures(tmp_path_factory) -> set[str]:
    """Figures of the nbval smoke run when `make test` ran it first, else a fresh smoke run."""
    if SESSION_BUILD_DIR:
        folder = Path(SESSION_BUILD_DIR) / "smoke" / "figures"
        expected = {p.stem.split("_", 1)[0] for p in runner.list_notebooks()}
        if folder.is_dir() and {p.name[:2] for p in folder.glob("*.png")} >= expected:
            return {p.name for p in folder.glob("*.png")}
    out = tmp_path_factory.mktemp("smoke-run")
    report = runner.run_notebooks("smoke", out=out)
    assert report.ok, [nb.error for nb in report.notebooks if nb.error]
    return {p.name for p in (out / "smoke" / "figures").glob("*.png")}


def test_every_mapped_figure_is_produced(smoke_figures):
    mapped = mapped_figures()
    assert mapped, "the figure map lists no figures"
    missing = sorted(set(mapped) - smoke_figures)
    assert not missing, f"the figure map lists figures that the notebooks do not produce: {missing}"


def test_every_produced_figure_is_mapped(smoke_figures):
    unmapped = sorted(smoke_figures - set(mapped_figures()) - {"00_example.png"})
    assert not unmapped, f"figures produced but missing from the figure map: {unmapped}"


def test_figures_are_mapped_to_their_notebook():
    for name, notebook in mapped_figures().items():
        assert notebook and name[:2] == notebook.strip("[`")[:2], (
            f"{name} is mapped to {notebook!r}"
        )
