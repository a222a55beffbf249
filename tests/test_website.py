"""The course website builds offline and every page, image and internal link works in Chromium."""

from __future__ import annotations

import shutil
from collections import deque
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

from helpers.course import runner, website

INSTALL = (
    "Chromium is needed for the browser test: install it with "
    "`sudo apt-get install chromium chromium-driver` (Debian/Ubuntu) and `pip install -e .[site]`."
)
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-file-access-from-files",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    if (
        shutil.which("jupyter-book") is None
        and not Path(website.sys.executable).with_name("jupyter-book").exists()
    ):
        pytest.skip("jupyter-book is not installed: `pip install -e .[site]`")
    return website.build_site(tmp_path_factory.mktemp("site"))


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
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}")
    service = webdriver.ChromeService(executable_path=driver_path)
    drv = webdriver.Chrome(options=options, service=service)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _local(url: str, root: Path) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    path = Path(unquote(parsed.path))
    return path if root in path.parents or path == root else None


def test_site_renders_and_nothing_is_broken(built, browser):
    root = built.parent
    queue, seen, broken_links, broken_images = deque([built]), set(), [], []
    titles = {}
    while queue:
        page = queue.popleft()
        if page in seen:
            continue
        seen.add(page)
        browser.get(page.as_uri())
        titles[page] = browser.title
        body = browser.execute_script("return document.body ? document.body.innerText.length : 0")
        assert body > 50, f"{page} rendered almost nothing"
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0]);"
        )
        for src, ok in images:
            if _local(src, root) is not None and not ok:
                broken_images.append((page.name, src))
        hrefs = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);"
        )
        for href in hrefs:
            target = _local(urldefrag(href).url, root)
            if target is None:
                continue
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken_links.append((page.name, href))
            elif target.suffix == ".html" and target not in seen:
                queue.append(target)
    assert not broken_images, broken_images
    assert not broken_links, broken_links
    assert "Image generative models" in titles[built]
    visited = {p.relative_to(root).as_posix() for p in seen}
    for nb in runner.list_notebooks():
        assert f"notebooks/{nb.stem}.html" in visited, f"notebook page {nb.stem} not reachable"
    lessons = sorted((website.runtime.project_root() / "course" / "lessons").glob("*.md"))
    assert lessons
    for lesson in lessons:
        assert f"lessons/{lesson.stem}.html" in visited, f"lesson page {lesson.stem} not reachable"
    for page in ("syllabus.html", "figure_map.html", "instructor_guide.html"):
        assert page in visited, page


def test_site_build_has_no_warnings(built):
    """Sphinx only warns about a link to a missing page or a broken reference: no warnings allowed."""
    warnings = (built.parent.parent / "warnings.txt").read_text()
    assert warnings == "", warnings


def test_build_warnings_are_parsed():
    log = "building...\n\x1b[91m/x/index.md:17: WARNING: target not found: 'a.ipynb'\x1b[39;49;00m\nok\n"
    assert website.build_warnings(log) == ["/x/index.md:17: WARNING: target not found: 'a.ipynb'"]
