"""Issue #29 Part 3: a re-analysis of the same runs writes the same bytes, wherever the runs lie and in whatever
order the folders list them, the committed runs of docs/results/table5_demo re-analyse to its committed analysis,
and a fixed subset of them to a committed copy of its tables.

The committed copy: tests/fixtures/table5_demo_subset/ holds `runs.txt` (the files of docs/results/table5_demo that
the test analyses, one path a line, relative to that folder; add game runs and manifests there as they are
committed) and `analysis/`, the CSV and Markdown tables wrt-analyze wrote from them. After a change that is meant
to change those tables, regenerate the copy and review its diff:

    WRT_REGENERATE_FIXTURES=1 .venv/bin/python -m pytest -q tests/test_reanalysis.py -k committed
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fixtures.analysis_runs import run_record, write, write_sweep

from conftest import ROOT
from wrt.analysis import load
from wrt.analysis.report import Options, analyze

DEMO = ROOT / "docs" / "results" / "table5_demo"
SUBSET = ROOT / "tests" / "fixtures" / "table5_demo_subset"
TABLES = ("*.csv", "*.md")


def _files(folder: Path, skip=()) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name not in skip}


def _tables(folder: Path) -> dict[str, bytes]:
    """The CSV and Markdown tables in `folder`, by name."""
    return {p.name: p.read_bytes() for pattern in TABLES for p in folder.glob(pattern)}


def _analyze(results: Path, **options) -> list[str]:
    printed: list[str] = []
    analyze(Options(results_dir=str(results), reference="sok_cifar10", **options), out=printed.append)
    return printed


@pytest.fixture(scope="module")
def analysed_sweep(tmp_path_factory) -> Path:
    """The fixture sweep (two seeds: bootstrap intervals in the tables), analysed once."""
    results = write_sweep(tmp_path_factory.mktemp("sweep"))
    _analyze(results)
    return results


def test_reanalysing_unchanged_runs_changes_no_byte_and_keeps_the_published_folder(analysed_sweep):
    link = analysed_sweep / "analysis"
    target, before = os.readlink(link), _files(link)
    assert {"robustness.csv", "thresholds.md", "nash.json", "runs.csv", "report.html"} <= set(before)
    _analyze(analysed_sweep)
    assert os.readlink(link) == target and _files(link) == before  # report.html and the figures too
    assert [p.name for p in (analysed_sweep / "analysis.versions").iterdir()] == [Path(target).name]


def test_the_tables_do_not_depend_on_where_the_runs_lie_or_how_they_are_listed(analysed_sweep, tmp_path,
                                                                                monkeypatch):
    """The same runs at another path, listed in the reverse order: every written file but report.html (which
    names the folder) is the same, byte for byte."""
    shutil.copytree(analysed_sweep / "runs", tmp_path / "moved" / "runs")
    listed = load.run_files
    monkeypatch.setattr(load, "run_files", lambda results_dir: listed(results_dir)[::-1])
    _analyze(tmp_path / "moved")
    assert _files(tmp_path / "moved" / "analysis", skip={"report.html"}) == \
        _files(analysed_sweep / "analysis", skip={"report.html"})


def _subset_paths() -> list[Path]:
    lines = (SUBSET / "runs.txt").read_text().splitlines()
    return [Path(line) for line in (line.strip() for line in lines) if line and not line.startswith("#")]


def test_committed_runs_reanalyse_to_the_committed_tables(tmp_path):
    """The listed committed runs (docs/results/table5_demo) give the committed copy of every CSV and Markdown
    table (WRT_REGENERATE_FIXTURES=1 rewrites the copy instead)."""
    for relative in _subset_paths():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEMO / relative, tmp_path / relative)
    printed = _analyze(tmp_path)
    assert printed[-1] == str(tmp_path / "analysis" / "report.html")
    written = _tables(tmp_path / "analysis")
    expected_dir = SUBSET / "analysis"
    if os.environ.get("WRT_REGENERATE_FIXTURES"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        expected_dir.mkdir(parents=True)
        for name, data in written.items():
            (expected_dir / name).write_bytes(data)
    expected = _tables(expected_dir)
    assert sorted(written) == sorted(expected)
    for name in sorted(expected):
        assert written[name] == expected[name], f"{name} differs from tests/fixtures/table5_demo_subset/analysis"


def test_the_committed_campaign_analysis_is_that_of_its_committed_runs(tmp_path):
    """Issue #29's contract: wrt-analyze on docs/results/table5_demo's committed runs and manifests rewrites the
    committed analysis's CSV and Markdown tables byte for byte (commit the analysis with every commit of runs)."""
    for folder in ("runs", "manifests"):
        shutil.copytree(DEMO / folder, tmp_path / folder)
    _analyze(tmp_path, figures=False)
    committed = _tables(DEMO / "analysis")
    written = _tables(tmp_path / "analysis")
    assert "robustness_vs_reference.md" in committed and sorted(written) == sorted(committed)
    for name in sorted(committed):
        assert written[name] == committed[name], (f"{name} differs: rerun `wrt-analyze results_dir=docs/results/"
                                                  f"table5_demo reference=sok_cifar10` and commit its analysis")


def test_null_runs_alone_give_the_thresholds_beside_table4_and_no_game(tmp_path):
    """A campaign's first stage: θ (beside the SoK's Table IV θ) and the settings, one line saying there is no game
    yet, and no game table."""
    for i, wm in enumerate((0.05, 0.08, 0.10, 0.12, 0.15, 0.20)):
        write(tmp_path, run_record(run_name=f"null_adi_{i}", scheme="adi", scheme_params={"size": 50},
                                   attack="none", attack_params={}, seed=100 + i, role="null", marked_wm=wm))
    printed = _analyze(tmp_path)
    assert printed[-2] == (f"thresholds only: 6 null run(s) and no role=marked run yet, so no game; θ of 1 scheme(s) "
                           f"in {tmp_path / 'analysis' / 'thresholds.md'}")
    thresholds = pd.read_csv(tmp_path / "analysis" / "thresholds.csv")
    assert thresholds[["scheme", "paper_threshold"]].values.tolist() == [["adi", 0.1504]]
    assert {p.name for p in (tmp_path / "analysis").glob("*.csv")} == {"settings.csv", "thresholds.csv",
                                                                       "failed_runs.csv"}
