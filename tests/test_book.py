"""The built book: every chapter executed with its asserts, and a page rendered in Chromium.

The book is built by CI before the tests (``jupyter-book build book -W -n --keep-going``).
Without a build these tests skip, unless ``SYMSPEC_REQUIRE_BOOK=1``, which makes a missing
build or a missing ``chromium`` a failure.

The rendering check opens a copy of one chapter in headless Chromium (Debian's ``chromium``
package) kept off the network, with a small probe script added at the end of the page. The
probe waits for MathJax and the images, then writes what the browser saw into the DOM:
MathJax output elements, TeX errors, each image's load state and natural size, and every
resource the page requested. ``--dump-dom`` returns it; a screenshot is checked too.
"""

from __future__ import annotations

import ast
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
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


def test_api_reference_covers_public_api():
    _need((HTML / "api.html").exists(), f"the book is not built ({HTML} is missing)")
    import symspec

    page = (HTML / "api.html").read_text()
    missing = [name for name in symspec.__all__
               if not re.search(rf'id="(module-)?symspec\.(\w+\.)?{re.escape(name)}"', page)]
    assert not missing, f"public names without an API entry: {missing}"


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


if __name__ == "__main__":  # executed asserts per chapter, for the CI log
    counts = assert_counts()
    for doc, n in counts.items():
        print(f"{n:5d}  {doc}")
    print(f"{sum(counts.values()):5d}  executed asserts in {len(counts)} chapters")
