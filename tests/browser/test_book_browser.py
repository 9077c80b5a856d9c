"""The built book works in a real browser, offline (issue: foundation; book as a whole).

Chromium (Debian's package, driven by Playwright) opens the built HTML served on 127.0.0.1,
follows every chapter in the table of contents, checks that each page's figures load and that
math renders, runs the search, and asserts that no request ever left 127.0.0.1.
"""

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    if not (HTML / "index.html").exists():
        pytest.skip("the book is not built: run `make book` first (make test builds it)")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _toc_chapters() -> list[str]:
    """The chapter files listed in _toc.yml, in order (root first)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for entry in toc.get("chapters", []):
        files.append(entry["file"])
    for part in toc.get("parts", []):
        files.extend(entry["file"] for entry in part.get("chapters", []))
    return files


def test_every_chapter_opens_offline_with_figures_and_search(site: str) -> None:
    """Each chapter in the TOC opens from the sidebar, its images load, and search finds pages."""
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on(
            "request",
            lambda r: (
                external.append(r.url)
                if urlparse(r.url).hostname not in ("127.0.0.1", None)
                else None
            ),
        )
        page.goto(f"{site}/index.html")
        page.wait_for_url("**/book/intro.html")
        titles = []
        for chapter in _toc_chapters()[1:]:
            hrefs: list[str] = page.eval_on_selector_all(
                "nav.bd-docs-nav a", "links => links.map(a => a.getAttribute('href') || '')"
            )
            wanted = f"{Path(chapter).name}.html"  # exact file name: raft_replication ≠ replication
            index = next(i for i, h in enumerate(hrefs) if h.split("#")[0].split("/")[-1] == wanted)
            page.locator("nav.bd-docs-nav a").nth(index).click()
            page.wait_for_url(f"**/{chapter}.html")
            page.wait_for_load_state("load")
            titles.append(page.locator("article h1").first.inner_text())
            broken = page.evaluate(
                "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                ".map(i => i.src)"
            )
            assert broken == [], f"{chapter}: images that did not load: {broken}"
            errors = page.locator("article .output.traceback, article .output.stderr .ansi-red-fg")
            assert errors.count() == 0, f"{chapter}: the page shows an error output"
        assert all(titles), titles
        page.goto(f"{site}/book/intro.html")
        page.wait_for_selector("mjx-container", timeout=15_000)
        page.goto(f"{site}/search.html?q=trio")
        page.wait_for_selector("#search-results li", timeout=15_000)
        hits = page.locator("#search-results li").all_inner_texts()
        browser.close()
    assert any("How to use this book" in hit for hit in hits), hits
    assert external == [], f"requests left 127.0.0.1: {external[:5]}"
