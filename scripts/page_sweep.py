#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium and measure what a reader sees wrong.

    python scripts/page_sweep.py                 # all pages of _build/html; table on stdout
    python scripts/page_sweep.py book/03_vae/elbo.html --screenshots    # and full-page PNGs

Each page is loaded once at 1280 px (every dropdown and solution opened), measured, then
narrowed to 400 px and measured again. Per page it counts:

    inline_math_400     inline formulas wider than the line they sit in at 400 px (clipped or past the column)
    display_clip_1280   display formulas wider than the column at 1280 px with no scroll container
    display_scroll_1280 display formulas that fit only by scrolling sideways at 1280 px (split them with aligned)
    display_scroll_400  display formulas that scroll sideways at 400 px (acceptable on a phone; reported)
    raw_tex             TeX source visible as text (\\beta, \\(, $$) in prose, title or sidebar
    nbval_marker        "# NBVAL_..." test markers visible in code cells
    abs_path            absolute file-system paths visible (/root/, /home/, /work/, /tmp/, site-packages, /.venv/)
    stray_repr          object reprs left in outputs (<matplotlib.…>, Text(…))
    wide_table_1280     tables wider than the column at 1280 px and not inside a scroll container
    table_scroll_1280   tables that fit only by scrolling sideways in their container at 1280 px
    wide_table_400      the same as wide_table_1280 at 400 px
    mermaid_small_text  mermaid diagrams whose labels are drawn smaller than 11 px (either width)
    mermaid_wide_1280   mermaid diagrams wider than their box at 1280 px (they scroll sideways: use a top-down
                        layout and shorter labels)
    mermaid_scroll_400  the same at 400 px (acceptable on a phone; reported)
    console_error       console errors, uncaught exceptions and failed requests for the book's own files
    kib                 bytes the page loaded from the book (HTML, CSS, JS, fonts, images), in KiB
    kib_gzip            the same as a compressing web server sends it (text gzipped, images as they are)

The table goes to stdout and to tests/artifacts/page_sweep.txt (plus page_sweep.json with
examples of every finding). tests/test_rendered_book.py imports this module and asserts the
criteria that hold on every page. Needs Playwright and a Chromium binary (see that test).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gzip
import http.server
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
ARTIFACTS = ROOT / "tests" / "artifacts"
WIDE, NARROW = 1280, 400

CRITERIA = ["inline_math_400", "display_clip_1280", "display_scroll_1280", "display_scroll_400", "raw_tex",
            "nbval_marker", "abs_path", "stray_repr", "wide_table_1280", "table_scroll_1280", "wide_table_400",
            "mermaid_small_text", "mermaid_wide_1280", "mermaid_scroll_400", "console_error"]
# Informational: measured and reported, never a failure (sideways scrolling is acceptable on a phone).
INFO = {"display_scroll_400", "mermaid_scroll_400"}

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    return os.environ.get("GENLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def pages(html: Path = HTML) -> list[str]:
    """Every page of both editions (but the root redirects), as paths under html/ (zh/... for 中文)."""
    skip = {"index.html", "zh/index.html"}  # the redirects to book/intro.html
    found = [p.relative_to(html).as_posix() for p in html.rglob("*.html")
             if not any(part in ("_static", "_sources") or part.startswith(".") for part in p.relative_to(html).parts)]
    return sorted(p for p in found if p not in skip)


class Server:
    """The built book over HTTP on 127.0.0.1 (a random free port), in a background thread."""

    def __init__(self, html: Path = HTML):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        self.html = html
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Server:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def local_file(self, url: str) -> Path | None:
        parsed = urlparse(url)
        if f"{parsed.scheme}://{parsed.netloc}" != self.url:
            return None
        path = self.html / unquote(parsed.path).lstrip("/")
        return path / "index.html" if path.is_dir() else path


# The measurements, run in the page. `col` is the content column (the article); an element counts
# as scrollable when an ancestor up to the article lets it scroll sideways (overflow-x auto/scroll).
MEASURE_JS = r"""
(viewport) => {
  const article = document.querySelector("article.bd-article") || document.querySelector("article") || document.body;
  const out = {};
  const note = (key, text) => {
    (out[key] = out[key] || []).push(String(text).replace(/\s+/g, " ").trim().slice(0, 120));
  };
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const scrollsX = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  const scrollAncestor = (el) => {
    for (let a = el; a && a !== article.parentElement; a = a.parentElement) if (scrollsX(a)) return a;
    return null;
  };
  const tex = (el) => {
    const m = el.querySelector("mjx-assistive-mml math");
    return el.getAttribute("aria-label") || (m ? m.textContent : el.textContent);
  };
  const colRect = article.getBoundingClientRect();
  const colRight = colRect.right - parseFloat(getComputedStyle(article).paddingRight);
  const colLeft = colRect.left + parseFloat(getComputedStyle(article).paddingLeft);

  if (viewport === "narrow") {
    // inline formulas: content wider than the box MathJax got, or the box past its block's right edge
    for (const el of article.querySelectorAll("mjx-container:not([display='true'])")) {
      if (!visible(el) || el.closest("table")) continue;   // tables are judged as tables
      const math = el.firstElementChild || el;
      const r = math.getBoundingClientRect();
      let block = el.parentElement;
      const blocks = ["block", "list-item", "table-cell", "flex", "grid"];
      while (block && !blocks.includes(getComputedStyle(block).display)) block = block.parentElement;
      const b = (block || article).getBoundingClientRect();
      const clipped = r.width > el.getBoundingClientRect().width + 1
        || (el.parentElement && r.width > el.parentElement.getBoundingClientRect().width + 1);
      if (clipped || r.right > Math.min(b.right, colRight) + 1) note("inline_math_400", tex(el));
    }
    for (const el of article.querySelectorAll("mjx-container[display='true']")) {
      if (!visible(el)) continue;
      const math = el.firstElementChild || el;
      if (math.getBoundingClientRect().width > el.clientWidth + 1) note("display_scroll_400", tex(el));
    }
  } else {
    for (const el of article.querySelectorAll("mjx-container[display='true']")) {
      if (!visible(el)) continue;
      const math = el.firstElementChild || el;
      const r = math.getBoundingClientRect();
      const box = el.getBoundingClientRect();
      const tooWide = r.width > Math.min(box.width, colRight - colLeft) + 1 || box.right > colRight + 1;
      if (!tooWide) continue;
      const scroller = scrollAncestor(el);
      if (!scroller || scroller.getBoundingClientRect().right > colRight + 1) note("display_clip_1280", tex(el));
      else note("display_scroll_1280", tex(el));
    }
    // text a reader sees: every visible text node outside code, scripts and typeset math
    const skip = "pre, code, script, style, textarea, mjx-container, .highlight, .cell_input, .cell_output, .output";
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const prose = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const p = n.parentElement;
      if (!p || p.closest(skip) || !n.textContent.trim() || !visible(p)) continue;
      prose.push(n.textContent);
    }
    const texPattern = /\\(?:[A-Za-z]{2,}|[()\[\]])|\$\$|(?:^|[\s(])\$[^$\s][^$]*[^$\s]\$(?=$|[\s.,;:)])/;
    for (const t of [document.title, ...prose]) if (texPattern.test(t)) note("raw_tex", t);
    // everything a reader sees, code and outputs included
    const shown = [];
    for (const el of article.querySelectorAll("pre, .output, .cell_output")) if (visible(el)) shown.push(el.innerText);
    const allText = [article.innerText, ...shown].join("\n");
    for (const el of article.querySelectorAll(".cell_input pre, div.highlight pre")) {
      if (!visible(el)) continue;
      for (const line of el.innerText.split("\n")) if (/^\s*#\s*NBVAL_/.test(line)) note("nbval_marker", line);
    }
    const pathPattern = /(?:^|[\s'"(=:\[])(?:\/(?:root|home|work|tmp)\/\S*|\S*site-packages\S*|\S*\/\.venv\/\S*)/g;
    for (const m of new Set(allText.match(pathPattern) || [])) note("abs_path", m);
    for (const el of article.querySelectorAll(".cell_output, .output")) {
      if (!visible(el) || el.parentElement.closest(".cell_output, .output")) continue;
      for (const line of el.innerText.split("\n"))
        if (/<matplotlib\.|^\s*\[?(?:Text|Line2D|Rectangle)\(/.test(line)) note("stray_repr", line);
    }
  }
  // mermaid diagrams (both widths): label text drawn smaller than 11 px once the SVG is scaled
  for (const svg of article.querySelectorAll(".mermaid svg")) {
    const view = svg.viewBox && svg.viewBox.baseVal;
    const label = svg.querySelector(".nodeLabel, .label, text");
    if (!view || !view.width || !label || !visible(svg)) continue;
    const px = parseFloat(getComputedStyle(label).fontSize) * svg.getBoundingClientRect().width / view.width;
    if (px < 11) note("mermaid_small_text", `${px.toFixed(1)} px at ${viewport}: ${label.textContent}`);
    const box = svg.closest("pre.mermaid, .mermaid") || svg.parentElement;
    const pad = parseFloat(getComputedStyle(box).paddingLeft) + parseFloat(getComputedStyle(box).paddingRight);
    const room = Math.min(box.clientWidth - pad, colRight - colLeft);
    if (svg.getBoundingClientRect().width > room + 1)
      note(viewport === "narrow" ? "mermaid_scroll_400" : "mermaid_wide_1280",
           `${Math.round(svg.getBoundingClientRect().width)} px in ${Math.round(room)}: ${label.textContent}`);
  }
  // tables (both widths): wider than the column, with no sideways scroll container within it
  const key = viewport === "narrow" ? "wide_table_400" : "wide_table_1280";
  for (const t of article.querySelectorAll("table")) {
    if (!visible(t) || t.parentElement.closest("table")) continue;
    const r = t.getBoundingClientRect();
    if (r.width <= colRight - colLeft + 1 && r.right <= colRight + 1) {
      const scroller = scrollAncestor(t);   // within the column, but cut by a clipping parent?
      let clip = null;
      for (let a = t.parentElement; a && a !== article; a = a.parentElement) {
        if (a === scroller) break;
        const hides = ["hidden", "clip"].includes(getComputedStyle(a).overflowX);
        if (hides && a.getBoundingClientRect().width + 1 < r.width) { clip = a; break; }
      }
      if (!clip) continue;
    } else {
      const scroller = scrollAncestor(t);
      if (scroller && scroller.getBoundingClientRect().right <= colRight + 1) {
        if (viewport !== "narrow") note("table_scroll_1280", (t.querySelector("th, td") || t).innerText);
        continue;
      }
    }
    const size = ` (${Math.round(r.width)} px in ${Math.round(colRight - colLeft)})`;
    note(key, (t.querySelector("th, td") || t).innerText + size);
  }
  return out;
}
"""

OPEN_ALL_JS = r"""
() => {
  for (const d of document.querySelectorAll("article details")) d.open = true;
  for (const b of document.querySelectorAll("article .toggle-button")) {
    const box = b.closest(".toggle-hidden");
    if (box) b.click();
  }
}
"""

READY_JS = r"""
async () => {
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = Date.now() + 8000;
  while (Date.now() < deadline) {
    const mj = window.MathJax;
    const usesMathJax = document.querySelector("script[src*='mathjax' i], script[src*='tex-' i]");
    const mathPending = usesMathJax && !(mj && mj.startup && mj.startup.promise);
    const usesMermaid = [...document.querySelectorAll("script[type='module']")].some((s) => s.text.includes("mermaid"));
    const mermaidPending = usesMermaid && document.querySelector(".mermaid:not([data-processed='true'])");
    if (!mathPending && !mermaidPending) break;
    await wait(100);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await Promise.race([MathJax.startup.promise, wait(8000)]);  // never re-typeset: MathML input would
                                                                // typeset MathJax's own assistive <math> copies
  }
  await wait(150);
}
"""


class Recorder:
    """Console errors, uncaught exceptions, failed requests and bytes for one page."""

    def __init__(self, page, server: Server):
        self.errors: list[str] = []
        self.bytes = 0
        self.files: dict[str, int] = {}
        self.paths: list[str] = []

        def on_console(message):
            where = (message.location or {}).get("url", "")
            if message.type == "error" and not where.endswith("/favicon.ico"):  # the book has no favicon
                self.errors.append(f"console: {message.text}" + (f" ({urlparse(where).path})" if where else ""))

        def on_response(response):
            path = server.local_file(response.url)
            if path is None:
                return
            if response.status >= 400:
                if not response.url.endswith("/favicon.ico"):
                    self.errors.append(f"{response.status}: {urlparse(response.url).path}")
            elif path.is_file() and response.url not in self.files:
                self.files[response.url] = path.stat().st_size
                self.paths.append(str(path))
                self.bytes += self.files[response.url]

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"exception: {error}"))
        page.on("response", on_response)
        page.on("requestfailed", lambda request: self.errors.append(f"failed: {urlparse(request.url).path}")
                if server.local_file(request.url) is not None else None)


async def measure(page) -> dict[str, list[str]]:
    """The findings on the current page at both widths (page must be loaded at 1280 px)."""
    await page.evaluate(OPEN_ALL_JS)
    await page.wait_for_timeout(100)
    await page.evaluate(READY_JS)
    found = await page.evaluate(MEASURE_JS, "wide")
    await page.set_viewport_size({"width": NARROW, "height": 900})
    await page.wait_for_timeout(250)
    for key, values in (await page.evaluate(MEASURE_JS, "narrow")).items():
        found.setdefault(key, []).extend(values)
    return found


async def sweep_page(browser, server: Server, path: str, screenshots: bool = False) -> dict:
    """Load one page at 1280 px and measure it at both widths (with full-page screenshots if asked)."""
    page = await browser.new_page(viewport={"width": WIDE, "height": 900})
    recorder = Recorder(page, server)
    try:
        await page.goto(f"{server.url}/{path}", wait_until="load")
        await page.evaluate(READY_JS)
        if screenshots:  # as a reader first sees the page: solutions closed
            await shot(page, path, WIDE)
            await page.set_viewport_size({"width": NARROW, "height": 900})
            await page.wait_for_timeout(300)
            await shot(page, path, NARROW)
            await page.set_viewport_size({"width": WIDE, "height": 900})
            await page.wait_for_timeout(300)
        found = await measure(page)
    finally:
        await page.close()
    found["console_error"] = list(dict.fromkeys(recorder.errors))
    result = {key: len(found.get(key, [])) for key in CRITERIA}
    result["kib"] = round(recorder.bytes / 1024)
    result["kib_gzip"] = round(sum(_gzipped(Path(f)) for f in recorder.paths) / 1024)
    result["examples"] = {key: values[:6] for key, values in found.items() if values}
    result["largest"] = sorted(((size, urlparse(url).path) for url, size in recorder.files.items()), reverse=True)[:6]
    return result


@functools.cache
def _gzipped(path: Path) -> int:
    """Bytes on the wire from a server that compresses (as GitHub Pages does); images as they are."""
    data = path.read_bytes()
    if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".woff", ".woff2"}:
        return len(data)
    return len(gzip.compress(data, compresslevel=6))


async def shot(page, path: str, width: int) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = path.removesuffix(".html").replace("/", "_")
    await page.screenshot(path=str(ARTIFACTS / f"{name}_{width}.png"), full_page=True)


async def _sweep(paths: list[str], html: Path, wanted, workers: int) -> dict[str, dict]:
    from playwright.async_api import async_playwright

    results: dict[str, dict] = {}
    queue = list(paths)
    with Server(html) as server:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS, headless=True)

            async def worker():
                while queue:
                    path = queue.pop(0)
                    results[path] = await sweep_page(browser, server, path, wanted(path))

            try:
                await asyncio.gather(*(worker() for _ in range(max(1, workers))))
            finally:
                await browser.close()
    return {path: results[path] for path in paths}


def sweep(paths: list[str] | None = None, html: Path = HTML, screenshots: bool | set[str] = False,
          workers: int = 3) -> dict[str, dict]:
    """Measure each page (all pages of the built book by default); returns {page: {criterion: count, ...}}.

    ``screenshots``: True for full-page screenshots of every page, or the set of pages to shoot.
    ``workers``: pages loaded at once (loading is partly waiting, so 3 keep 2 cores busy).
    Uses Playwright's async API in its own event loop: call it from plain (non-async) code.
    """
    paths = pages(html) if paths is None else paths
    wanted = (lambda path: True) if screenshots is True else (lambda path: path in (screenshots or ()))
    return asyncio.run(_sweep(paths, html, wanted, workers))


def table(results: dict[str, dict]) -> str:
    """A fixed-width table: one row per page, one column per criterion, totals last."""
    short = {"inline_math_400": "inl400", "display_clip_1280": "dclip", "display_scroll_1280": "dscr1280",
             "display_scroll_400": "dscr400",
             "raw_tex": "tex", "nbval_marker": "nbval", "abs_path": "path", "stray_repr": "repr",
             "wide_table_1280": "tab1280", "table_scroll_1280": "tscr1280", "wide_table_400": "tab400",
             "mermaid_small_text": "mermaid", "mermaid_wide_1280": "mer1280", "mermaid_scroll_400": "mscr400",
             "console_error": "err", "kib_gzip": "gzip"}
    columns = [*CRITERIA, "kib", "kib_gzip"]
    heads = [short.get(c, c) for c in columns]
    width = max([len("page"), *(len(p) for p in results)])
    lines = ["page".ljust(width) + "".join(h.rjust(8) for h in heads)]
    for path, row in results.items():
        lines.append(path.ljust(width) + "".join(str(row[c]).rjust(8) for c in columns))
    totals = [sum(row[c] for row in results.values()) for c in columns]
    pages_count = max(len(results), 1)
    lines.append("total".ljust(width) + "".join(str(t).rjust(8) for t in totals[:-2])
                 + "".join(str(round(t / pages_count)).rjust(8) for t in totals[-2:]) + "  (kib: mean per page)")
    lines.append("columns: " + ", ".join(f"{short.get(c, c)}={c}" for c in columns))
    return "\n".join(lines)


def write(results: dict[str, dict], out: Path = ARTIFACTS) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "page_sweep.txt").write_text(table(results) + "\n", encoding="utf-8")
    (out / "page_sweep.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out / "page_sweep.txt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="pages under _build/html (default: all)")
    parser.add_argument("--html", type=Path, default=HTML)
    parser.add_argument("--screenshots", nargs="*", metavar="PAGE",
                        help="full-page PNGs at both widths in tests/artifacts/ (of these pages; none named: all)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ARTIFACTS, help="folder for page_sweep.txt and .json")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        print(f"no built book in {args.html}: run `python3 tasks.py book` first")
        return 1
    if chromium() is None:
        print("no Chromium binary: apt-get install chromium, or set GENLAB_CHROMIUM")
        return 1
    started = time.perf_counter()
    screenshots = (set(args.screenshots) or True) if args.screenshots is not None else False
    results = sweep(args.pages or None, args.html, screenshots, args.workers)
    print(table(results))
    print(f"{len(results)} pages in {time.perf_counter() - started:.0f} s; written to {write(results, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
