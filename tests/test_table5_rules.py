"""Table V's cells follow the SoK's method: a watermark that was never embedded is no defender strategy (n/e,
never ✗), a watermark accuracy inside θ's 95 % interval is undecided (?), and the table's first row shows each
scheme's mean marked watermark accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fixtures.analysis_runs import run_record, write, write_active_scheme, write_sweep

from wrt.analysis.report import Options, analyze
from wrt.analysis.tables import MARKED_ROW, NOT_EMBEDDED, REMOVED, ROBUST, UNDECIDED
from wrt.analysis.thresholds import threshold_interval

ADI_NULLS = (0.05, 0.08, 0.10, 0.12, 0.15, 0.20)  # θ ≈ 0.2 (empirical/normal, above the binomial floor)


def sweep(tmp_path, marked_wm: dict, surrogate_wm: dict, seeds=(0, 1, 2), marked_acc: dict | None = None,
          **options) -> pd.DataFrame:
    """adi with configs size=50 and size=100 (their marked wm acc from `marked_wm`, test accuracy from
    `marked_acc`, default 0.89: 1 point of embedding loss), attacked by pruning (surrogate wm acc from
    `surrogate_wm`, surrogate test accuracy 0.88); null runs for θ. Returns robustness.csv."""
    marked_acc = marked_acc or {50: 0.89, 100: 0.89}
    for i, wm in enumerate(ADI_NULLS):
        write(tmp_path, run_record(run_name=f"null{i}", scheme="adi", scheme_params={"size": 100}, attack="none",
                                   attack_params={}, seed=i, role="null", marked_wm=wm))
    for size in (50, 100):
        for seed in seeds:
            for attack, wm in (("none", marked_wm[size]), ("weight_pruning", surrogate_wm[size])):
                write(tmp_path, run_record(run_name=f"adi{size}_{attack}_s{seed}", scheme="adi",
                                           scheme_params={"size": size}, attack=attack,
                                           attack_params={} if attack == "none" else {"rate": 0.5}, seed=seed,
                                           marked_wm=marked_wm[size], surrogate_wm=wm, surrogate_acc=0.88,
                                           marked_acc=marked_acc[size]))
    analyze(Options(results_dir=str(tmp_path), figures=False, **options), out=lambda line: None)
    return pd.read_csv(tmp_path / "analysis" / "robustness.csv").set_index("attack")


def test_a_watermark_that_was_never_embedded_is_not_removed(tmp_path):
    robustness = sweep(tmp_path, marked_wm={50: 0.12, 100: 0.15}, surrogate_wm={50: 0.1, 100: 0.1})
    assert robustness.loc["weight_pruning", "adi"] == NOT_EMBEDDED
    assert robustness.loc[MARKED_ROW, "adi"] == "0.135"  # the first row: mean marked wm acc


def test_only_embedded_configs_are_defender_strategies(tmp_path):
    # size=50 never verified (0.12 < θ) and pruning "removes" it; size=100 verifies and survives
    robustness = sweep(tmp_path, marked_wm={50: 0.12, 100: 1.0}, surrogate_wm={50: 0.05, 100: 0.95})
    assert robustness.loc["weight_pruning", "adi"] == ROBUST
    outcomes = pd.read_csv(tmp_path / "analysis" / "outcomes.csv")
    assert outcomes.groupby("scheme_config")["embedded"].first().to_dict() == {"adi(size=100)": True,
                                                                             "adi(size=50)": False}
    nash = pd.read_json(tmp_path / "analysis" / "nash.json")
    assert "size=50" not in str(nash.to_dict())  # not a strategy of the game


def test_a_marked_model_that_lost_its_task_is_no_defender_strategy(tmp_path):
    # size=50 keeps its key under pruning but its marked model lost 45 points (Blackmarks at λ = 100 lost 47 in
    # the campaign); size=100 is well-trained and removed: the defender has no well-trained answer
    broken = {50: 0.45, 100: 0.89}
    robustness = sweep(tmp_path, marked_wm={50: 1.0, 100: 1.0}, surrogate_wm={50: 0.95, 100: 0.05}, marked_acc=broken)
    assert robustness.loc["weight_pruning", "adi"] == REMOVED
    outcomes = pd.read_csv(tmp_path / "analysis" / "outcomes.csv")
    assert outcomes.groupby("scheme_config")["embedded"].first().to_dict() == {"adi(size=100)": True,
                                                                             "adi(size=50)": False}
    lenient = sweep(tmp_path / "lenient", marked_wm={50: 1.0, 100: 1.0}, surrogate_wm={50: 0.95, 100: 0.05},
                    marked_acc=broken, max_embedding_loss=1.0)
    assert lenient.loc["weight_pruning", "adi"] == ROBUST  # without the rule the broken model would defend


def test_a_removal_below_the_interval_is_still_removed(tmp_path):
    robustness = sweep(tmp_path, marked_wm={50: 1.0, 100: 1.0}, surrogate_wm={50: 0.0, 100: 0.0})
    assert robustness.loc["weight_pruning", "adi"] == REMOVED


def test_a_watermark_accuracy_inside_thetas_interval_is_undecided(tmp_path):
    robustness = sweep(tmp_path, marked_wm={50: 1.0, 100: 1.0}, surrogate_wm={50: 0.19, 100: 0.19})
    thetas = pd.read_csv(tmp_path / "analysis" / "thresholds.csv").set_index("scheme")
    lo, hi = thetas.loc["adi", ["threshold_lo", "threshold_hi"]]
    assert lo < 0.19 < hi  # the fixture's surrogate wm acc is inside θ's interval, just below θ
    assert robustness.loc["weight_pruning", "adi"] == UNDECIDED


def test_threshold_interval_covers_theta_and_shrinks_with_more_null_models():
    rng = np.random.default_rng(0)
    few, many = rng.normal(0.3, 0.05, 10), rng.normal(0.3, 0.05, 1000)
    lo_few, hi_few = threshold_interval(few, 0.05, "normal")
    lo_many, hi_many = threshold_interval(many, 0.05, "normal")
    assert lo_many < 0.3 + 1.645 * 0.05 < hi_many
    assert hi_many - lo_many < (hi_few - lo_few) / 3
    assert np.isnan(threshold_interval([0.3], 0.05, "normal")[0])


def test_an_active_schemes_white_box_cells_are_decided_like_any_other(tmp_path):
    """An active scheme (scheme.active) against input preprocessing and model modification: its runs attacked a
    model extracted from the wrapper (attack.extracted, SoK Fig. 3), so the cells are decided and in the game."""
    write_sweep(tmp_path)
    write_active_scheme(tmp_path)
    analyze(Options(results_dir=str(tmp_path), figures=False), out=lambda line: None)
    out = tmp_path / "analysis"
    robustness = pd.read_csv(out / "robustness.csv").set_index("attack")
    assert robustness.loc["input_smoothing", "wrapped"] == REMOVED  # wm acc 0.05 on the attacked extracted model
    assert robustness.loc["weight_pruning", "wrapped"] == REMOVED
    assert robustness.loc["transfer_learning", "wrapped"] == ROBUST
    # other schemes keep their cells: adi at ρ 0.5 keeps 0.90, at ρ 0.9 falls to 0.05 for 20 points of accuracy
    assert robustness.loc["weight_pruning", "adi"] == ROBUST
    assert "n.a." not in robustness.to_numpy()
    nash = pd.read_json(out / "nash.json")
    per_category = nash.loc["per_category"].iloc[0]["wrapped"]
    assert {"input_preprocessing", "model_modification", "model_extraction"} <= set(per_category)
    dominant = pd.read_csv(out / "dominant_attacks.csv").set_index("attack")
    assert dominant.loc["weight_pruning", "scheme_configs"] == 5  # adi's, uchida's and wrapped's configs
