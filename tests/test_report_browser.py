"""The report a user opens: `snakemake --report report.html` of the finished tiny run, opened in headless
Chromium and read the way a person reads it. The test visits the front page, Workflow, Statistics and
About, every category and subcategory in the sidebar, and every result they list (its view and its
information pane with the caption), and fails naming the page on a docutils "System Message", an
error or warning text, a Jinja leftover, a JavaScript error, an empty page or a result without a
caption. A screenshot of each visited page goes to the test's output folder (printed).

It needs Chromium (Debian's `chromium`; `.ci/run` installs it where it runs as root with apt-get) and
the `playwright` package (the dev extras), which drives that browser without downloading its own; it
skips, saying which is missing, where either is not installed. Set RHOCLUSTER_CHROMIUM to use another
Chromium binary.

    pytest -s tests/test_report_browser.py     # -s shows where the screenshots are
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_snakemake

CHROMIUM = os.environ.get("RHOCLUSTER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# Checked before the tiny run is asked for, so a machine without a browser skips at once.
pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM and Path(CHROMIUM).exists()),
        reason=f"Chromium not found ({CHROMIUM or 'none on PATH'}): apt-get install chromium, as .ci/run does as root",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the playwright package is not installed (pip install -e '.[dev]')",
    ),
]

# Text no page of the report may show: docutils' messages for a broken caption (rendered into the page
# as "System Message: WARNING/2 ..."), errors, Jinja that was not rendered, values that were missing.
BAD_TEXT = re.compile(
    r"System Message|\bERROR\b|\bWARNING\b|\w*Error:|Traceback|\{\{|\}\}|\{%|%\}|\bundefined\b|\bNone\b|\bnan\b"
)
SIDEBAR = "nav div.p-3"
MAIN = "#app div.grow"

# The sidebar's category links: the menu items after the "Results" heading (Snakemake's menu.js).
CATEGORY_LINKS = """() => {
    const out = []; let inResults = false;
    for (const li of document.querySelectorAll('nav div.p-3 > ul > li')) {
        if (li.classList.contains('uppercase')) { inResults = li.textContent.trim().toLowerCase() === 'results'; }
        else if (inResults) { out.push(li.textContent.trim()); }
    }
    return out;
}"""


def exactly(text: str) -> re.Pattern:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


class Reader:
    """A headless Chromium on the report: navigates like a person, records problems and screenshots."""

    def __init__(self, page, url: str, shots: Path):
        self.page, self.url, self.shots = page, url, shots
        self.problems: list[str] = []
        self.visited: list[str] = []
        self.js_errors: list[str] = []
        page.on("pageerror", lambda err: self.js_errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and self.js_errors.append(msg.text))
        # Offline: the report is one self-contained file; a request elsewhere is a defect.
        page.route(re.compile(r"^(?!file:|data:|blob:|about:)"), self.refuse)

    def refuse(self, route) -> None:
        self.problems.append(f"the report requests {route.request.url} (it must be self-contained)")
        route.abort()

    def open(self, *where: str) -> None:
        """Load the report afresh and follow the sidebar links ``where``."""
        self.page.goto(self.url)
        self.page.locator(f"{SIDEBAR} > ul > li").first.wait_for()
        for text in where:
            self.page.locator(f"{SIDEBAR} a", has_text=exactly(text)).first.click()

    def rows(self):
        return self.page.locator(f"{SIDEBAR} table tbody tr")

    def check(self, name: str, text: str, *, empty: bool = False) -> None:
        """Screenshot the page now shown; record bad ``text`` (what a reader reads on it), an ``empty``
        page or JavaScript errors."""
        self.visited.append(name)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")
        self.page.screenshot(path=str(self.shots / f"{len(self.visited):02d}-{slug}.png"))
        if bad := BAD_TEXT.search(text):
            start = max(bad.start() - 80, 0)
            self.problems.append(f"{name}: shows {bad.group()!r}: ...{text[start : bad.end() + 80]!r}")
        if empty:
            self.problems.append(f"{name}: the page is empty")
        self.problems += [f"{name}: JavaScript error {err!r}" for err in self.js_errors]
        self.js_errors.clear()

    def main_text(self) -> str:
        return self.page.locator(MAIN).first.inner_text()

    def page_check(self, name: str) -> None:
        """A page with the main pane and the sidebar (front page, Workflow, Statistics, About, a list)."""
        media = self.page.locator(f"{MAIN} canvas, {MAIN} svg, {MAIN} img").count() > 0
        empty = not media and not self.main_text().strip()
        self.check(name, self.page.locator("#app").inner_text(), empty=empty)

    def view(self, name: str, row) -> None:
        """A result's eye button: its figure or HTML page in the main pane (a table only downloads)."""
        eye = row.locator("a[iconname=eye]")
        if not eye.count() or eye.get_attribute("download") is not None:
            return
        eye.click()
        shown = self.page.locator(f"{MAIN} img, {MAIN} iframe").first
        shown.wait_for()
        if shown.evaluate("el => el.tagName") == "IMG":
            shown.evaluate("img => img.decode()")
            text, empty = "", not shown.evaluate("img => img.complete && img.naturalWidth > 0")
        else:
            frame = shown.element_handle().content_frame()
            frame.wait_for_load_state()
            text = frame.locator("body").inner_text()
            empty = not text.strip()
        self.check(f"{name} (view)", text, empty=empty)

    def information(self, name: str, row) -> None:
        """A result's information button: the sidebar shows its path, caption, size, rule and parameters.
        The caption must be there and clean; the job parameters are Python reprs (None is a value)."""
        row.locator("a[iconname=information-circle]").click()
        side = self.page.locator(SIDEBAR)
        side.locator("li", has_text=exactly("Size")).first.wait_for()
        items = [t.strip() for t in side.locator("ul > li").all_inner_texts()]
        headings = [t.lower() for t in items]
        shown = items[: headings.index("job parameters")] if "job parameters" in headings else items
        if "description" not in headings:
            self.problems.append(f"{name}: no caption (its information pane has no Description)")
        elif len(caption := items[headings.index("description") + 1]) < 20:
            self.problems.append(f"{name}: the caption {caption!r} is (nearly) empty")
        self.check(f"{name} (information)", "\n".join(shown))

    def back(self, where: list[str]) -> None:
        """Back to the list of results at ``where`` through the breadcrumbs."""
        self.page.locator("nav ol a", has_text=exactly(where[-1])).last.click()  # after the "Results" crumb
        self.rows().first.wait_for()


def read_report(html: Path, shots: Path) -> tuple[list[str], list[str]]:
    """Visit every page of the report at ``html``; return the problems found and the pages visited."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            reader = Reader(page, html.resolve().as_uri(), shots)
            reader.open()
            reader.page_check("front page")
            for item in ("Workflow", "Statistics", "About"):
                reader.open(item)
                page.wait_for_timeout(300)  # the rule graph and statistics are drawn by Vega
                reader.page_check(item)
            reader.open()
            categories = page.evaluate(CATEGORY_LINKS)
            report_categories = page.evaluate("() => Object.keys(categories)")
            if sorted(categories) != sorted(report_categories):
                reader.problems.append(f"the sidebar lists {categories}, the report has {report_categories}")
            seen: set[str] = set()
            for category in categories:
                reader.open(category)
                if reader.rows().count():  # one subcategory: the sidebar lists the results at once
                    places = [[category]]
                else:
                    reader.page_check(category)
                    subs = page.locator(f"{SIDEBAR} > ul > li").all_inner_texts()
                    places = [[category, sub.strip()] for sub in subs]
                for where in places:
                    reader.open(*where)
                    place = " / ".join(where)
                    reader.page_check(place)
                    if not reader.rows().count():
                        reader.problems.append(f"{place}: lists no result")
                    for index in range(reader.rows().count()):
                        row = reader.rows().nth(index)
                        name = f"{place} / {row.locator('td').first.inner_text().strip()}"
                        seen.add(name)
                        reader.view(name, row)
                        reader.information(name, row)
                        reader.back(where)
            held = page.evaluate("() => Object.keys(results).length")
            if len(seen) != held:
                reader.problems.append(f"the sidebar leads to {len(seen)} results, the report holds {held}")
            return reader.problems, reader.visited
        finally:
            browser.close()


@pytest.fixture(scope="module")
def tiny_report(tiny_run, tmp_path_factory) -> Path:
    """`snakemake --report` of the finished tiny run, written outside the run directory."""
    html = tmp_path_factory.mktemp("report") / "report.html"
    proc = run_snakemake(tiny_run, "--report", str(html), timeout=600)
    assert proc.returncode == 0 and html.stat().st_size > 0, proc.stdout[-4000:]
    return html


def test_every_page_of_the_report_reads_clean(tiny_report, tmp_path):
    problems, visited = read_report(tiny_report, tmp_path)
    print(f"\nscreenshots of {len(visited)} report pages: {tmp_path}")
    assert len(visited) > 10, visited
    assert not problems, "\n".join(problems)


BROKEN_WORKFLOW = """
from pathlib import Path

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40"><rect width="80" height="40" fill="teal"/></svg>'


rule all:
    input:
        "ok.txt", "warn.txt", "bare.txt", "none.txt", "short.txt", "a.svg", "b.svg",


rule make:
    output:
        report("ok.txt", caption="ok.rst", category="Tables"),
        report("warn.txt", caption="warn.rst", category="Tables"),
        report("bare.txt", category="Tables"),
        report("none.txt", caption="none.rst", category="Tables"),
        report("short.txt", caption="short.rst", category="Tables"),
        report("a.svg", caption="ok.rst", category="Figures", subcategory="first"),
        report("b.svg", caption="ok.rst", category="Figures", subcategory="second"),
    run:
        for path in output:
            Path(path).write_text(SVG if path.endswith(".svg") else "x\\n")
"""


def test_a_broken_caption_fails_naming_the_page(tmp_path):
    """A report with a docutils error, a result without a caption, a caption showing a missing value
    (None) and one that renders to a word, next to clean results in a category with two subcategories:
    the reader names exactly the four broken pages."""
    work = tmp_path / "workflow"
    work.mkdir()
    (work / "Snakefile").write_text(BROKEN_WORKFLOW)
    (work / "ok.rst").write_text("A clean caption of ``{{ snakemake.config['run'] }}``, long enough to read.\n")
    (work / "warn.rst").write_text("A caption with bad markup.\n\nterm\n  definition\nno blank line after it\n")
    (work / "short.rst").write_text("{{ snakemake.config.get('caption', '') }}Run.\n")
    (work / "none.rst").write_text("The budget is {{ snakemake.config.get('budget') }} of the target tokens.\n")
    for args in (["--cores", "1", "--config", "run=x"], ["--report", "report.html", "--config", "run=x"]):
        proc = run_snakemake(work, *args, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:]
    problems, visited = read_report(work / "report.html", tmp_path / "shots")
    print(f"\nscreenshots of {len(visited)} report pages: {tmp_path / 'shots'}")
    assert "Figures / second / b.svg (view)" in visited and "Tables / ok.txt (information)" in visited
    assert [p.split(":")[0] for p in problems] == [
        "Tables / bare.txt",
        "Tables / none.txt (information)",
        "Tables / short.txt",
        "Tables / warn.txt (information)",
    ], problems
    assert "no caption" in problems[0] and "'None'" in problems[1] and "System Message" in problems[3]
    assert "'Run.' is (nearly) empty" in problems[2]
