"""The rendered book, checked as a reader sees it: headless Chromium on the built HTML.

Needs ``_build/html`` (``python3 tasks.py test`` builds it first), Playwright (the ``test``
extra) and a Chromium binary (``/usr/bin/chromium`` from Debian's ``chromium`` package, which
``tasks.py test`` installs when it runs as root on Debian; set ``GENLAB_CHROMIUM`` to use
another). Pages are served from a local HTTP server (no network needed when the offline
assets in ``_vendor/`` are present). Screenshots are kept in ``tests/artifacts/`` (git-ignored).

Every page is also swept at 400 px and 1280 px by ``scripts/page_sweep.py`` (in a subprocess,
about 2 minutes on 2 cores); its table of counts per page and criterion is written to
``tests/artifacts/page_sweep.txt``, and the criteria that hold on every page are asserted here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = pytest.mark.browser

_spec = importlib.util.spec_from_file_location("page_sweep", ROOT / "scripts" / "page_sweep.py")
page_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(page_sweep)

CHROMIUM = os.environ.get("GENLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need(condition: bool, reason: str) -> None:
    if not condition:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    _need((HTML / "index.html").exists(), "book not built: run `python3 tasks.py book` first")
    with page_sweep.Server(HTML) as running:
        yield running.url


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (test extra)")
    _need(CHROMIUM is not None, "no Chromium binary: apt-get install chromium, or set GENLAB_CHROMIUM")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


class Page:
    """A loaded page plus what it logged: console errors and failed requests for our own assets."""

    def __init__(self, browser, server: str, path: str):
        self.page = browser.new_page(viewport={"width": 1280, "height": 1800})
        self.errors: list[str] = []
        self.failed: list[str] = []
        origin = urlparse(server).netloc
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url) if urlparse(r.url).netloc == origin else None)
        self.page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}")
                     if r.status >= 400 and urlparse(r.url).netloc == origin else None)
        self.page.goto(f"{server}/{path}", wait_until="load")
        self.page.wait_for_timeout(1500)  # MathJax typesets after load

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def _math_page() -> str:
    """The first built page (in a stable order) whose source has display math."""
    for source in sorted((ROOT / "book").rglob("*.md")) + sorted((ROOT / "book").rglob("*.ipynb")):
        if "_build" in source.parts or "_ext" in source.parts:
            continue
        if "$$" in source.read_text(encoding="utf-8"):
            html = HTML / source.relative_to(ROOT).with_suffix(".html")
            if html.exists():
                return str(html.relative_to(HTML))
    pytest.skip("no built page with display math")


def _notebook_page() -> str:
    return "book/00_front/first_example.html"


def _assert_math_typeset(page: Page) -> None:
    containers = page.page.locator("mjx-container").count()
    assert containers > 0, "no MathJax output (mjx-container) on the page"
    text = page.page.locator("article").inner_text()
    assert "$$" not in text and "\\[" not in text, "raw TeX left on the page"


OWN_ASSETS = re.compile(r"mathjax|require|html-manager|embed-amd|widget|mermaid|_images|genlab", re.IGNORECASE)


def _assert_no_asset_errors(page: Page) -> None:
    """Our assets (vendored JS, figures, CSS) load without errors; the theme's own chatter is not judged."""
    failed = [url for url in page.failed if not url.endswith("/favicon.ico")]
    assert not failed, f"our own assets failed to load: {failed[:5]}"
    own = [e for e in page.errors if OWN_ASSETS.search(e)]
    assert not own, f"console errors from our assets: {own[:5]}"


def test_intro_page(browser, server):
    page = Page(browser, server, "book/intro.html")
    page.screenshot("intro")
    assert "Generative AI, Hands-On" in page.page.title()
    _assert_math_typeset(page)  # the intro has inline math: p(x), p(x|c)
    headings = page.page.locator("article h1").count()
    assert headings == 1, f"expected one h1 on the page, found {headings}"
    _assert_no_asset_errors(page)


def test_math_page(browser, server):
    path = _math_page()
    page = Page(browser, server, path)
    page.screenshot("math_page")
    _assert_math_typeset(page)
    _assert_no_asset_errors(page)


def test_notebook_page(browser, server):
    page = Page(browser, server, _notebook_page())
    page.screenshot("notebook_page")
    images = page.page.locator("article img")
    assert images.count() >= 3, "the notebook's figures are missing"
    sizes = page.page.eval_on_selector_all("article img", "els => els.map(e => [e.naturalWidth, e.alt])")
    assert all(width > 0 for width, _ in sizes), f"an image did not load: {sizes}"
    assert all(alt and not alt.endswith(".png") for _, alt in sizes), f"figures without alt text: {sizes}"
    # exercises: the solution is hidden until its toggle is clicked
    solution = page.page.locator(".solution.dropdown").first
    body = solution.locator("p").last
    assert not body.is_visible(), "the worked solution is visible before clicking"
    solution.locator(".toggle-button, button").first.click()
    page.page.wait_for_timeout(500)
    assert body.is_visible(), "the solution did not open when clicked"
    page.screenshot("notebook_page_solution_open")
    # the Colab launch button points at this notebook in the repository
    colab = page.page.locator("a[href*='colab.research.google.com']").first.get_attribute("href")
    assert colab.endswith("/blob/main/book/00_front/first_example.ipynb"), colab
    _assert_no_asset_errors(page)


ZH = HTML / "zh"


def _need_chinese_edition() -> None:
    _need((HTML / "index.html").exists(), "book not built: run `python3 tasks.py book` first")
    assert (ZH / "book" / "intro.html").exists(), "no Chinese edition: python3 tasks.py book builds both"


def _chinese_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum("\u4e00" <= c <= "\u9fff" for c in letters) / max(1, len(letters))


def test_chinese_edition_index(browser, server):
    """The Chinese intro: Chinese text and title, typeset math, and a working link to the English page."""
    _need_chinese_edition()
    page = Page(browser, server, "zh/book/intro.html")
    page.screenshot("zh_intro")
    assert page.page.locator("html").get_attribute("lang") == "zh-CN"
    assert "生成式 AI 动手实践" in page.page.title()
    article = page.page.locator("article").inner_text()
    assert _chinese_share(article) > 0.5, f"the Chinese intro is mostly not Chinese: {article[:300]!r}"
    _assert_math_typeset(page)
    nav = page.page.locator("nav.bd-docs-nav").inner_text()
    assert "入门" in nav and "Getting started" not in nav, "the table of contents' captions are not translated"
    links = page.page.eval_on_selector_all("article a.reference.internal", "els => els.map(e => e.href)")
    assert links and all("/zh/" in link for link in links), f"internal links leave the edition: {links[:5]}"
    switch = page.page.locator("p.genlab-edition a")
    assert switch.inner_text() == "English edition"
    switch.click()
    page.page.wait_for_load_state("load")
    assert page.page.url.endswith("/book/intro.html") and "/zh/" not in page.page.url
    assert "Generative AI, Hands-On" in page.page.title()
    page.page.locator("p.genlab-edition a").click()  # and back again
    page.page.wait_for_load_state("load")
    assert page.page.url.endswith("/zh/book/intro.html")
    _assert_no_asset_errors(page)


def test_chinese_edition_notebook_page(browser, server):
    """A Chinese notebook page: translated prose around the same code, outputs and figures; same Colab notebook."""
    _need_chinese_edition()
    page = Page(browser, server, "zh/" + _notebook_page())
    page.screenshot("zh_notebook_page")
    prose = " ".join(page.page.locator("article section > p").all_inner_texts())
    assert _chinese_share(prose) > 0.5, f"the page's prose is not Chinese: {prose[:300]!r}"
    english = Page(browser, server, _notebook_page())
    code = "div.cell_input pre, div.cell_output pre"
    assert page.page.locator(code).all_inner_texts() == english.page.locator(code).all_inner_texts(), \
        "the editions' code or outputs differ"
    images = page.page.eval_on_selector_all("article img", "els => els.map(e => e.naturalWidth)")
    assert len(images) >= 3 and all(width > 0 for width in images), f"figures missing: {images}"
    colab = page.page.locator("a[href*='colab.research.google.com']").first.get_attribute("href")
    assert colab.endswith("/blob/main/book/00_front/first_example.ipynb"), colab
    _assert_no_asset_errors(page)


def test_code_cells_fit_the_page(browser, server):
    page = Page(browser, server, _notebook_page())
    too_wide = page.page.eval_on_selector_all(
        "div.cell_input pre", "els => els.filter(e => e.scrollWidth > e.clientWidth + 2).length")
    assert too_wide == 0, f"{too_wide} code cells need horizontal scrolling at 1280 px"


def test_search_works(browser, server):
    page = Page(browser, server, "search.html?q=discriminator")
    page.page.wait_for_selector("#search-results li", timeout=15_000)
    assert page.page.locator("#search-results li").count() > 0


def test_internal_links_resolve():
    """Every internal href/src in the built HTML points at a file that exists (and an anchor on it)."""
    from html.parser import HTMLParser
    from urllib.parse import unquote, urldefrag

    _need((HTML / "index.html").exists(), "book not built: run `python3 tasks.py book` first")

    class Collector(HTMLParser):
        def __init__(self):
            super().__init__()
            self.links: list[str] = []
            self.ids: set[str] = set()

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if "id" in attrs:
                self.ids.add(attrs["id"])
            for key in ("href", "src"):
                value = attrs.get(key)
                if value and not re.match(r"^(https?:|mailto:|data:|javascript:|//)", value):
                    self.links.append(value)

    pages: dict[Path, Collector] = {}
    for page in HTML.rglob("*.html"):
        if "_static" in page.parts:
            continue
        collector = Collector()
        collector.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages[page.resolve()] = collector
    broken = []
    for page, collector in pages.items():
        for link in collector.links:
            target, anchor = urldefrag(link)
            path = (page.parent / unquote(target.split("?")[0])).resolve() if target else page
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                broken.append(f"{page.relative_to(HTML.resolve())}: {link}")
            elif anchor and path in pages and anchor not in pages[path].ids:
                broken.append(f"{page.relative_to(HTML.resolve())}: {link} (no such anchor)")
    assert not broken, f"{len(broken)} broken internal links, e.g. {broken[:8]}"


# ---------------------------------------------------------------------------------------------
# Every page, as a reader sees it at 400 px and 1280 px (scripts/page_sweep.py measures; the
# table of all counts is written to tests/artifacts/page_sweep.txt).

# Every criterion of page_sweep.CRITERIA is asserted per page, except the informational ones
# (page_sweep.INFO: sideways scrolling of display math and diagrams on a phone, which is acceptable).
ASSERTED = [c for c in page_sweep.CRITERIA if c not in page_sweep.INFO]
SCREENSHOTS = {"book/01_concepts/family_tree.html", "book/02_gan_math/optimal_discriminator.html",
               "book/04_practice/cgan_wgan.html"}
PAGES = page_sweep.pages(HTML) if (HTML / "index.html").exists() else []


def _run_sweep(*args: str) -> dict[str, dict]:
    """scripts/page_sweep.py in a subprocess (its async Playwright must not share this process's loop)."""
    _need(page_sweep.chromium() is not None, "no Chromium binary: apt-get install chromium, or set GENLAB_CHROMIUM")
    pytest.importorskip("playwright.async_api", reason="playwright not installed (test extra)")
    out = Path(args[args.index("--out") + 1])
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "page_sweep.py"), *args],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    print(done.stdout)
    return json.loads((out / "page_sweep.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sweep():
    _need((HTML / "index.html").exists(), "book not built: run `python3 tasks.py book` first")
    return _run_sweep("--out", str(ARTIFACTS), "--screenshots", *sorted(SCREENSHOTS))


@pytest.mark.parametrize("path", PAGES)
def test_page_reads_right(sweep, path):
    """At 400 px and 1280 px: no inline formula past its column (400 px); no display formula clipped or
    scrolling (1280 px); no raw TeX; no test markers, absolute paths or stray object reprs in what a reader
    sees; no table past the column or scrolling (1280 px); no table cut at 400 px; no diagram labels under
    11 px and no diagram wider than the column (1280 px); no console errors from the book's own assets."""
    row = sweep[path]
    failing = {criterion: row["examples"].get(criterion, []) for criterion in ASSERTED if row[criterion]}
    assert not failing, f"{path}: {failing}"


def test_every_page_was_measured(sweep):
    assert len(sweep) >= 40, f"only {len(sweep)} pages in _build/html"
    assert all(row["kib"] > 50 for row in sweep.values()), "a page loaded (almost) nothing"


# A page with one of each defect: every criterion of the sweep must see its own (so none of
# the per-page assertions above can pass by measuring nothing).
BROKEN_PAGE = """<!doctype html><html><head><title>The \\beta-VAE</title>
<style>
  body { margin: 0; } article { max-width: 600px; padding: 0 20px; }
  span.math { display: inline-flex; max-width: 100%; overflow: hidden; }
  div.math { display: flex; overflow: hidden; }
  mjx-container { display: inline-block; } mjx-container[display="true"] { display: block; flex-grow: 1; }
  mjx-math { display: inline-block; height: 1em; background: #ccc; }
</style></head><body>
<article class="bd-article">
  <p>A long inline formula <span class="math"><mjx-container><mjx-math style="width: 520px"></mjx-math>
  </mjx-container></span> in a paragraph.</p>
  <div class="math"><mjx-container display="true"><mjx-math style="width: 900px"></mjx-math></mjx-container></div>
  <div class="math" style="overflow-x: auto"><mjx-container display="true"><mjx-math style="width: 800px">
  </mjx-math></mjx-container></div>
  <p>Raw TeX: the \\(\\beta\\)-VAE.</p>
  <div class="cell"><div class="cell_input"><pre># NBVAL_CHECK_OUTPUT
print(1)</pre></div>
  <div class="cell_output"><div class="output"><pre>/root/.venv/lib/python3.11/site-packages/torch/nn/modules/module.py
&lt;matplotlib.legend.Legend at 0x7f00&gt;</pre></div></div></div>
  <table style="width: 1000px"><tr><td>a table wider than the column</td></tr></table>
  <div style="overflow-x: auto"><table style="width: 900px"><tr><td>a table that scrolls</td></tr></table></div>
  <pre class="mermaid"><svg viewBox="0 0 3000 300" style="width: 100%"><text class="nodeLabel" x="10" y="150"
    style="font-size: 16px">a label shrunk to 3 px</text></svg></pre>
  <pre class="mermaid" style="overflow-x: auto"><svg viewBox="0 0 1200 300" style="width: 1200px"><text
    class="nodeLabel" x="10" y="150" style="font-size: 16px">a diagram wider than the column</text></svg></pre>
  <img src="missing.png" alt="a missing figure">
  <script>console.error("an error from the book's own script");</script>
</article></body></html>
"""


def test_sweep_sees_every_defect(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><title>root</title>")
    (tmp_path / "broken.html").write_text(BROKEN_PAGE)
    (tmp_path / "clean.html").write_text(BROKEN_PAGE.split("<article")[0] + "<article class='bd-article'>"
                                         "<p>Nothing wrong here, and a short formula that fits its line: "
                                         "<span class='math'><mjx-container><mjx-math style='width: 120px'>"
                                         "</mjx-math></mjx-container>"
                                         "</span>.</p></article></body></html>")
    results = _run_sweep("broken.html", "clean.html", "--html", str(tmp_path), "--out", str(tmp_path / "out"))
    judged = [c for c in page_sweep.CRITERIA if c not in page_sweep.INFO]
    missed = [c for c in judged if results["broken.html"][c] == 0]
    assert not missed, f"the sweep did not see: {missed} ({results['broken.html']['examples']})"
    clean = {c: results["clean.html"][c] for c in judged if results["clean.html"][c] and c != "raw_tex"}
    assert not clean, f"false findings on a clean page: {clean} ({results['clean.html']['examples']})"
    assert results["clean.html"]["raw_tex"] == 1, "the title's \\beta is raw TeX, and the only raw TeX"
