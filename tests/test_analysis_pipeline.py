"""The whole analyzer from fixture run JSONs to every output file, and the wrt-analyze CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fixtures.analysis_runs import write_sweep

from wrt.analysis.report import Options, analyze
from wrt.analysis.thresholds import ThresholdError

REPO = Path(__file__).resolve().parents[1]
TABLES = ["thresholds", "robustness", "nash_per_scheme", "nash_per_category", "dominant_attacks",
          "fastest_attacks", "outcomes", "payoff_fashion_mnist", "runtimes_fashion_mnist", "embedding_fashion_mnist"]
PLOTS = ["payoff_fashion_mnist", "pareto_fashion_mnist", "radar_fashion_mnist", "runtime_fashion_mnist",
         "embedding_loss_fashion_mnist"]


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    results = write_sweep(tmp_path_factory.mktemp("results"))
    (results / "runs" / "half_written.json").write_text('{"schema_version": 1, "status": "o')
    printed = []
    report = analyze(Options(results_dir=str(results)), out=printed.append)
    return results, report, printed


def test_every_output_exists_and_report_embeds_them(analyzed):
    results, report, printed = analyzed
    out = results / "analysis"
    expected = [f"{t}.{ext}" for t in TABLES for ext in ("csv", "md", "tex")]
    expected += [f"{p}.{ext}" for p in PLOTS for ext in ("png", "pdf")]
    expected += ["nash.json", "failed_runs.csv", "runs.csv", "report.html"]
    assert [name for name in expected if not (out / name).is_file()] == []
    html = report.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(PLOTS)
    assert [name for name in expected if name != "report.html" and f'href="{name}"' not in html] == []
    assert "half_written.json" in html  # skipped files are listed
    assert printed[-1] == str(report)


def test_nash_json_shape_and_values(analyzed):
    results, _, printed = analyzed
    nash = json.loads((results / "analysis" / "nash.json").read_text())
    entry = nash["fashion_mnist"]
    entries = [entry["all"], *entry["per_scheme"].values(),
               *(e for per_cat in entry["per_category"].values() for e in per_cat.values())]
    for e in entries:
        assert set(e) == {"pure", "mixed"}
        assert set(e["pure"]) == {"scheme", "attack", "payoff"}
        assert set(e["mixed"]) == {"value", "defender", "attacker"}
        assert sum(e["mixed"]["defender"].values()) == pytest.approx(1.0)
    assert set(entry["per_scheme"]) == {"adi", "uchida"}
    # transfer learning removes every config at < 5 points stealing loss; pruning 0.9 loses 20 points
    assert entry["all"]["pure"]["attack"] == "transfer_learning(epochs=5)"
    assert entry["all"]["mixed"]["attacker"] == {"transfer_learning(epochs=5)": 1.0}
    assert entry["per_category"]["uchida"]["model_modification"]["pure"]["payoff"] == 0.0
    assert any(line.startswith("Nash equilibrium on fashion_mnist") for line in printed)


def test_tables_follow_the_sok(analyzed):
    results, _, _ = analyzed
    out = results / "analysis"
    robustness = pd.read_csv(out / "robustness.csv").set_index("attack")
    assert robustness.loc["transfer_learning", "adi"] == "✗"
    assert robustness.loc["weight_pruning", "uchida"] == "✓"  # the removal at rate 0.9 costs 20 points
    assert "none" not in robustness.index
    thresholds = pd.read_csv(out / "thresholds.csv").set_index("scheme")
    assert thresholds.loc["uchida", "binomial"] == pytest.approx(0.625)  # N=64: k=40
    assert thresholds.loc["adi", "n_null"] == 6
    dominant = pd.read_csv(out / "dominant_attacks.csv").set_index("attack")
    assert bool(dominant.loc["transfer_learning", "dominant"]) and not dominant.loc["weight_pruning", "dominant"]
    outcomes = pd.read_csv(out / "outcomes.csv")
    assert (outcomes["n_seeds"] == 2).all()
    assert outcomes["surrogate_wm_acc_lo"].le(outcomes["surrogate_wm_acc"]).all()
    assert pd.read_csv(out / "fastest_attacks.csv").set_index("scheme").loc["adi", "speed"] == "medium"


def test_failed_run_listed_and_never_a_success(analyzed):
    results, _, _ = analyzed
    out = results / "analysis"
    failed = pd.read_csv(out / "failed_runs.csv")
    assert list(failed["run_name"]) == ["uchida_failed"] and failed.loc[0, "failed_stage"] == "attack"
    outcomes = pd.read_csv(out / "outcomes.csv")
    cell = outcomes[(outcomes["scheme_config"] == "uchida(lambda=1)")
                    & (outcomes["attack_config"] == "transfer_learning(epochs=5)")].iloc[0]
    assert cell["n_runs"] == 2 and cell["n_failed"] == 1  # the failed seed is not among the averaged runs


def test_too_few_null_runs_refuses_with_counts(tmp_path):
    write_sweep(tmp_path, adi_null_wm=(0.1, 0.2))
    with pytest.raises(ThresholdError, match=r"adi on fashion_mnist: 2 null run\(s\), 5 needed"):
        analyze(Options(results_dir=str(tmp_path)), out=lambda line: None)


def test_cli_writes_report_and_rejects_missing_dir(tmp_path):
    write_sweep(tmp_path / "r", seeds=(0,))
    cmd = [sys.executable, "-m", "wrt.analysis.cli", f"results_dir={tmp_path / 'r'}", "max_stealing_loss=0.25"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "r" / "analysis" / "report.html")
    # with 25 points of stealing loss allowed, pruning at rate 0.9 removes both watermarks too
    robustness = pd.read_csv(tmp_path / "r" / "analysis" / "robustness.csv").set_index("attack")
    assert list(robustness.loc["weight_pruning", ["adi", "uchida"]]) == ["✗", "✗"]
    missing = subprocess.run([sys.executable, "-m", "wrt.analysis.cli", f"results_dir={tmp_path / 'nope'}"],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"wrt-analyze: error: results_dir {tmp_path / 'nope'} does not exist or is not a directory"]
