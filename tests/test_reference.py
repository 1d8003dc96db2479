"""The SoK's Tables IV and V ship as data, and a computed Table V is compared with them cell by cell."""

from __future__ import annotations

import pandas as pd
import pytest

from wrt.analysis.reference import agreement_line, agreement_per_attack, beside_table5, compare, table4, table5
from wrt.validation import InvalidParameter


def test_reference_tables_hold_the_papers_marks():
    cifar, imagenet = table5("sok_cifar10"), table5("sok_imagenet")
    assert len(cifar) == 10 * 11 and set(cifar["mark"]) == {"✓", "✗", "–"}
    mark = lambda table, attack, scheme: table.set_index(["attack", "scheme"]).loc[(attack, scheme), "mark"]  # noqa: E731
    # spot checks against the paper's Table V: retraining removes uchida but not jia; weight
    # shifting removes frontier stitching on ImageNet only; smooth retraining is run on DAWN alone
    assert mark(cifar, "retraining", "uchida") == "✗" and mark(cifar, "retraining", "jia") == "✓"
    assert mark(cifar, "weight_shifting", "frontier_stitching") == "✓"
    assert mark(imagenet, "weight_shifting", "frontier_stitching") == "✗"
    assert mark(cifar, "smooth_retraining", "adi") == "–" and mark(cifar, "smooth_retraining", "dawn") == "✗"
    assert table4("sok_cifar10")["adi"] == pytest.approx(0.1504)
    assert table4("sok_imagenet")["blackmarks"] == pytest.approx(0.8073)


def test_comparison_counts_only_cells_decided_in_both():
    ours = pd.DataFrame([
        {"category": "model_extraction", "attack": "retraining", "adi": "✗", "jia": "✗",
         "dawn": "±(1 of 2)", "greedy_residuals": "✗"},
        {"category": "model_extraction", "attack": "smooth_retraining", "adi": "✓", "jia": "–",
         "dawn": "✗", "greedy_residuals": "✓"},
    ])
    cells = compare(ours, "sok_cifar10")
    assert "greedy_residuals" not in set(cells["scheme"])  # not in the SoK's Table V
    by_cell = cells.set_index(["attack", "scheme"])["agrees"]
    assert by_cell[("retraining", "adi")] == True  # noqa: E712
    assert by_cell[("retraining", "jia")] == False  # noqa: E712  (the SoK: jia survives retraining)
    assert pd.isna(by_cell[("retraining", "dawn")])  # seeds disagree: not compared
    assert pd.isna(by_cell[("smooth_retraining", "adi")])  # the SoK did not run it
    assert agreement_line(cells) == "agreement 2/3 cells"  # adi×retraining, dawn×smooth_retraining agree
    rows = agreement_per_attack(cells).set_index("attack")
    assert rows.loc["retraining"].to_dict() == {"agree": 1, "decided": 2, "compared": 3, "agreement": "1/2",
                                                "agree_majority": 1, "decided_majority": 2, "agreement_majority": "1/2"}
    assert rows.loc["smooth_retraining"].to_dict() == {"agree": 1, "decided": 1, "compared": 3, "agreement": "1/1",
                                                       "agree_majority": 1, "decided_majority": 1,
                                                       "agreement_majority": "1/1"}


def test_majority_of_seeds_decides_split_cells_except_ties():
    """±(k of n): k of n seeds remove the watermark; the majority mark counts it, a tie stays undecided."""
    ours = pd.DataFrame([{"attack": "retraining", "adi": "±(2 of 3)", "uchida": "±(1 of 3)", "dawn": "±(1 of 2)",
                          "jia": "?", "noise": "✗"}])
    cells = compare(ours, "sok_cifar10").set_index("scheme")
    # the SoK: retraining removes adi and uchida, dawn and jia survive it, noise is removed
    assert cells["ours_majority"].fillna("").to_dict() == {"adi": "✗", "uchida": "✓", "dawn": "", "jia": "",
                                                           "noise": "✗"}
    assert cells["agrees_majority"].fillna("").to_dict() == {"adi": True, "uchida": False, "dawn": "", "jia": "",
                                                             "noise": True}
    assert cells["agrees"].isna().sum() == 4  # the plain agreement decides noise alone
    row = agreement_per_attack(cells.reset_index()).set_index("attack").loc["retraining"]
    assert (row["agreement"], row["agreement_majority"]) == ("1/1", "2/3")


def test_agreement_per_row_and_in_total_counts_the_soks_eleven_schemes_only():
    """A hand-made Table V with two settings: per row and in total, k of the n cells decided in both tables
    agree; our schemes that the SoK lacks (greedy_residuals, deepsigns_bb) are never compared."""
    ours = pd.DataFrame([
        # SoK CIFAR-10: input smoothing ✓ for adi, uchida, dawn; retraining ✗ adi, ✗ uchida, ✓ dawn, ✓ jia
        {"attack": "input_smoothing", "adi": "✓", "uchida": "✗", "dawn": "inc", "jia": "✓",
         "greedy_residuals": "✗", "deepsigns_bb": "✗"},
        {"attack": "retraining", "adi": "✗", "uchida": "✗", "dawn": "✗", "jia": "?",
         "greedy_residuals": "✓", "deepsigns_bb": "✓"},
    ])
    cells = pd.concat([compare(ours, "sok_cifar10").assign(setting="fashion_mnist"),
                       compare(ours[["attack", "adi"]], "sok_cifar10").assign(setting="mnist")], ignore_index=True)
    assert set(cells["scheme"]) == {"adi", "uchida", "dawn", "jia"}
    table = agreement_per_attack(cells)
    assert table[["setting", "attack", "agree", "decided", "compared", "agreement"]].values.tolist() == [
        ["fashion_mnist", "input_smoothing", 2, 3, 4, "2/3"],  # adi, jia agree; uchida does not; dawn inc
        ["fashion_mnist", "retraining", 2, 3, 4, "2/3"],  # adi, uchida agree; dawn does not; jia undecided
        ["fashion_mnist", "total", 4, 6, 8, "4/6"],
        ["mnist", "input_smoothing", 1, 1, 1, "1/1"],
        ["mnist", "retraining", 1, 1, 1, "1/1"],
        ["mnist", "total", 2, 2, 2, "2/2"],
    ]
    assert agreement_line(cells[cells["setting"] == "fashion_mnist"]) == "agreement 4/6 cells"


def test_table5_beside_the_soks_marks_in_the_readmes_form():
    """Our mark alone where it agrees; the SoK's in parentheses where it does not, bold where both are decided;
    a scheme the SoK lacks and a row it lacks stay bare; agree/decided per row and in total."""
    ours = pd.DataFrame([
        {"setting": "fm", "category": "embedding", "attack": "marked wm acc (mean)", "adi": "1.000", "dawn": "0.990",
         "greedy_residuals": "1.000", "seeds": "3", "seeds_agree": None},
        {"setting": "fm", "category": "model_extraction", "attack": "retraining", "adi": "✗", "dawn": "✗",
         "greedy_residuals": "✓", "seeds": "3", "seeds_agree": True},
        {"setting": "fm", "category": "model_extraction", "attack": "smooth_retraining", "adi": "✓",
         "dawn": "±(1 of 3)", "greedy_residuals": "✓", "seeds": "3", "seeds_agree": False},
        {"setting": "fm", "category": "model_modification", "attack": "ftal", "adi": "✓", "dawn": "✓",
         "greedy_residuals": "✓", "seeds": "3", "seeds_agree": True},
    ])
    table = beside_table5(ours, compare(ours, "sok_cifar10").assign(setting="fm"))
    assert table.values.tolist() == [
        ["fm", "marked wm acc (mean)", "1.000", "0.990", "1.000", "", ""],
        ["fm", "retraining", "✗", "**✗** (✓)", "✓", "1/2", "1/2"],  # the SoK: DAWN survives retraining
        # two of DAWN's three seeds keep it, the SoK removes it
        ["fm", "smooth_retraining", "✓ (–)", "±(1 of 3) (✗)", "✓", "0/0", "0/1"],
        ["fm", "ftal", "✓", "✓", "✓", "", ""],  # no row of the SoK's Table V
        ["fm", "total", "", "", "", "1/2", "1/3"],
    ]


def test_unknown_reference_is_a_one_line_error():
    with pytest.raises(InvalidParameter, match="reference='sok_mnist'.*sok_cifar10, sok_imagenet"):
        table5("sok_mnist")


def test_analyzer_prints_the_agreement_and_lists_disagreeing_cells(tmp_path):
    """The fixture sweep: transfer learning removes adi and uchida, as in the SoK, unless no stealing
    loss at all is allowed; input smoothing removes neither, as in the SoK."""
    from fixtures.analysis_runs import write_sweep
    from wrt.analysis.report import Options, analyze

    write_sweep(tmp_path)
    lines: list[str] = []
    analyze(Options(results_dir=str(tmp_path), figures=False, reference="sok_cifar10"), out=lines.append)
    assert lines[-2] == "agreement 4/4 cells (fashion_mnist vs sok_cifar10)"
    lines.clear()
    analyze(Options(results_dir=str(tmp_path), figures=False, reference="sok_cifar10", max_stealing_loss=0.0), out=lines.append)
    assert lines[-2] == "agreement 2/4 cells (fashion_mnist vs sok_cifar10)"
    disagree = pd.read_csv(tmp_path / "analysis" / "reference.csv")
    assert sorted(zip(disagree["attack"], disagree["scheme"], disagree["ours"], disagree["paper"])) == [
        ("transfer_learning", "adi", "✓", "✗"), ("transfer_learning", "uchida", "✓", "✗")]
    assert "Agreement with the SoK (sok_cifar10)" in (tmp_path / "analysis" / "report.html").read_text()
    per_attack = pd.read_csv(tmp_path / "analysis" / "reference_rows.csv").set_index("attack")
    assert per_attack.loc["transfer_learning", ["agree", "decided"]].tolist() == [0, 2]
    assert per_attack.loc["input_smoothing", ["agree", "decided"]].tolist() == [2, 2]
    assert per_attack.loc["total", ["agree", "decided", "agreement"]].tolist() == [2, 4, "2/4"]
    assert "| fashion_mnist | total | 2 | 4 |" in (tmp_path / "analysis" / "reference_rows.md").read_text()
    beside = pd.read_csv(tmp_path / "analysis" / "robustness_vs_reference.csv", keep_default_na=False)
    assert beside.set_index("attack").loc["transfer_learning", ["adi", "agreement"]].tolist() == ["**✓** (✗)", "0/2"]
    assert beside["agreement"].iloc[-1] == "2/4"
    lines.clear()
    analyze(Options(results_dir=str(tmp_path), figures=False), out=lines.append)  # no reference: no line, no section
    assert not any(line.startswith("agreement") for line in lines)


def test_thresholds_table_sets_our_theta_beside_the_papers_table4(tmp_path):
    """With a reference, thresholds.csv and the report carry the SoK's Table IV θ (`paper_threshold`) after our
    θ and its interval; a scheme the SoK lacks gets none; without a reference the column is absent."""
    from fixtures.analysis_runs import write_sweep
    from wrt.analysis.reference import beside_table4
    from wrt.analysis.report import Options, analyze

    write_sweep(tmp_path)
    analyze(Options(results_dir=str(tmp_path), figures=False, reference="sok_cifar10"), out=lambda line: None)
    table = pd.read_csv(tmp_path / "analysis" / "thresholds.csv").set_index("scheme")
    columns = list(table.columns)
    assert columns.index("paper_threshold") == columns.index("threshold_hi") + 1
    assert table.loc["adi", "paper_threshold"] == pytest.approx(0.1504)
    assert table.loc["uchida", "paper_threshold"] == pytest.approx(0.5798)
    assert table.loc["adi", "threshold_lo"] <= table.loc["adi", "threshold"] <= table.loc["adi", "threshold_hi"]
    assert "paper_threshold" in (tmp_path / "analysis" / "report.html").read_text()
    ours = pd.DataFrame({"setting": "s", "scheme": ["imagenet_only", "blackmarks"], "threshold": 0.5,
                         "threshold_lo": 0.4, "threshold_hi": 0.6})
    beside = beside_table4(ours, "sok_imagenet").set_index("scheme")["paper_threshold"]
    assert pd.isna(beside["imagenet_only"]) and beside["blackmarks"] == pytest.approx(0.8073)
    analyze(Options(results_dir=str(tmp_path), figures=False), out=lambda line: None)
    assert "paper_threshold" not in pd.read_csv(tmp_path / "analysis" / "thresholds.csv").columns
