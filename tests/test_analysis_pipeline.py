"""The whole analyzer from fixture run JSONs to every output file, and the wrt-analyze CLI."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import WRT_ANALYZE, run_tool
from fixtures.analysis_runs import (run_record, write, write_budget_sweep, write_disagreeing_seed, write_forging_runs,
                                    write_new_categories, write_sweep)

from wrt.analysis.load import ResultsDirError, load_runs
from wrt.analysis.tables import MARKED_ROW
from wrt.analysis.report import Options, analyze, check_options, prepare
from wrt.analysis.thresholds import ThresholdError

REPO = Path(__file__).resolve().parents[1]
TABLES = ["thresholds", "robustness", "robustness_configs", "roc", "nash_per_scheme", "nash_per_category", "dominant_attacks",
          "fastest_attacks", "outcomes", "payoff_fashion_mnist", "runtimes_fashion_mnist", "embedding_fashion_mnist"]
PLOTS = ["roc", "payoff_fashion_mnist", "pareto_fashion_mnist", "radar_fashion_mnist", "runtime_fashion_mnist",
         "embedding_loss_fashion_mnist"]
BUDGET_TABLES, BUDGET_PLOTS = ["data_budget", "min_data_to_remove"], ["data_budget"]


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
    # no attack was run at several data budgets and none forged a claim: no budget or forgery outputs
    assert not any((out / f"{name}.csv").exists() for name in [*BUDGET_TABLES, "forgery"])
    assert "data budget" not in html and "forging" not in html


def test_nash_json_shape_and_values(analyzed):
    results, _, printed = analyzed
    nash = json.loads((results / "analysis" / "nash.json").read_text())
    entry = nash["fashion_mnist"]
    entries = [entry["all"], *entry["per_scheme"].values(),
               *(e for per_cat in entry["per_category"].values() for e in per_cat.values())]
    for e in entries:
        assert set(e) == {"pure", "mixed", "missing_pairs", "left_out"}
        assert e["missing_pairs"] == [] and e["left_out"] == {"scheme_configs": [], "attack_configs": []}  # complete
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
    configs = pd.read_csv(out / "robustness_configs.csv").set_index(["attack", "scheme"])
    pruning = configs.loc[("weight_pruning", "uchida")]  # the game behind the ✓: 2 scheme × 2 attack configs
    assert (pruning["scheme_configs"], pruning["attack_configs"], pruning["removed"], pruning["missing_pairs"]) \
        == (2, 2, False, 0)
    assert pruning["attack_config"].startswith("weight_pruning(") and pruning["scheme_config"].startswith("uchida(")
    assert configs.loc[("transfer_learning", "adi"), "removed"]
    thresholds = pd.read_csv(out / "thresholds.csv").set_index("scheme")
    assert thresholds.loc["uchida", "binomial"] == pytest.approx(0.625)  # N=64: k=40
    assert thresholds.loc["adi", "n_null"] == 6
    # N=100 trigger inputs on 10 classes: chance floor 0.16, below the null runs' normal fit
    assert thresholds.loc["adi", "binomial"] == pytest.approx(0.16) and thresholds.loc["adi", "chance"] == 0.1
    assert thresholds.loc["adi", "threshold"] == pytest.approx(thresholds.loc["adi", "normal"])
    dominant = pd.read_csv(out / "dominant_attacks.csv").set_index("attack")
    assert bool(dominant.loc["transfer_learning", "dominant"]) and not dominant.loc["weight_pruning", "dominant"]
    outcomes = pd.read_csv(out / "outcomes.csv")
    assert (outcomes["n_seeds"] == 2).all()
    assert outcomes["surrogate_wm_acc_lo"].le(outcomes["surrogate_wm_acc"]).all()
    assert pd.read_csv(out / "fastest_attacks.csv").set_index("scheme").loc["adi", "speed"] == "medium"


def test_roc_of_verification(analyzed):
    results, _, _ = analyzed
    table = pd.read_csv(results / "analysis" / "roc.csv").set_index("positives")
    assert set(table["scheme"]) == {"adi"}  # uchida has no null runs, so no negatives
    assert table.loc["marked", "n_pos"] == 4 and table.loc["marked", "n_neg"] == 6  # 2 configs × 2 seeds
    assert table.loc["marked", "auc"] == 1.0 and table.loc["marked", "tpr_at_1fpr"] == 1.0
    assert table.loc["surrogate:all", "n_pos"] == 16  # 4 attack configs × 2 configs × 2 seeds
    # pruning at 0.9 leaves wm acc ≈ 0.05, below every null run but the lowest (0.05, a tie for seed 0)
    assert table.loc["surrogate:weight_pruning(rate=0.9)", "auc"] == pytest.approx(0.5 / 24)
    assert table.loc["surrogate:input_smoothing(sigma=1)", "auc"] == 1.0
    assert table["note"].str.contains("6 negatives: FPR steps of 17%").all()


def test_failed_run_listed_and_never_a_success(analyzed):
    results, _, _ = analyzed
    out = results / "analysis"
    failed = pd.read_csv(out / "failed_runs.csv")
    assert list(failed["run_name"]) == ["uchida_failed"] and failed.loc[0, "failed_stage"] == "attack"
    outcomes = pd.read_csv(out / "outcomes.csv")
    cell = outcomes[(outcomes["scheme_config"] == "uchida(lambda=1)")
                    & (outcomes["attack_config"] == "transfer_learning(epochs=5)")].iloc[0]
    assert cell["n_runs"] == 2 and cell["n_failed"] == 1  # the failed seed is not among the averaged runs


def test_too_few_null_runs_skip_the_scheme_with_counts(tmp_path, capsys):
    write_sweep(tmp_path, adi_null_wm=(0.1, 0.2))
    analyze(Options(results_dir=str(tmp_path), figures=False), out=lambda line: None)  # uchida has its θ: analysed
    lines = [line for line in capsys.readouterr().err.splitlines() if "no θ" in line]
    assert len(lines) == 1 and "adi on fashion_mnist: 2 null run(s), 5 needed" in lines[0]
    assert set(pd.read_csv(tmp_path / "analysis" / "outcomes.csv")["scheme"]) == {"uchida"}
    write_sweep(tmp_path, adi_null_wm=())
    for path in (tmp_path / "runs").glob("uchida*.json"):  # no scheme has a θ: one error line
        path.unlink()
    with pytest.raises(ThresholdError, match=r"adi on fashion_mnist: 2 null run\(s\), 5 needed"):
        analyze(Options(results_dir=str(tmp_path), figures=False), out=lambda line: None)


def test_cli_writes_report_and_rejects_missing_dir(tmp_path):
    write_sweep(tmp_path / "r", seeds=(0,))
    done = run_tool([WRT_ANALYZE, f"results_dir={tmp_path / 'r'}", "max_stealing_loss=0.25", "figures=false"], REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "r" / "analysis" / "report.html")
    # with 25 points of stealing loss allowed, pruning at rate 0.9 removes both watermarks too
    robustness = pd.read_csv(tmp_path / "r" / "analysis" / "robustness.csv").set_index("attack")
    assert list(robustness.loc["weight_pruning", ["adi", "uchida"]]) == ["✗", "✗"]
    missing = run_tool([WRT_ANALYZE, f"results_dir={tmp_path / 'nope'}"], REPO)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"wrt-analyze: error: results_dir {tmp_path / 'nope'} does not exist or is not a directory"]


@pytest.fixture(scope="module")
def seeds_and_budgets(tmp_path_factory):
    """Three seeds (on seed 2 input smoothing removes adi) and attacks against adi at several data budgets."""
    results = write_sweep(tmp_path_factory.mktemp("budgets"), seeds=(0, 1, 2))
    write_disagreeing_seed(results, seed=2)
    write_budget_sweep(results)
    report = analyze(Options(results_dir=str(results)), out=lambda line: None)
    return results / "analysis", report.read_text(encoding="utf-8")


def test_robustness_flags_seeds_that_disagree(seeds_and_budgets):
    out, html = seeds_and_budgets
    robustness = pd.read_csv(out / "robustness.csv").set_index("attack")
    assert robustness.loc["input_smoothing", "adi"] == "±(1 of 3)"  # the seed means keep the watermark
    assert robustness.loc["input_smoothing", "uchida"] == "✓"
    assert robustness["seeds_agree"].drop(MARKED_ROW).to_dict() == {"input_smoothing": False, "weight_pruning": True,
                                                   "retraining": True, "transfer_learning": True}
    assert "±(k of n)</span> the seeds disagree" in html  # the legend
    assert r"$\pm$(1 of 3)" in (out / "robustness.tex").read_text(encoding="utf-8")
    cell = pd.read_csv(out / "outcomes.csv").set_index(["scheme_config", "attack_config"]).loc[
        ("adi(size=50)", "input_smoothing(sigma=1)")]
    assert cell["n_seeds"] == 3 and cell["success_rate"] == pytest.approx(1 / 3) and not cell["success"]
    # seed by seed: seed 2's equilibrium alone removes adi, the other two and the seed means do not
    seeds = pd.read_csv(out / "robustness_seeds.csv").set_index(["attack", "scheme", "seed"]).sort_index()
    adi = seeds.loc[("input_smoothing", "adi")]
    assert adi["removed"].to_dict() == {0: False, 1: False, 2: True} and not adi["cell_removed"].any()
    assert adi.loc[2, "surrogate_wm_acc"] < adi.loc[2, "theta"] < adi.loc[0, "surrogate_wm_acc"]
    assert not seeds.loc[("input_smoothing", "uchida"), "removed"].any()
    # seed 2's 0.05 is at or below every unmarked adi model's score, the kept seeds' above all of them; uchida
    # has no null runs (its θ is the binomial bound)
    assert adi["null_share"].to_dict() == {0: 0.0, 1: 0.0, 2: 1.0}
    assert seeds.loc[("input_smoothing", "uchida"), "null_share"].isna().all()
    assert "Table V cells seed by seed" in html


def test_seeds_option_analyses_the_game_of_those_seeds_with_every_null_run(tmp_path):
    results = write_sweep(tmp_path / "results", seeds=(0, 1, 2))
    write_disagreeing_seed(results, seed=2)
    marks = {}
    for seeds in ([2], [0, 1]):
        out = tmp_path / f"seeds{len(seeds)}"
        analyze(Options(results_dir=str(results), seeds=seeds, out_dir=str(out), figures=False), out=lambda line: None)
        robustness = pd.read_csv(out / "analysis" / "robustness.csv").set_index("attack")
        marks[tuple(seeds)] = robustness.loc["input_smoothing", "adi"]
        assert robustness.loc["input_smoothing", "seeds"] == len(seeds)
        thresholds = pd.read_csv(out / "analysis" / "thresholds.csv").set_index("scheme")
        assert thresholds.loc["adi", "n_null"] == 6  # θ from every null run, whatever the seeds
        assert f"seeds {', '.join(map(str, seeds))} only" in (out / "analysis" / "report.html").read_text("utf-8")
    assert marks == {(2,): "✗", (0, 1): "✓"}  # seed 2 alone removes adi; together the seeds disagree (±)
    with pytest.raises(ResultsDirError, match=r"^seeds=\[7\]: no role=marked run under .* has one of these seeds; "
                                              r"seeds present: 0, 1, 2$"):
        prepare(Options(results_dir=str(results), seeds=[7]))
    with pytest.raises(ResultsDirError, match=r"^seeds=\['0'\] is not allowed: must be null or a non-empty list"):
        check_options(Options(seeds=["0"]))


def test_tables_that_average_over_runs_report_cis(seeds_and_budgets):
    out, _ = seeds_and_budgets
    expected = {"outcomes": ["surrogate_wm_acc", "stealing_loss", "payoff"],
                "nash_per_scheme": ["rescaled_wm_acc", "stealing_loss"],
                "nash_per_category": ["rescaled_wm_acc", "stealing_loss"],
                "dominant_attacks": ["nash_payoff"], "fastest_attacks": ["attack_time_ratio"],
                "runtimes_fashion_mnist": ["attack_time_ratio"],
                "embedding_fashion_mnist": ["embedding_loss", "embed_time_ratio"],
                "data_budget": ["surrogate_wm_acc", "rescaled_wm_acc", "surrogate_test_acc", "stealing_loss"]}
    for name, measures in expected.items():
        table = pd.read_csv(out / f"{name}.csv")
        for m in measures:
            assert {m, f"{m}_lo", f"{m}_hi"} <= set(table.columns), (name, m)
    per_scheme = pd.read_csv(out / "nash_per_scheme.csv")
    # the budget runs attack adi(size=50) only: adi(size=100) never faced them, so adi's game leaves it out
    # (an unrun pair is missing, not 0) and its equilibrium is a budget run of seeds 0 and 1
    assert per_scheme.set_index("scheme")[["n_seeds", "missing_pairs"]].to_dict("index") == {
        "adi": {"n_seeds": 2, "missing_pairs": 5}, "uchida": {"n_seeds": 3, "missing_pairs": 0}}
    assert (per_scheme["stealing_loss_lo"] <= per_scheme["stealing_loss"]).all()
    assert (per_scheme["stealing_loss"] <= per_scheme["stealing_loss_hi"]).all()


def test_data_budget_table_plot_and_minimum(seeds_and_budgets):
    out, html = seeds_and_budgets
    assert all((out / f"{t}.{ext}").is_file() for t in BUDGET_TABLES for ext in ("csv", "md", "tex"))
    assert all((out / f"{p}.{ext}").is_file() for p in BUDGET_PLOTS for ext in ("png", "pdf"))
    assert html.count("data:image/png;base64,") == len(PLOTS) + len(BUDGET_PLOTS)
    assert "Attacker&#x27;s data budget" in html and "Minimum data to remove" in html
    sweep = pd.read_csv(out / "data_budget.csv")
    assert set(sweep["scheme_config"]) == {"adi(size=50)"}  # only pairs run at several budgets
    tl = sweep[sweep["attack"] == "transfer_learning(epochs=5)"]
    assert list(tl["attack_config"]) == [f"transfer_learning(epochs=5)@data={f}" for f in ("1%", "10%", "100%")]
    assert list(tl["images"].fillna(-1)) == [200, 2000, -1]  # the full-data runs predate attack.data
    assert list(tl["success"]) == [False, True, True]  # 1 %: 9 points of stealing loss
    minimum = pd.read_csv(out / "min_data_to_remove.csv").set_index("attack")
    assert minimum.loc["transfer_learning(epochs=5)", "min_images"] == 2000
    assert minimum.loc["retraining(epochs=10)", ["min_images", "min_fraction"]].tolist() == [60000, 1.0]
    assert minimum["removed"].all() and (minimum["budgets_tried"] == 3).all()


@pytest.fixture(scope="module")
def new_categories(tmp_path_factory):
    """The sweep plus forging (ambiguity) runs against three schemes and dummy neurons (obfuscation)."""
    results = write_sweep(tmp_path_factory.mktemp("new_categories"))
    write_new_categories(results)
    printed = []
    report = analyze(Options(results_dir=str(results), figures=False), out=printed.append)
    return results / "analysis", report.read_text(encoding="utf-8"), printed


def test_forgery_table_report_and_summary(new_categories):
    out, html, printed = new_categories
    assert all((out / f"forgery.{ext}").is_file() for ext in ("csv", "md", "tex"))
    table = pd.read_csv(out / "forgery.csv").set_index("scheme")
    assert list(table.index) == ["adi", "greedy_residuals", "unforgeable"]
    adi = table.loc["adi"]
    assert (adi["scheme_config"], adi["attack_config"]) == ("adi(size=50)", "forging(attempts=200)")
    assert adi[["n_seeds", "attempts", "key_size", "claim_level"]].tolist() == [2, 200, 100, 0.16]
    assert adi[["verified", "best_wm_acc", "false_claim_rate", "false_claim"]].tolist() == [195, 1.0, 1.0, "yes"]
    assert adi["mean_wm_acc"] == pytest.approx(0.96)
    gr = table.loc["greedy_residuals"]
    assert gr[["verified", "claim_level", "false_claim_rate", "false_claim"]].tolist() == [0, 1.0, 0.0, "no"]
    na = table.loc["unforgeable"]
    assert na["false_claim"] == "not applicable" and na["reason"] == "Unforgeable has no counterfeit-key strategy"
    assert na[["attempts", "verified", "best_wm_acc", "false_claim_rate"]].isna().all()
    assert "Ambiguity (forging) attacks" in html and "made without training data verifies on the stolen model" in html
    assert 'href="forgery.csv"' in html
    assert "forging: false ownership claims succeed against 1 of 3 schemes (1 not applicable)" in printed
    assert printed[-1].endswith("report.html")


def test_forging_stays_out_of_the_removal_game(new_categories):
    out, _, _ = new_categories
    robustness = pd.read_csv(out / "robustness.csv")
    assert "forging" not in set(robustness["attack"])
    assert not any("forging" in c for c in pd.read_csv(out / "payoff_fashion_mnist.csv").columns)
    assert "forging" not in set(pd.read_csv(out / "outcomes.csv")["attack"])
    assert "ambiguity" not in set(pd.read_csv(out / "nash_per_category.csv")["category"])
    assert not pd.read_csv(out / "roc.csv")["positives"].str.contains("forging").any()
    # schemes run only with forging need no decision threshold
    assert set(pd.read_csv(out / "thresholds.csv")["scheme"]) == {"adi", "uchida"}


def test_obfuscation_is_a_category_of_the_game(new_categories):
    out, _, _ = new_categories
    robustness = pd.read_csv(out / "robustness.csv")
    assert list(robustness["category"]) == ["embedding", "input_preprocessing", "model_modification", "model_extraction",
                                            "obfuscation"]
    dummy = robustness.set_index("attack").loc["dummy_neurons"]
    assert (dummy["adi"], dummy["uchida"]) == ("✓", "✗")  # uchida's key no longer fits: wm acc 0
    per_category = pd.read_csv(out / "nash_per_category.csv").set_index(["scheme", "category"])
    assert per_category.loc[("uchida", "obfuscation"), "rescaled_wm_acc"] == 0.0
    runs = pd.read_csv(out / "runs.csv").set_index("run_name")
    assert runs.loc["uchida0_dummy_neurons_s0", "surrogate.wm_error"] == "KeyMismatch: layer shape changed"


def test_only_forging_runs_give_the_forgery_table_without_a_game(tmp_path):
    write_forging_runs(tmp_path)  # no null runs and no removal attack: no thresholds and no game
    printed = []
    report = analyze(Options(results_dir=str(tmp_path), figures=False), out=printed.append)
    out = tmp_path / "analysis"
    assert pd.read_csv(out / "forgery.csv")["false_claim"].tolist() == ["yes", "no", "not applicable"]
    assert not (out / "nash.json").exists() and "Ambiguity (forging) attacks" in report.read_text(encoding="utf-8")
    assert printed == ["forging: false ownership claims succeed against 1 of 3 schemes (1 not applicable)",
                       str(report)]


# ------------------------------------------------------------------ one experiment, settings apart


def test_other_experiments_analysis_outputs_are_never_read(tmp_path):
    write_sweep(tmp_path / "demo", seeds=(0,))
    out = tmp_path / "demo" / "analysis"
    out.mkdir()
    (out / "nash.json").write_text('{"fashion_mnist": {}}')  # another analysis' output
    (out / "runs").mkdir()
    (out / "runs" / "x.json").write_text("{}")  # a runs/ folder inside an analysis/ output
    (tmp_path / "demo" / "notes.json").write_text("{}")  # not in a runs/ folder
    warnings = []
    loaded = load_runs(tmp_path, warn=warnings.append)
    assert warnings == [] and loaded.skipped == []
    assert all("/runs/" in p and "/analysis/" not in p for p in loaded.runs["path"])
    assert len(load_runs(tmp_path / "demo" / "runs", warn=warnings.append).runs) == len(loaded.runs)


@pytest.fixture(scope="module")
def two_budgets(tmp_path_factory):
    """The sweep at budget=default and at budget=smoke, where input smoothing removes adi."""
    results = write_sweep(tmp_path_factory.mktemp("budgets2"), seeds=(0,))
    write_sweep(results, seeds=(0,), budget="smoke", adi_null_wm=(0.3, 0.32, 0.34, 0.36, 0.38))
    report = analyze(Options(results_dir=str(results), figures=False), out=lambda line: None)
    return results / "analysis", report.read_text(encoding="utf-8")


def test_budgets_are_settings_with_their_own_thresholds_and_rows(two_budgets):
    out, html = two_budgets
    settings = ["fashion_mnist/small_cnn/default", "fashion_mnist/small_cnn/smoke"]
    thresholds = pd.read_csv(out / "thresholds.csv").set_index(["setting", "scheme"])
    assert thresholds.loc[(settings[0], "adi"), "n_null"] == 6 and thresholds.loc[(settings[1], "adi"), "n_null"] == 5
    assert thresholds.loc[(settings[1], "adi"), "threshold"] > thresholds.loc[(settings[0], "adi"), "threshold"]
    assert list(thresholds["threshold_from"]) == [s for s in settings for _ in range(2)]
    robustness = pd.read_csv(out / "robustness.csv")
    assert list(robustness["setting"].unique()) == settings and len(robustness) == 8
    assert (robustness["attack"] == MARKED_ROW).sum() == 2  # one per setting, first
    robustness = robustness[robustness["attack"] != MARKED_ROW]
    marks = robustness[["adi", "uchida"]].to_numpy().ravel()
    assert not any("/" in m for m in marks)  # no merged cells
    # one seed: the seeds cannot agree or disagree, so nothing is claimed
    assert robustness["seeds_agree"].isna().all() and (robustness["seeds"].astype(str) == "1").all()
    md = (out / "robustness.md").read_text(encoding="utf-8")
    assert "✓ robust" in md and "– not run" in md  # the Markdown says what each cell means
    assert {f"payoff_{s.replace('/', '_')}.csv" for s in settings} <= {p.name for p in out.iterdir()}
    assert "What was measured" in html and "Glossary" in html and "Marked and attacked models" in html
    models = pd.read_csv(out / "models.csv")
    assert {"marked_wm_acc", "marked_test_acc", "surrogate_wm_acc", "surrogate_test_acc"} <= set(models.columns)
    settings_table = pd.read_csv(out / "settings.csv")
    assert list(settings_table["budget"]) == ["default", "smoke"] and (settings_table["train_images"] == 3000).all()


def test_thresholds_of_another_setting_only_when_told(tmp_path, capsys):
    write_sweep(tmp_path, seeds=(0,))
    write_sweep(tmp_path, seeds=(0,), budget="smoke", adi_null_wm=())  # no null runs at budget=smoke
    analyze(Options(results_dir=str(tmp_path), figures=False), out=lambda line: None)  # skipped with a line naming the fix
    assert [line for line in capsys.readouterr().err.splitlines() if "no θ" in line] == [
        "warning: setting fashion_mnist/small_cnn/smoke not analysed for adi (no θ): adi on "
        "fashion_mnist/small_cnn/smoke: 0 null run(s), 5 needed (min_null_runs=5) (setting "
        "fashion_mnist/small_cnn/default has a θ for adi: add thresholds_from=fashion_mnist/small_cnn/default to "
        "use it)"]
    thresholds = pd.read_csv(tmp_path / "analysis" / "thresholds.csv").set_index(["setting", "scheme"])
    assert ("fashion_mnist/small_cnn/smoke", "adi") not in thresholds.index
    done = run_tool([WRT_ANALYZE, f"results_dir={tmp_path}", "thresholds_from=fashion_mnist/small_cnn/default",
                     "figures=false"], REPO)
    assert done.returncode == 0, done.stderr
    thresholds = pd.read_csv(tmp_path / "analysis" / "thresholds.csv").set_index(["setting", "scheme"])
    borrowed = thresholds.loc[("fashion_mnist/small_cnn/smoke", "adi")]
    assert borrowed["threshold_from"] == "fashion_mnist/small_cnn/default"
    assert borrowed["threshold"] == thresholds.loc[("fashion_mnist/small_cnn/default", "adi"), "threshold"]
    assert thresholds.loc[("fashion_mnist/small_cnn/smoke", "uchida"), "threshold_from"].endswith("smoke")


def test_a_copied_run_counts_once(tmp_path):
    write_sweep(tmp_path, seeds=(0,))
    original = tmp_path / "runs" / "adi0_transfer_learning5_s0.json"
    (tmp_path / "copy" / "runs").mkdir(parents=True)
    shutil.copy(original, tmp_path / "copy" / "runs" / "backup.json")
    shutil.copy(original, tmp_path / "runs" / "again.json")
    warnings = []
    runs = load_runs(tmp_path, warn=warnings.append).runs
    assert (runs["run_name"] == "adi0_transfer_learning5_s0").sum() == 1
    assert runs.loc[runs["run_name"] == "adi0_transfer_learning5_s0", "path"].item() == str(original)
    duplicate = [w for w in warnings if "adi0_transfer_learning5_s0" in w]
    assert len(duplicate) == 1 and "is in 3 files" in duplicate[0] and "backup.json" in duplicate[0]


def test_two_results_folders_are_analysed_as_one(tmp_path):
    """Your runs beside a baseline: `results_dir=[mine,base]` plays one game (the same Table V as one folder
    with every run); the baseline's run copied unchanged into yours counts once without a warning; the
    analysis goes to the first folder, or to out_dir."""
    whole = write_sweep(tmp_path / "whole", seeds=(0,))
    analyze(Options(results_dir=str(whole), figures=False), out=lambda line: None)
    figures = [p.name for p in (whole / "analysis").iterdir() if p.suffix in (".png", ".pdf")]
    assert (whole / "analysis" / "robustness.csv").is_file() and not figures  # figures=false: the tables only
    base, mine = tmp_path / "base", tmp_path / "mine"
    shutil.copytree(whole / "runs", base / "runs")
    (mine / "runs").mkdir(parents=True)
    for path in (base / "runs").glob("uchida*.json"):  # "your scheme": uchida's runs are only in mine
        shutil.move(path, mine / "runs" / path.name)
    copied = "adi0_transfer_learning5_s0.json"
    shutil.copy(base / "runs" / copied, mine / "runs" / copied)
    done = run_tool([WRT_ANALYZE, f"results_dir=[{mine},{base}]", "figures=false"], tmp_path)
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(mine / "analysis" / "report.html")
    assert not (base / "analysis").exists()
    table = pd.read_csv(mine / "analysis" / "robustness.csv")
    assert table.equals(pd.read_csv(whole / "analysis" / "robustness.csv")) and "uchida" in table.columns

    record = json.loads((mine / "runs" / copied).read_text())
    (mine / "runs" / copied).write_text(json.dumps({**record, "created": "2025-02-01T00:00:00Z"}))  # a rerun
    warnings = []
    loaded = load_runs([mine, base], warn=warnings.append)
    assert (loaded.runs["run_name"] == record["run_name"]).sum() == 1
    assert any(f"run {record['run_name']} is in 2 files; kept {mine / 'runs' / copied}" in w for w in warnings)
    assert prepare(Options(results_dir=[str(mine), str(base)], out_dir=str(tmp_path / "out")),
                   warn=lambda line: None).out_dir == tmp_path / "out" / "analysis"


@pytest.mark.parametrize("field, value, reason", [
    ("embedding_loss", 1e300, "embedding_loss is 1e+300, expected a difference of accuracies in [-1, 1]"),
    ("stealing_loss", -1.5, "stealing_loss is -1.5"),
    ("scheme.key_size", -100, "scheme.key_size is -100, expected an integer ≥ 1 or null"),
    ("marked.wm_acc", 1.2, "marked.wm_acc is 1.2"),
    ("source.train_time_s", -3.0, "source.train_time_s is -3.0"),
    ("timing_s", {"attack": -1.0}, "timing_s.attack is -1.0, expected a number ≥ 0 or null"),
    ("attack_time_ratio", -0.1, "attack_time_ratio is -0.1"),
    ("seed", 2**64, "seed is 18446744073709551616"),
])
def test_values_outside_their_meaning_are_skipped(tmp_path, field, value, reason):
    record = run_record(run_name="bad", scheme="adi", scheme_params={"size": 50}, attack="weight_pruning",
                        attack_params={"rate": 0.5}, seed=0)
    node = record
    *parents, last = field.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    write(tmp_path, record)
    write(tmp_path, {**record, "run_name": "good", **run_record(
        run_name="good", scheme="adi", scheme_params={"size": 50}, attack="weight_pruning",
        attack_params={"rate": 0.5}, seed=1)})
    warnings = []
    assert list(load_runs(tmp_path, warn=warnings.append).runs["run_name"]) == ["good"]
    assert len(warnings) == 2 and "bad.json" in warnings[0] and reason in warnings[0], warnings


def test_cli_help_unknown_options_and_bad_values_are_one_line(tmp_path):
    def cli(*args):
        return run_tool([WRT_ANALYZE, *args], REPO)

    helped = cli("--help")
    assert helped.returncode == 0 and "thresholds_from" in helped.stdout
    assert "Configuration groups" not in helped.stdout and "scheme:" not in helped.stdout  # wrt-run's groups
    typo = cli(f"results_dir={tmp_path}", "theshold_method=normal")
    assert typo.returncode == 2 and typo.stderr.splitlines() == [
        "wrt-analyze: error: unknown option theshold_method; did you mean threshold_method? options: results_dir, "
        "p, theta_prime, max_stealing_loss, max_embedding_loss, threshold_method, min_null_runs, thresholds_from, "
        "reference, merge_numerics, out_dir, figures, seeds"]
    bad = cli(f"results_dir={tmp_path}", "p=abc")
    assert bad.returncode == 2 and bad.stderr.splitlines() == [
        "wrt-analyze: error: p='abc' is not allowed: must be a number in (0, 1)"]
    bad = cli(f"results_dir={tmp_path}", "merge_numerics=maybe")
    assert bad.returncode == 2 and bad.stderr.splitlines() == [
        "wrt-analyze: error: merge_numerics='maybe' is not allowed: must be true or false"]
    with pytest.raises(ResultsDirError, match="^figures='maybe' is not allowed: must be true or false$"):
        check_options(Options(figures="maybe"))  # the same check, in process
