"""report.html in a real browser (headless Chromium): every image loads and nothing overflows a 1,400-px window.

`make test` installs Debian's `chromium` when it is missing and runs as root; elsewhere this test skips with
a message saying so."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from fixtures.analysis_runs import write_budget_sweep, write_new_categories, write_sweep
from conftest import missing

from wrt.analysis.report import Options, analyze
from wrt.analysis.tables import MARKS

WIDTH = 1400
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# after the page (and its images) has loaded, write what the test checks into the DOM for --dump-dom
CHECKS = """<script>window.addEventListener('load', () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const result = {images: images.length, broken: broken,
                  scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth};
  const pre = document.createElement('pre'); pre.id = 'wrt-checks'; pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("chromium is not installed: `apt-get install chromium` (make test installs it when run as root)")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A wide report: two budgets (settings), one seed, forging runs, dummy neurons and a data-budget sweep."""
    results = write_sweep(tmp_path_factory.mktemp("browser"), seeds=(0,))
    write_sweep(results, seeds=(0,), budget="smoke", adi_null_wm=(0.3, 0.32, 0.34, 0.36, 0.38))
    write_new_categories(results, seeds=(0,))
    write_budget_sweep(results, seeds=(0,))
    return analyze(Options(results_dir=str(results)), out=lambda line: None)


def test_report_loads_every_image_and_fits_the_window(report, tmp_path):
    browser = chromium()
    page = tmp_path / "report_checked.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECKS + "</body>"), encoding="utf-8")
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},900",
                           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="wrt-checks">(.*?)</pre>', done.stdout)
    assert found, f"chromium exited {done.returncode} without the checks: {done.stderr[-2000:]}"
    checks = json.loads(found.group(1))
    assert checks["images"] == report.read_text(encoding="utf-8").count("<img ") > 0
    assert checks["broken"] == []
    assert checks["width"] == WIDTH and checks["scrollWidth"] <= WIDTH, checks


class Tables(HTMLParser):
    """The page's tables as lists of rows of cell texts (the header row first)."""

    def __init__(self):
        super().__init__()
        self.tables, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_report_shows_no_empty_ci_columns_and_each_note_once(report):
    html = report.read_text(encoding="utf-8")
    parser = Tables()
    parser.feed(html)
    for header, *rows in parser.tables:
        assert "seeds_agree" not in header  # one seed: no claim that the seeds agree
        for i, name in enumerate(header):
            if name.endswith(("_lo", "_hi")):  # one seed: no column of empty CIs
                assert any(row[i] != "–" for row in rows), (header, name)
    assert html.count("FPR steps of") == 2  # the ROC note once per distinct number of null runs (6 and 5)
    assert '<div class="scroll"><table' in html
    for term in ("θ′", "Eq. 6", "rescaled", "IP (input preprocessing)", "OB (obfuscation)", "stealing loss",
                 "embedding loss", "AM (ambiguity)"):
        assert term in html, term


def test_report_opens_on_the_summary_then_table_v_with_its_legend(report):
    html = report.read_text(encoding="utf-8")
    assert re.findall(r"<h2>(.*?)</h2>", html)[:3] == ["Summary", "Robustness (SoK Table V)",
                                                     "Configurations at each Table V cell&#x27;s equilibrium"]
    legend = re.search(r'<ul class="legend">(.*?)</ul>', html).group(1)
    for mark, _ in MARKS:  # every mark a cell can hold, coloured as in the table
        assert f'">{mark}</span>' in legend, mark
    assert '<td class="m robust">✓</td>' in html and '<td class="m removed">✗</td>' in html
    parser = Tables()
    parser.feed(html)
    summary = parser.tables[0]
    assert summary[0] == ["setting", "scheme", "marked_wm_acc", "survives", "removed_by", "not_decided"]
    assert len(summary) > 2
    measured = {row[0]: row[1:] for row in next(t for t in parser.tables if t[0][0] == "measure")[1:]}
    assert set(measured["seeds"]) == {"1"} and set(measured["seed_list"]) == {"0"}  # a count and the seeds
