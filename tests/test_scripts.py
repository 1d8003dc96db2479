"""The measurement scripts under scripts/ that summarise finished sweeps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from fixtures.analysis_runs import write_sweep


def test_sweep_cost_sums_stage_seconds_and_reports_corrupt_files(tmp_path):
    write_sweep(tmp_path)
    runs = sorted((tmp_path / "runs").glob("*.json"))
    (tmp_path / "runs" / "broken.json").write_text("{not json")
    out = tmp_path / "cost.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_cost.py"), str(tmp_path), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary["runs"] == len(runs) and [s.split(":")[0] for s in summary["skipped"]] == ["broken.json"]
    # each fixture run spends 17.2 s in its stages, with one thread
    assert summary["core_hours"] == pytest.approx(len(runs) * 17.2 / 3600)
    assert summary["by_stage"]["embed"] == pytest.approx(len(runs) * 10.0 / 3600)
    assert proc.stdout.splitlines()[-1].split()[:2] == ["total", str(len(runs))]


def test_sweep_cost_names_a_folder_without_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sweep_cost.py"), str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "results_dir=" in proc.stderr and "nowhere" in proc.stderr
