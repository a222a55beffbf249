"""The run report reads like the chapter's results: per notebook its headline results as a table
and each figure with a caption (also its alt text), plus the run's environment; checked in
headless Chromium: the page renders, every image loads, the console stays clean."""

from __future__ import annotations

import json
import shutil

import matplotlib.pyplot as plt
import pytest

from helpers import plot, results, runtime
from helpers.course import report as rep

try:  # the flags and install hint of the site's browser test
    from test_website import FLAGS, INSTALL
except ImportError:  # pragma: no cover - run alone from another folder
    FLAGS, INSTALL = ("--headless=new", "--no-sandbox"), "Chromium is needed"


def test_figure_map_gives_every_mapped_figure_a_caption():
    captions = rep.figure_map_captions()
    assert captions["00_datasets_gallery.png"].startswith("Gallery of the built-in datasets")
    assert "section “The built-in datasets”" in captions["00_datasets_gallery.png"]
    assert all(c and "`" not in c for c in captions.values())


def test_savefig_stores_a_caption_that_the_report_prefers(tmp_path):
    run = runtime.setup("smoke", figure_dir=tmp_path, verbose=False)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = plot.savefig(fig, "09_line", run=run, caption="A straight line, rising.")
    plt.close(fig)
    assert plot.caption_of(path) == "A straight line, rising."
    assert rep.figure_caption(path, {"09_line.png": "from the map"}) == "A straight line, rising."
    fig = plt.figure()
    bare = plot.savefig(fig, "09_bare", run=run)
    plt.close(fig)
    assert plot.caption_of(bare) is None
    assert rep.figure_caption(bare, {"09_bare.png": "from the map"}) == "from the map"
    assert "no caption" in rep.figure_caption(bare, {})
    with pytest.raises(ValueError, match="caption"):
        plot.savefig(plt.figure(), "09_x", run=run, caption="  ")


def _report(tmp_path, items: list[results.Result], profile: str = "laptop") -> str:
    nb = rep.NotebookResult(
        name="03_demo", status="ok", seconds=1.0, output="notebooks/03_demo.ipynb",
        results=[{**r.__dict__, "status": r.status} for r in items], title="03 — A demo",
    )  # fmt: skip
    run = rep.RunReport(profile, "cpu", str(tmp_path), "now", [nb], {}, rep.environment())
    return rep.write_report(run).read_text(encoding="utf-8")


def test_results_table_says_pass_warn_and_not_comparable(tmp_path):
    page = _report(
        tmp_path,
        [
            results.Result("a", "accuracy", 0.97, at_least=0.9, paper="0.99 (Ho et al.)"),
            results.Result("b", "seam ratio", 3.2, at_most=2.0),
            results.Result("c", "samples", 16),
        ],
    )
    assert "<th>measured</th><th>target</th><th>paper</th><th>status</th><th>profile</th>" in page
    assert (
        "<td>accuracy</td><td class='num'>0.97</td><td>≥ 0.9</td><td>0.99 (Ho et al.)</td>"
        "<td class='pass'>pass</td><td>laptop</td>"
    ) in page
    assert "<td class='warn'>warn</td>" in page and "not comparable" in page
    assert "03 — A demo" in page and "id='environment'" in page
    for key in ("python", "platform", "torch", "imgen-course"):
        assert f"<th>{key}</th>" in page
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["environment"]["python"] and saved["notebooks"][0]["title"] == "03 — A demo"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip(INSTALL)
    webdriver = pytest.importorskip("selenium.webdriver", reason=INSTALL)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chrome-report')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def test_report_renders_in_chromium_with_captions_and_no_errors(smoke_run_00, browser):
    report, build = smoke_run_00
    assert report.ok, report.notebooks[0].error
    page = build / "smoke" / "report.html"
    browser.get(page.as_uri())
    assert browser.title.startswith("Course run report")
    text = browser.execute_script("return document.body.innerText")
    assert "00_setup_and_tour" in text and "Environment" in text and "Headline results" in text
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.alt,"
        " i.complete && i.naturalWidth > 0, i.closest('figure').querySelector('figcaption')"
        ".innerText]);"
    )
    figures = report.notebooks[0].figures
    assert sorted(src.removeprefix("figures/") for src, *_ in images) == sorted(figures)
    mapped = rep.figure_map_captions()
    for src, alt, loaded, caption in images:
        name = src.removeprefix("figures/")
        assert loaded, f"{src} did not load"
        assert alt == mapped[name] and alt in caption, (name, alt, caption)
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.results tr')).map("
        "r => Array.from(r.cells).map(c => c.innerText));"
    )
    header, *body = rows
    assert header == ["result", "measured", "target", "paper", "status", "profile"]
    recorded = results.read(build / "smoke" / "results" / "00_setup_and_tour.json")["results"]
    assert [r[0] for r in body] == [r.label for r in recorded]
    for row, r in zip(body, recorded, strict=True):
        assert row[1] == r.display() and row[5] == "smoke"
        assert row[4] == rep.STATUS_WORDS[r.status]
    env = dict(
        browser.execute_script(
            "return Array.from(document.querySelectorAll('table.environment tr')).map("
            "r => [r.cells[0].innerText, r.cells[1].innerText]);"
        )
    )
    assert env["profile"] == "smoke" and env["device"] == "cpu" and env["torch"] != "missing"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
