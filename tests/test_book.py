"""The built book: every chapter executed with its asserts, and a page rendered in Chromium.

The book is built by CI before the tests (``jupyter-book build book -W -n --keep-going``).
Without a build these tests skip, unless ``SYMSPEC_REQUIRE_BOOK=1``, which makes a missing
build or a missing ``chromium`` a failure.

The rendering check opens a copy of one chapter in headless Chromium (Debian's ``chromium``
package) kept off the network, with a small probe script added at the end of the page. The
probe waits for MathJax and the images, then writes what the browser saw into the DOM:
MathJax output elements, TeX errors, each image's load state and natural size, and every
resource the page requested. ``--dump-dom`` returns it; a screenshot is checked too.

A second check renders *every* page of the book in one Chromium run: a driver page loads
each page in turn in a 1280-px-wide same-origin iframe, waits for its MathJax and images,
and reports per page its tables, paragraphs that are a Markdown table left as text, the
width of every displayed formula against its container, TeX errors, image loads and the
width each image is shown at.

Figure text: every PNG a chapter draws records the size of its smallest text in points and
its dpi (``book/_ext/symspec_figure_text.py``, loaded in every book kernel by the book's
IPython profile), so the height of that text on the page is ``pt * dpi / 72`` pixels in the
PNG times the shown width over the PNG's width; it must be at least 9 px in a 1280-px
window.
"""

from __future__ import annotations

import ast
import functools
import html
import http.server
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading
import types
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
HTML = BOOK / "_build" / "html"
EXECUTED = BOOK / "_build" / "jupyter_execute"
PAGE = Path("theory") / "why_spectra.html"   # a chapter with equations and figures
REQUIRE = os.environ.get("SYMSPEC_REQUIRE_BOOK", "") not in ("", "0")

PROBE = """
<script>
window.addEventListener("load", async () => {
  await MathJax.startup.promise;
  const imgs = Array.from(document.querySelectorAll("main img"));
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener("load", r); i.addEventListener("error", r); })));
  const report = {
    math_sources: document.querySelectorAll("main .math").length,
    mjx: document.querySelectorAll("main mjx-container").length,
    mjx_errors: document.querySelectorAll("mjx-merror").length,
    images: imgs.map(i => ({src: i.getAttribute("src"), complete: i.complete,
                            w: i.naturalWidth, h: i.naturalHeight})),
    resources: performance.getEntriesByType("resource").map(e => e.name),
  };
  const pre = document.createElement("pre");
  pre.id = "symspec-render-report";
  pre.textContent = JSON.stringify(report);
  document.body.appendChild(pre);
});
</script>
"""

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    "--virtual-time-budget=10000", "--window-size=1200,3000",
]


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if REQUIRE:
            pytest.fail(f"{reason} (SYMSPEC_REQUIRE_BOOK is set)")
        pytest.skip(f"{reason}; build it with `jupyter-book build book -W -n --keep-going`, "
                    "or set SYMSPEC_REQUIRE_BOOK=1 to make this a failure")


def chapters() -> list[str]:
    """The chapter documents of ``_toc.yml``, in order (the API page has no code)."""
    return re.findall(r"-\s*file:\s*(\S+)", (BOOK / "_toc.yml").read_text())


def assert_counts() -> dict[str, int]:
    """Executed ``assert`` statements per chapter, from the executed notebooks."""
    counts = {}
    for doc in chapters():
        nb = EXECUTED / f"{doc}.ipynb"
        if nb.exists():
            cells = json.loads(nb.read_text())["cells"]
            counts[doc] = sum(isinstance(node, ast.Assert)
                              for c in cells if c["cell_type"] == "code"
                              for node in ast.walk(ast.parse("".join(c["source"]))))
    return counts


def test_every_chapter_executed_with_asserts():
    _need((HTML / "index.html").exists(), f"the book is not built ({HTML} is missing)")
    for doc in chapters():
        if doc == "api":
            continue
        nb = EXECUTED / f"{doc}.ipynb"
        assert nb.exists(), f"chapter {doc} was not executed ({nb} is missing)"
        code = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        assert code, f"chapter {doc} has no code"
        for c in code:
            assert c["execution_count"] is not None, f"a cell of {doc} did not run"
            assert not [o for o in c["outputs"] if o["output_type"] == "error"], doc
    counts = assert_counts()
    short = {d: n for d, n in counts.items() if d != "api" and n < 3}
    assert not short, f"chapters with fewer than 3 executed asserts: {short}"


def reexports(module: str) -> list[str]:
    """The names a package re-exports explicitly (``from .x import name as name``), or its
    ``__all__``: the public API of that package or module."""
    mod = importlib.import_module(module)
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    tree = ast.parse(Path(mod.__file__).read_text())
    return [a.name for node in tree.body if isinstance(node, ast.ImportFrom)
            for a in node.names if a.asname == a.name]


# modules whose public names the reference documents (internals, numeric.core and
# numeric.lambdify, are shown but not required)
API_MODULES = ["symspec", "symspec.symbolic", "symspec.ops",
               "symspec.symbolic.denoiser", "symspec.symbolic.symbols",
               "symspec.symbolic.samplers", "symspec.numeric", "symspec.numeric.continuous",
               "symspec.schedules", "symspec.design", "symspec.spectra",
               "symspec.spectra.readers", "symspec.diffusers", "symspec.diffusers.verify",
               "symspec.plotting", "symspec.cli"]


def test_api_reference_covers_public_api():
    _need((HTML / "api.html").exists(), f"the book is not built ({HTML} is missing)")
    page = (HTML / "api.html").read_text()
    ids = set(re.findall(r'id="(?:module-)?(symspec[\w.]*)"', page))
    missing = []
    for module in API_MODULES:
        for name in reexports(module):
            obj = getattr(importlib.import_module(module), name)
            if isinstance(obj, types.ModuleType):
                found = f"{obj.__name__}" in ids
            else:
                found = any(i == f"symspec.{name}" or i.endswith(f".{name}")
                            and i.startswith("symspec.") for i in ids)
            if not found:
                missing.append(f"{module}.{name}")
    assert not missing, f"public names without an API entry: {missing}"
    private = sorted(i for i in ids if re.search(r"\._[a-z]", i))
    assert not private, f"private names in the API reference: {private}"


class _Recorder(http.server.SimpleHTTPRequestHandler):
    """Serves the copied site and records the path of every request."""

    log: list[str] = []

    def log_request(self, code="-", size="-"):
        self.log.append(self.path)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Serve a copy of the site on 127.0.0.1, with every host name mapped to it, and render
    the chapter: what the probe reported, the DOM, a screenshot and the request log."""
    _need((HTML / PAGE).exists(), f"the book is not built ({HTML / PAGE} is missing)")
    chromium = shutil.which("chromium")
    _need(chromium is not None, "chromium is not installed (apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("book")
    site = tmp / "html"
    shutil.copytree(HTML, site, ignore=shutil.ignore_patterns("_sources", "reports"))
    page = site / PAGE
    text = page.read_text()
    assert text.count("</body>") == 1
    page.write_text(text.replace("</body>", PROBE + "</body>"))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Recorder, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    url = f"http://{host}/{PAGE.as_posix()}"
    # no host name resolves: nothing but this server can be reached, and a remote fetch the
    # page attempts still shows in its Resource Timing entries
    run = [chromium, *CHROMIUM_FLAGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           f"--user-data-dir={tmp / 'profile'}"]
    try:
        dom = subprocess.run([*run, "--dump-dom", url], capture_output=True, text=True,
                             timeout=180, check=True).stdout
        shot = tmp / "page.png"
        subprocess.run([*run, f"--screenshot={shot}", url], capture_output=True, timeout=180,
                       check=True)
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="symspec-render-report"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, "the probe did not report: MathJax or the page never finished loading"
    return json.loads(html.unescape(found.group(1))), dom, shot, host, list(_Recorder.log)


def test_math_is_typeset(rendered):
    report, *_ = rendered
    assert report["math_sources"] >= 5, report
    assert report["mjx"] >= report["math_sources"], report   # every formula typeset
    assert report["mjx_errors"] == 0, report


def test_figures_load(rendered):
    report, *_ = rendered
    figures = [i for i in report["images"] if "_images/" in i["src"]]
    assert len(figures) >= 2, report["images"]
    for img in figures:
        assert (HTML / PAGE).parent.joinpath(img["src"]).resolve().is_file(), img
        assert img["complete"] and img["w"] > 100 and img["h"] > 100, img


def test_nothing_remote(rendered):
    report, dom, _, host, log = rendered
    remote = [u for u in report["resources"] if not u.startswith(f"http://{host}/")]
    assert not remote, f"the page requested remote resources: {remote}"
    assert any(p.startswith("/_static/mathjax/tex-chtml.js") for p in log), log
    assert any(p.startswith("/_static/mathjax/output/chtml/fonts/") for p in log), \
        "MathJax fonts were not served locally"
    tags = re.findall(r'<(?:script|link|img|iframe)[^>]*(?:src|href)="(https?:[^"]*)"', dom)
    assert not tags, f"remote references in the rendered page: {tags}"


def test_screenshot_shows_a_page(rendered):
    from PIL import Image, ImageStat

    shot = rendered[2]
    img = Image.open(shot).convert("L")
    assert img.size[0] >= 1000
    assert ImageStat.Stat(img).stddev[0] > 10      # not a blank page


# -- every page -------------------------------------------------------------------------

DRIVER = """<!doctype html>
<html><body><script>
const PAGES = %s;
function fits(w, el) {
  // a display formula fits its box, or sits in a box that scrolls horizontally
  const fit = el.scrollWidth <= el.clientWidth + 1;
  let scrolls = false;
  for (let a = el.parentElement; a && a.tagName !== "MAIN"; a = a.parentElement) {
    const o = w.getComputedStyle(a).overflowX;
    if ((o === "auto" || o === "scroll") && a.scrollWidth > a.clientWidth + 1) scrolls = true;
  }
  const box = el.closest(".math") || el.parentElement;
  const eqno = box && box.querySelector(".eqno");
  return {fit, scrolls, w: el.scrollWidth, cw: el.clientWidth,
          label: eqno ? eqno.textContent.trim() : el.textContent.slice(0, 60)};
}
async function probe(url) {
  const f = document.createElement("iframe");
  f.style.width = "1280px"; f.style.height = "900px";
  document.body.appendChild(f);
  await new Promise(r => { f.onload = r; f.src = url; });
  const w = f.contentWindow, d = f.contentDocument;
  if (w.MathJax && w.MathJax.startup) await w.MathJax.startup.promise;
  const imgs = Array.from(d.querySelectorAll("main img"));
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener("load", r); i.addEventListener("error", r); })));
  const q = s => Array.from(d.querySelectorAll(s));
  const report = {
    tables: q("main table").length,
    pipe_paragraphs: q("main p").map(p => p.textContent.trim())
                                .filter(t => t.startsWith("| ")).map(t => t.slice(0, 80)),
    headings: q("main h1, main h2, main h3").map(h => h.textContent.trim()),
    math_sources: q("main .math").length,
    mjx: q("main mjx-container").length,
    mjx_errors: q("mjx-merror").map(e => e.textContent.slice(0, 80)),
    displays: q('main mjx-container[display="true"]').map(el => fits(w, el)),
    images: imgs.map(i => ({src: i.getAttribute("src"), complete: i.complete,
                            w: i.naturalWidth, h: i.naturalHeight,
                            shown: i.getBoundingClientRect().width})),
  };
  f.remove();
  return report;
}
(async () => {
  const out = {};
  for (const page of PAGES) {
    try { out[page] = await probe(page); } catch (e) { out[page] = {error: String(e)}; }
  }
  const pre = document.createElement("pre");
  pre.id = "symspec-render-report";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script></body></html>
"""

TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$", re.M)


def pages() -> list[str]:
    """Every document of the book: the root, then the chapters of ``_toc.yml``."""
    root = re.search(r"^root:\s*(\S+)", (BOOK / "_toc.yml").read_text(), re.M).group(1)
    return [root, *chapters()]


def source_tables(doc: str) -> int:
    """Markdown tables in a chapter's text (code cells and other fenced blocks excluded)."""
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1\s*$", "", (BOOK / f"{doc}.md").read_text(),
                  flags=re.M | re.S)
    return len(TABLE_RULE.findall(text))


def printed_tables(doc: str) -> int:
    """Markdown tables the chapter's code cells print (``text/markdown`` outputs)."""
    nb = EXECUTED / f"{doc}.ipynb"
    if not nb.exists():
        return 0
    outputs = [o for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"
               for o in c["outputs"]]
    return sum(len(TABLE_RULE.findall("".join(o.get("data", {}).get("text/markdown", ""))))
               for o in outputs)


@pytest.fixture(scope="module")
def every_page(tmp_path_factory):
    """Render every page of the book in one headless Chromium run; the probe's report per
    page."""
    docs = pages()
    _need(all((HTML / f"{d}.html").exists() for d in docs),
          f"the book is not built ({HTML} is missing pages)")
    chromium = shutil.which("chromium")
    _need(chromium is not None, "chromium is not installed (apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("book_all")
    site = tmp / "html"
    shutil.copytree(HTML, site, ignore=shutil.ignore_patterns("_sources", "reports"))
    (site / "symspec-probe.html").write_text(
        DRIVER % json.dumps([f"/{d}.html" for d in docs]))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Recorder, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/symspec-probe.html"
    run = [chromium, *[f for f in CHROMIUM_FLAGS if not f.startswith("--virtual-time")],
           "--virtual-time-budget=120000",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           f"--user-data-dir={tmp / 'profile'}", "--dump-dom", url]
    try:
        dom = subprocess.run(run, capture_output=True, text=True, timeout=300,
                             check=True).stdout
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="symspec-render-report"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, "the probe did not report: a page or its MathJax never finished loading"
    report = json.loads(html.unescape(found.group(1)))
    assert sorted(report) == sorted(f"/{d}.html" for d in docs), sorted(report)
    return {d: report[f"/{d}.html"] for d in docs}


def test_every_page_rendered(every_page):
    errors = {d: r["error"] for d, r in every_page.items() if "error" in r}
    assert not errors, errors


def test_tables_are_tables(every_page):
    for doc, r in every_page.items():
        expected = source_tables(doc) + printed_tables(doc)
        assert r["tables"] >= expected, \
            f"{doc}: {expected} Markdown tables in the source and outputs, {r['tables']} <table>s"
        assert not r["pipe_paragraphs"], \
            f"{doc}: Markdown tables rendered as text: {r['pipe_paragraphs']}"
    assert sum(printed_tables(d) for d in every_page) >= 7   # the chapters' results tables


def test_headings_numbered_once(every_page):
    for doc, r in every_page.items():
        twice = [h for h in r["headings"] if re.match(r"^\d+(\.\d+)*\.?\s+\d+\.\s", h)]
        assert not twice, f"{doc}: headings numbered twice: {twice}"


def test_every_formula_typeset_and_fits(every_page):
    for doc, r in every_page.items():
        assert r["mjx"] >= r["math_sources"], f"{doc}: formulas not typeset: {r}"
        assert not r["mjx_errors"], f"{doc}: TeX errors: {r['mjx_errors']}"
        wide = [m for m in r["displays"] if not (m["fit"] or m["scrolls"])]
        assert not wide, f"{doc}: displayed formulas wider than the page: {wide}"
    assert sum(r["math_sources"] for r in every_page.values()) >= 50


def test_every_image_loads(every_page):
    for doc, r in every_page.items():
        for img in r["images"]:
            assert img["complete"] and img["w"] > 0 and img["h"] > 0, f"{doc}: {img}"
    assert sum(len(r["images"]) for r in every_page.values()) >= 10


# -- figure text ------------------------------------------------------------------------

MIN_TEXT_PX = 9      # the smallest text a figure may show, CSS pixels, in a 1280-px window
# a cell's output image, named by myst-nb after its content hash (static images are not
# drawn by a book kernel, so carry no text record)
OUTPUT_IMAGE = re.compile(r"_images/[0-9a-f]{64}\.png$")


def figure_text():
    """``book/_ext/symspec_figure_text.py``, the kernel hook that records figure text."""
    spec = importlib.util.spec_from_file_location(
        "symspec_figure_text", BOOK / "_ext" / "symspec_figure_text.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shown_text_px(png: Path, shown_width: float) -> tuple[float, str] | None:
    """The height in CSS pixels of a figure's smallest text when the PNG is shown
    ``shown_width`` pixels wide, and that text; ``(inf, "")`` for a figure without text,
    None for a PNG without a text record."""
    from PIL import Image

    ft = figure_text()
    with Image.open(png) as img:
        record, width = dict(img.text), img.width
    if ft.DPI not in record:
        return None
    if ft.MIN_PT not in record:
        return float("inf"), ""
    px_in_png = float(record[ft.MIN_PT]) * float(record[ft.DPI]) / 72
    return px_in_png * shown_width / width, record.get(ft.TEXT, "")


def small_figure_text(page: Path, images: list[dict]) -> list[str]:
    """The figures of a page (its HTML file, and the probe's report of its images) whose
    smallest text is under ``MIN_TEXT_PX`` as shown, or that carry no record of it."""
    bad = []
    for img in images:
        if not OUTPUT_IMAGE.search(img["src"]):
            continue
        png = page.parent.joinpath(img["src"]).resolve()
        found = shown_text_px(png, img["shown"])
        if found is None:
            bad.append(f"{img['src']}: no text-size record (was it drawn outside a book "
                       "kernel? the build sets IPYTHONDIR=book/_ipython)")
        elif found[0] < MIN_TEXT_PX:
            px, text = found
            bad.append(f"{img['src']}: text {text!r} is {px:.1f} px tall, shown "
                       f"{img['shown']:.0f} of {img['w']} px wide")
    return bad


def test_figure_text_legible(every_page):
    for doc, r in every_page.items():
        bad = small_figure_text(HTML / f"{doc}.html", r["images"])
        assert not bad, f"{doc}: figure text under {MIN_TEXT_PX} px at 1280 px: {bad}"
    checked = sum(bool(OUTPUT_IMAGE.search(i["src"]))
                  for r in every_page.values() for i in r["images"])
    assert checked >= 10, checked


@pytest.mark.parametrize("fontsize, shown, legible", [
    (10, 1.0, True),     # 10 pt at 150 dpi: 20.8 px in the PNG, shown at full size
    (10, 0.5, True),     # shown at half width: 10.4 px
    (8, 0.5, False),     # 8.3 px
    (4, 1.0, False),     # 8.3 px even at full size
])
def test_figure_text_check_fails_on_small_text(tmp_path, monkeypatch, fontsize, shown,
                                              legible):
    """The hook records what the check needs, and the check fails on small text: a figure
    drawn with the hook installed (as in a book kernel), then shown at a fraction of its
    width."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    monkeypatch.setattr(FigureCanvasAgg, "print_png", FigureCanvasAgg.print_png)  # restored
    figure_text().install()
    fig, ax = plt.subplots(figsize=(6.4, 3), dpi=150)
    ax.plot([0, 1], label="curve")
    ax.tick_params(labelsize=12)
    ax.legend(fontsize=fontsize)
    ax.set_title("hidden", fontsize=2, visible=False)       # not drawn: not counted
    ax.set_xlabel("   ")                                      # blank: not counted
    name = f"{'0' * 64}.png"                                   # a cell output's name
    png = tmp_path / "_images" / name
    png.parent.mkdir()
    fig.savefig(png, bbox_inches="tight")                     # as the inline backend does
    plt.close(fig)
    from PIL import Image

    with Image.open(png) as img:
        width = img.width
    px, text = shown_text_px(png, shown * width)
    assert text == "curve"
    assert px == pytest.approx(fontsize * 150 / 72 * shown)
    images = [{"src": f"../_images/{name}", "w": width, "shown": shown * width}]
    bad = small_figure_text(tmp_path / "theory" / "page.html", images)
    assert (not bad) == legible, bad
    if not legible:
        assert "'curve' is" in bad[0], bad


def test_figure_text_hook_counts_only_drawn_text():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ft = figure_text()
    fig, (a, b) = plt.subplots(1, 2, dpi=120)
    a.set_xlabel("label", fontsize=11)
    a.tick_params(labelsize=10)
    b.imshow([[0, 1], [1, 0]])
    b.axis("off")
    b.tick_params(labelsize=3)       # the axes of b are not drawn
    fig.text(0.5, 0.5, "note", fontsize=9.5)
    record = ft.text_record(fig)
    plt.close(fig)
    assert record == {ft.DPI: "120", ft.MIN_PT: "9.5", ft.TEXT: "note"}
    empty = plt.figure(dpi=80)
    assert ft.text_record(empty) == {ft.DPI: "80"}
    plt.close(empty)


if __name__ == "__main__":  # executed asserts per chapter, for the CI log
    counts = assert_counts()
    for doc, n in counts.items():
        print(f"{n:5d}  {doc}")
    print(f"{sum(counts.values()):5d}  executed asserts in {len(counts)} chapters")
