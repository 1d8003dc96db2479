"""Unit tests of the analyzer: thresholds, rescaling (Eq. 5), success/payoff, Nash solvers, loading."""

import json

import numpy as np
import pandas as pd
import pytest
from fixtures.analysis_runs import FORGING, run_record, write, write_new_categories

from scipy import stats

from wrt.analysis import forgery, game, plots, roc
from wrt.analysis.load import ResultsDirError, config_label, load_runs
from wrt.analysis.tables import add_settings, mean_ci, null_share, removal_runs
from wrt.analysis.thresholds import (ThresholdError, binomial_threshold, decision_thresholds, empirical_threshold,
                                     normal_threshold, threshold_interval)

# ------------------------------------------------------------------ thresholds


def test_empirical_threshold_is_the_1_minus_p_quantile():
    values = np.linspace(0.0, 1.0, 101)  # quantile q is exactly q
    assert empirical_threshold(values, 0.05) == pytest.approx(0.95)
    assert empirical_threshold(values, 0.10) == pytest.approx(0.90)


def test_normal_threshold_is_mean_plus_z_std():
    assert normal_threshold([0.0, 0.2], 0.05) == pytest.approx(0.1 + 1.6448536 * np.sqrt(0.02))
    sample = np.random.default_rng(0).normal(0.1, 0.05, 20000)
    assert normal_threshold(sample, 0.05) == pytest.approx(0.1 + 1.645 * 0.05, abs=0.003)


def test_binomial_threshold_hand_computed():
    # N=10: P[X>=9] = 11/1024 = 0.0107 <= 0.05 < P[X>=8] = 56/1024 = 0.0547
    assert binomial_threshold(10, 0.05) == pytest.approx(0.9)
    # N=100: P[X>=59] = 0.044 <= 0.05 < P[X>=58] = 0.067
    assert binomial_threshold(100, 0.05) == pytest.approx(0.59)
    with pytest.raises(ThresholdError, match="too short"):
        binomial_threshold(4, 0.05)  # even 4/4 matching bits has probability 1/16 > 0.05


@pytest.mark.parametrize("key_size, classes, p, k", [
    (100, 10, 0.05, 16),   # P[X>=16] = 0.0399 <= 0.05 < P[X>=15] = 0.0726
    (100, 10, 0.01, 19),   # P[X>=18] = 0.010007 is just above 0.01
    (20, 10, 0.05, 5),     # P[X>=5] = 0.0432 <= 0.05 < P[X>=4] = 0.1330
    (100, 100, 0.05, 4),   # P[X>=4] = 0.0184 <= 0.05 < P[X>=3] = 0.0794
])
def test_chance_threshold_of_trigger_sets(key_size, classes, p, k):
    assert binomial_threshold(key_size, p, chance=1 / classes) == pytest.approx(k / key_size)
    tail = stats.binom.sf(np.array([k, k - 1]) - 1, key_size, 1 / classes)  # P[X >= k], P[X >= k - 1]
    assert tail[0] <= p < tail[1]


def _null_runs(scheme, wm_accs, bits=False, key_size=100, num_classes=None):
    runs = pd.DataFrame([{"status": "ok", "role": "null", "dataset": "d", "scheme.name": scheme, "scheme.bits": bits,
                          "scheme.key_size": key_size, "marked.wm_acc": w} for w in wm_accs])
    return runs if num_classes is None else runs.assign(num_classes=num_classes)


def test_chance_floor_when_unmarked_models_never_match_the_trigger_labels():
    # content-like key: every null run scores 0, which used to give θ = 0 (no attack could ever succeed)
    table = decision_thresholds(_null_runs("content", [0.0] * 6, num_classes=10), p=0.05).iloc[0]
    assert table["empirical"] == 0.0 and table["normal"] == 0.0 and table["chance"] == pytest.approx(0.1)
    assert table["threshold"] == pytest.approx(0.16) and table["method"].startswith("auto: binomial")
    # null runs above chance keep their own, larger estimate
    high = decision_thresholds(_null_runs("adi", [0.3, 0.35, 0.4, 0.45, 0.5], num_classes=10)).iloc[0]
    assert high["binomial"] == pytest.approx(0.16) and high["threshold"] > 0.5
    # the chance bound is a floor, not a replacement for null runs; an explicit method may use it alone
    with pytest.raises(ThresholdError, match=r"content on d: 2 null run\(s\), 5 needed"):
        decision_thresholds(_null_runs("content", [0.0] * 2, num_classes=10))
    alone = decision_thresholds(_null_runs("content", [0.0] * 2, num_classes=10), method="binomial").iloc[0]
    assert alone["threshold"] == pytest.approx(0.16)


def test_runs_without_num_classes_have_no_chance_bound():
    scores = [0.0, 0.0, 0.1, 0.1, 0.2]
    table = decision_thresholds(_null_runs("content", scores)).iloc[0]
    assert np.isnan(table["chance"]) and np.isnan(table["binomial"])
    # by hand: the 95 % quantile 0.18 (linear), the normal fit 0.08 + 1.645 · 0.0837 = 0.218; the larger is θ
    assert table["empirical"] == pytest.approx(0.18)
    assert table["threshold"] == pytest.approx(0.08 + stats.norm.ppf(0.95) * np.sqrt(0.028 / 4)) == pytest.approx(0.2176, abs=1e-4)


def test_a_correlation_score_has_no_binomial_bound():
    """DeepMarks' correlation (scheme.match_rate false) is no rate of matches: θ from null runs only."""
    runs = _null_runs("deepmarks", [0.0, 0.0, 0.1, 0.3, 0.4, 0.5], key_size=7, num_classes=10)
    table = decision_thresholds(runs.assign(**{"scheme.match_rate": False})).iloc[0]
    assert np.isnan(table["chance"]) and np.isnan(table["binomial"])
    # by hand: quantile 0.475, normal 0.2167 + 1.645 · 0.2137 = 0.568 (no chance floor of 0.16 applies)
    assert table["empirical"] == pytest.approx(0.475) and table["threshold"] == pytest.approx(0.5682, abs=1e-3)


def test_decision_thresholds_report_all_estimates_and_use_the_largest():
    runs = pd.concat([_null_runs("adi", np.linspace(0, 0.2, 21)),
                      _null_runs("uchida", [], bits=True, key_size=10),
                      _null_runs("deepsigns", [0.95] * 6, bits=True, key_size=10)])
    runs.loc[len(runs)] = {"status": "ok", "role": "marked", "dataset": "d", "scheme.name": "uchida",
                           "scheme.bits": True, "scheme.key_size": 10, "marked.wm_acc": 1.0}
    table = decision_thresholds(runs.reset_index(drop=True), p=0.05).set_index("scheme")
    adi = table.loc["adi"]
    assert adi["empirical"] == pytest.approx(0.19)
    # 0, 0.01, …, 0.2: mean 0.1, sample std √(0.077 / 20); the normal fit 0.202 exceeds the quantile 0.19
    assert np.isnan(adi["binomial"]) and adi["threshold"] == pytest.approx(0.1 + stats.norm.ppf(0.95) * np.sqrt(0.077 / 20))
    assert table.loc["uchida", "threshold"] == pytest.approx(0.9) and table.loc["uchida", "n_null"] == 0
    assert table.loc["uchida", "method"].startswith("auto: binomial")
    # biased unmarked bits: the null runs beat the binomial bound, so auto takes the empirical/normal value
    assert table.loc["deepsigns", "threshold"] == pytest.approx(0.95)
    # an explicit method is not replaced: uchida has no null runs for the empirical quantile
    with pytest.raises(ThresholdError, match=r"uchida on d: 0 null run\(s\), 5 needed"):
        decision_thresholds(runs[runs["scheme.name"] == "uchida"], method="empirical")
    with pytest.raises(ThresholdError, match="binomial bound: needs a bit-string key"):
        decision_thresholds(runs[runs["scheme.name"] == "adi"], method="binomial")


def _keyed_null_runs(scheme, per_model, num_classes=10, key_size=100):
    """Null runs that each measured many keys (`null.wm_accs`, the run's own key first)."""
    return pd.DataFrame([{"status": "ok", "role": "null", "dataset": "d", "scheme.name": scheme, "scheme.bits": False,
                          "scheme.key_size": key_size, "num_classes": num_classes, "marked.wm_acc": float(scores[0]),
                          "null.wm_accs": [float(x) for x in scores]} for scores in per_model])


def test_thresholds_pool_the_key_scores_of_all_null_models():
    rng = np.random.default_rng(0)
    per_model = [rng.normal(0.15, 0.04, 100).clip(0, 1) for _ in range(20)]
    pooled = np.concatenate(per_model)
    table = decision_thresholds(_keyed_null_runs("adi", per_model)).iloc[0]
    assert table["n_null"] == 20 and table["n_scores"] == 2000
    assert table["normal"] == pytest.approx(pooled.mean() + stats.norm.ppf(0.95) * pooled.std(ddof=1))
    assert table["normal"] > table["binomial"] == pytest.approx(0.16)
    assert table["method"] == "sok: normal" and table["threshold"] == table["normal"]
    assert table["threshold_lo"] < table["threshold"] < table["threshold_hi"]
    # fewer than 1/p = 20 null models: sok falls back to auto (the largest estimate)
    few = decision_thresholds(_keyed_null_runs("adi", per_model[:19])).iloc[0]
    assert few["method"].startswith("auto: ") and few["n_scores"] == 1900
    nineteen = np.concatenate(per_model[:19])
    assert few["threshold"] == pytest.approx(max(np.quantile(nineteen, 0.95), 0.16,
                                                 nineteen.mean() + stats.norm.ppf(0.95) * nineteen.std(ddof=1)))
    # runs with one key (no null.wm_accs) pool with keyed ones
    mixed = pd.concat([_keyed_null_runs("adi", per_model[:10]), _null_runs("adi", [0.1] * 10, num_classes=10)])
    assert decision_thresholds(mixed.reset_index(drop=True)).iloc[0][["n_null", "n_scores"]].tolist() == [20, 1010]


def test_sok_thresholds_keep_the_chance_floor():
    # content-like keys: no unmarked model ever matches, so the normal fit says 0; the binomial bound holds
    table = decision_thresholds(_keyed_null_runs("content", [np.zeros(100)] * 20)).iloc[0]
    assert table["normal"] == 0.0 and table["method"] == "sok: binomial (floor above normal)"
    assert table["threshold"] == table["threshold_lo"] == table["threshold_hi"] == pytest.approx(0.16)


def test_theta_interval_resamples_null_models_not_key_scores():
    # keys on one model are correlated (the model's own bias): the interval must reflect 20 models, not 2000 keys
    rng = np.random.default_rng(1)
    per_model = [np.clip(rng.normal(0.15, 0.05) + rng.normal(0, 0.01, 100), 0, 1) for _ in range(20)]
    lo, hi = threshold_interval(per_model, 0.05, "normal")
    lo_keys, hi_keys = threshold_interval(np.concatenate(per_model), 0.05, "normal")  # as if 2000 models
    assert hi - lo > 3 * (hi_keys - lo_keys)


def test_too_few_null_runs_names_count_and_need():
    runs = _null_runs("adi", [0.1, 0.2])
    with pytest.raises(ThresholdError, match=r"adi on d: 2 null run\(s\), 5 needed \(min_null_runs=5\)"):
        decision_thresholds(runs, p=0.05, min_null_runs=5)
    assert decision_thresholds(runs, min_null_runs=2)["threshold"].iloc[0] > 0.2


# ------------------------------------------------------------------ ROC


def _mann_whitney(pos, neg):
    pairs = [(x > y) + 0.5 * (x == y) for x in pos for y in neg]
    return sum(pairs) / len(pairs)


@pytest.mark.parametrize("pos, neg, expected", [
    ([0.9, 0.8, 1.0], [0.1, 0.2], 1.0),                 # perfect separation
    ([0.5, 0.5, 0.5], [0.5, 0.5], 0.5),                 # identical scores: all ties
    ([0.2, 0.4], [0.6, 0.8], 0.0),                      # perfectly wrong
    ([0.9, 0.5, 0.3], [0.5, 0.1], 4.5 / 6),             # 0.9 beats both, 0.5 ties one and beats one, 0.3 beats one
])
def test_auc_is_the_mann_whitney_probability(pos, neg, expected):
    fpr, tpr = roc.roc_curve(pos, neg)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert roc.auc(fpr, tpr) == pytest.approx(expected)
    assert roc.auc(fpr, tpr) == pytest.approx(_mann_whitney(pos, neg))


def test_auc_with_ties_matches_mann_whitney_on_random_scores():
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 6, 40) / 5, rng.integers(0, 4, 30) / 5  # many ties
    assert roc.auc(*roc.roc_curve(pos, neg)) == pytest.approx(_mann_whitney(pos, neg))


def test_tpr_at_fpr_takes_the_largest_tpr_within_the_level():
    fpr, tpr = roc.roc_curve([0.9, 0.5, 0.3], [0.5, 0.1])
    # points (fpr, tpr): (0, 0), (0, 1/3) at t=0.9, (1/2, 2/3) at t=0.5, (1/2, 1) at t=0.3, (1, 1)
    assert roc.tpr_at_fpr(fpr, tpr, 0.05) == pytest.approx(1 / 3)
    assert roc.tpr_at_fpr(fpr, tpr, 0.5) == 1.0
    neg = np.arange(100) / 100  # 0.00 … 0.99: FPR moves in steps of 1 %
    fpr, tpr = roc.roc_curve([0.995, 0.985, 0.96, 0.5], neg)
    assert roc.tpr_at_fpr(fpr, tpr, 0.01) == 0.5   # t = 0.985: FPR 1/100, two of four positives
    assert roc.tpr_at_fpr(fpr, tpr, 0.05) == 0.75  # t = 0.96: FPR 4/100
    assert roc.few_negatives_note(100) == ""
    assert roc.few_negatives_note(5) == ("5 negatives: FPR steps of 20%, so TPR@1%FPR and TPR@5%FPR read the "
                                         "TPR at FPR 0")
    assert "TPR@5%FPR" not in roc.few_negatives_note(50)


def test_mean_ci_needs_two_values():
    assert mean_ci("x", [0.5]) == {"x": 0.5, "x_lo": pytest.approx(np.nan, nan_ok=True),
                                   "x_hi": pytest.approx(np.nan, nan_ok=True)}
    ci = mean_ci("x", [0.1, 0.2, 0.3, 0.4])
    assert ci["x"] == pytest.approx(0.25) and 0.1 <= ci["x_lo"] < 0.25 < ci["x_hi"] <= 0.4


# ------------------------------------------------------------------ rescaling, success, payoff


@pytest.mark.parametrize("theta", [0.0, 0.2, 0.59, 0.9])
def test_rescale_identities(theta):
    assert game.rescale(theta, theta) == pytest.approx(0.5)   # S(θ; θ) = θ'
    assert game.rescale(1.0, theta) == pytest.approx(1.0)     # S(1; θ) = 1
    assert game.rescale(theta, theta, theta_prime=0.7) == pytest.approx(0.7)


def test_rescale_clips_at_zero_and_rejects_theta_one():
    assert game.rescale(0.0, 0.8) == 0.0  # the line would give -1.5
    assert np.all(game.rescale(np.array([0.0, 0.1]), 0.6) == 0.0)
    with pytest.raises(ValueError):
        game.rescale(0.5, 1.0)


def test_success_needs_low_wm_acc_and_small_stealing_loss():
    wm = np.array([0.3, 0.5, 0.3, 0.3, 0.3, 0.3])
    # the last three: 5 points up to float64 error, up to float32 error (a campaign run: 250 of 5,000 test
    # images, 0.050000011920928955), and 5 points plus a hundredth of one test image
    float32_five_points = float(np.float32(0.8958) - np.float32(0.8458))
    assert float32_five_points > 0.05
    loss = np.array([0.01, 0.01, 0.06, 0.93 - 0.88, float32_five_points, 0.05 + 1 / 5000 / 100])
    success = game.attack_succeeds(wm, 0.5, loss, max_stealing_loss=0.05)
    assert success.tolist() == [True, False, False, True, True, False]  # wm == θ keeps the watermark
    assert game.payoff(success[:4], [0.8, 0.8, 0.8, 0.7]).tolist() == [0.8, 0.0, 0.0, 0.7]
    assert game.attack_succeeds(0.3, 0.5, 0.08, max_stealing_loss=0.1)


def test_null_share_counts_an_unmarked_score_equal_to_a_float32_one():
    """A surrogate's float32 wm acc of 61 of 100 (0.6100000143) is as high as an unmarked model's 0.61, not above it."""
    pools = {("fashion_mnist", "uchida"): np.array([0.60, 0.61, 0.62, 0.50])}
    score = float(np.float32(0.61))
    assert score > 0.61
    assert null_share(pools, "fashion_mnist", "uchida", "uchida(lam=1)", score) == 0.5
    assert null_share(pools, "fashion_mnist", "uchida", "uchida(lam=1)", 0.611) == 0.25


# ------------------------------------------------------------------ Nash

SADDLE = np.array([[4.0, 2.0], [3.0, 1.0]])  # row maxima 4, 3; column minima 3, 1: saddle (1, 0), value 3
NO_SADDLE = np.array([[3.0, 1.0], [0.0, 2.0]])  # 3x = x + 2(1-x): x = 1/2, value 3/2; y = (1/4, 3/4)


def test_pure_nash_eq6_is_argmin_over_rows_of_row_max():
    assert game.pure_nash(SADDLE) == (1, 0)
    assert game.pure_nash(NO_SADDLE) == (1, 1)  # row maxima 3, 2: the defender takes row 1, payoff 2
    # ties: the attacker prefers the lower rescaled wm acc, the defender the higher one
    zeros, tie = np.zeros((2, 3)), np.array([[0.9, 0.6, 0.7], [0.8, 0.95, 0.99]])
    assert game.pure_nash(zeros, tie) == (1, 0)


def test_mixed_nash_with_saddle_point_is_pure():
    value, x, y = game.mixed_nash(SADDLE)
    assert value == pytest.approx(3.0)
    assert x == pytest.approx([0.0, 1.0]) and y == pytest.approx([1.0, 0.0])


@pytest.mark.parametrize("V, value, x, y", [
    (NO_SADDLE, 1.5, [0.5, 0.5], [0.25, 0.75]),
    ([[1, 0], [0, 1]], 0.5, [0.5, 0.5], [0.5, 0.5]),  # matching pennies
    ([[0.5, 1, 0], [0, 0.5, 1], [1, 0, 0.5]], 0.5, [1 / 3] * 3, [1 / 3] * 3),  # rock-paper-scissors, +0.5
])
def test_mixed_nash_without_saddle_point(V, value, x, y):
    got_value, got_x, got_y = game.mixed_nash(V)
    assert got_value == pytest.approx(value)
    assert got_x == pytest.approx(x, abs=1e-7) and got_y == pytest.approx(y, abs=1e-7)


def test_solve_game_labels_and_shape():
    V = pd.DataFrame(NO_SADDLE, index=["uchida(lambda=1)", "uchida(lambda=0.1)"],
                     columns=["weight_pruning(rate=0.9)", "transfer_learning"])
    result = game.solve_game(V)
    assert set(result) == {"pure", "mixed"}
    assert result["pure"] == {"scheme": "uchida(lambda=0.1)", "attack": "transfer_learning", "payoff": 2.0}
    assert result["mixed"] == {"value": 1.5, "defender": {"uchida(lambda=1)": 0.5, "uchida(lambda=0.1)": 0.5},
                               "attacker": {"weight_pruning(rate=0.9)": 0.25, "transfer_learning": 0.75}}


# ------------------------------------------------------------------ loading


def test_config_labels():
    assert config_label("uchida", {"lambda": 1.0}) == "uchida(lambda=1)"
    assert config_label("weight_pruning", {"rate": 0.9}) == "weight_pruning(rate=0.9)"
    assert config_label("none", {}) == "none"
    steps = {"steps": [{"name": "transfer_learning", "params": {"epochs": 5}},
                       {"name": "label_smoothing", "params": {"eps": 0.1}}]}
    assert config_label("tl_ls", steps) == "tl_ls(transfer_learning(epochs=5)+label_smoothing(eps=0.1))"


def test_bad_files_are_skipped_with_one_warning_each(tmp_path):
    good = run_record(run_name="good", scheme="uchida", scheme_params={"lambda": 1.0},
                      attack="weight_pruning", attack_params={"rate": 0.9}, seed=0)
    write(tmp_path, good)
    text = json.dumps(good)
    (tmp_path / "runs" / "half.json").write_text(text[: len(text) // 2])
    (tmp_path / "runs" / "corrupt.json").write_bytes(b"\x00\xff garbage")
    write(tmp_path, {**good, "run_name": "wrongtype", "seed": "zero"})
    write(tmp_path, {**good, "run_name": "incomplete", "surrogate": {"test_acc": 0.8}})
    write(tmp_path, {**good, "run_name": "in_analysis"}, subdir="analysis")  # the analyzer's own output
    warnings = []
    loaded = load_runs(tmp_path, warn=warnings.append)
    assert list(loaded.runs["run_name"]) == ["good"]
    assert loaded.runs.loc[0, "scheme.params.lambda"] == 1.0
    assert loaded.runs.loc[0, "attack_label"] == "weight_pruning(rate=0.9)"
    assert len(warnings) == 5 and warnings[-1].startswith("warning: skipped 4 of 5 JSON files")
    reasons = {name: next(w for w in warnings if f"{name}.json" in w) for name in
               ["half", "corrupt", "wrongtype", "incomplete"]}
    assert "half-written" in reasons["half"] and "corrupt" in reasons["corrupt"]
    assert "seed" in reasons["wrongtype"] and "missing surrogate.wm_acc" in reasons["incomplete"]


def test_older_files_without_num_classes_and_attack_data_load(tmp_path):
    args = dict(scheme="adi", scheme_params={"size": 50}, attack="transfer_learning", attack_params={"epochs": 5})
    write(tmp_path, run_record(run_name="old", seed=0, num_classes=None, **args))
    write(tmp_path, run_record(run_name="new", seed=1, **args,
                               data={"fraction": 1.0, "count": None, "labels": "protocol", "domain": "in",
                                     "images": 20000}))
    write(tmp_path, run_record(run_name="bad", seed=2, num_classes=1, **args))
    warnings = []
    runs = load_runs(tmp_path, warn=warnings.append).runs.set_index("run_name")
    assert "num_classes" in warnings[0] and "bad.json" in warnings[0]
    assert np.isnan(runs.loc["old", "num_classes"]) and runs.loc["new", "num_classes"] == 10
    # an older file had the default budget (the whole data); images unknown; same budget, same label
    assert runs.loc["old", "attack.data.fraction"] == 1.0 and pd.isna(runs.loc["old", "attack.data.images"])
    assert set(runs["attack_label"]) == {"transfer_learning(epochs=5)"}
    assert forgery.forgery_table(add_settings(runs.reset_index())).empty  # no attack.result: no claim


def test_forging_runs_make_the_forgery_table_not_the_game(tmp_path):
    write_new_categories(tmp_path, seeds=(0,))
    write(tmp_path, run_record(run_name="bad_result", scheme="adi", scheme_params={"size": 50}, attack="forging",
                               attack_params={}, seed=1, result={**FORGING["adi"][1][0], "false_claim": "yes"}))
    warnings = []
    runs = add_settings(load_runs(tmp_path, warn=warnings.append, checks=[forgery.check_claim]).runs)
    assert "bad_result.json" in warnings[0] and "attack.result.false_claim" in warnings[0]
    assert set(removal_runs(runs)["attack.name"]) == {"dummy_neurons"}
    table = forgery.forgery_table(runs).set_index("scheme")
    assert table["false_claim"].to_dict() == {"adi": "yes", "greedy_residuals": "no", "unforgeable": "not applicable"}
    assert table.loc["adi", "verified"] == 200 and table.loc["adi", "n_seeds"] == 1
    assert forgery.summary(table.reset_index()) == ("forging: false ownership claims succeed against 1 of 3 "
                                                    "schemes (1 not applicable)")


def test_radar_orders_the_categories():
    per_category = pd.DataFrame({"scheme": "uchida", "rescaled_wm_acc": 0.5,
                                 "category": ["obfuscation", "model_extraction", "input_preprocessing"]})
    fig = plots.radar(per_category, 0.5, "t")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["IP", "ME", "OB"]


def test_attack_configs_with_several_data_budgets_get_them_in_their_label(tmp_path):
    args = dict(scheme="adi", scheme_params={"size": 50}, attack="transfer_learning", attack_params={"epochs": 5})
    budgets = {"f10": {"fraction": 0.1}, "n500": {"fraction": 1.0, "count": 500},
               "q10": {"fraction": 0.1, "labels": "queried"}}
    for name, budget in budgets.items():
        data = {"fraction": 1.0, "count": None, "labels": "protocol", "domain": "in", "images": 1, **budget}
        write(tmp_path, run_record(run_name=name, seed=0, data=data, **args))
    write(tmp_path, run_record(run_name="old", seed=0, **args))
    failed = {**run_record(run_name="failed", seed=0, status="failed", **args),
              "config": {"attacker_data": {"fraction": 0.1, "count": None, "labels": "protocol", "domain": "in"}}}
    write(tmp_path, failed)
    runs = load_runs(tmp_path).runs.set_index("run_name")
    assert runs["attack_label"].to_dict() == {
        "f10": "transfer_learning(epochs=5)@data=10%,labels=protocol",
        "n500": "transfer_learning(epochs=5)@data=500,labels=protocol",
        "q10": "transfer_learning(epochs=5)@data=10%,labels=queried",
        "old": "transfer_learning(epochs=5)@data=100%,labels=protocol",
        "failed": "transfer_learning(epochs=5)@data=10%,labels=protocol",  # its budget from the config
    }
    assert set(runs["attack_base_label"]) == {"transfer_learning(epochs=5)"}


def test_configs_that_differ_outside_the_ablation_get_distinct_labels(tmp_path):
    """Two transfer-learning configs whose epochs differ are two attacker strategies, not two seeds."""
    def tl(name, seed, params, wm):
        record = run_record(run_name=name, scheme="adi", scheme_params={"size": 50}, attack="transfer_learning",
                            attack_params={"lr": 0.01, **params}, seed=seed, surrogate_wm=wm)
        record["attack"]["ablated"] = ["lr"]  # the label shows only lr
        return record

    write(tmp_path, tl("short_s0", 0, {"epochs": 1, "milestones": [1]}, 0.1))
    write(tmp_path, tl("short_s1", 1, {"epochs": 1, "milestones": [1]}, 0.2))
    write(tmp_path, tl("long_s0", 0, {"epochs": 5, "milestones": [3, 4]}, 0.9))
    write(tmp_path, tl("old_s2", 2, {}, 0.3))  # an older file without these parameters
    runs = load_runs(tmp_path).runs.set_index("run_name")
    assert runs["attack_label"].to_dict() == {
        "short_s0": "transfer_learning(lr=0.01,epochs=1,milestones=[1])",
        "short_s1": "transfer_learning(lr=0.01,epochs=1,milestones=[1])",
        "long_s0": "transfer_learning(lr=0.01,epochs=5,milestones=[3, 4])",
        "old_s2": "transfer_learning(lr=0.01)",
    }


def test_missing_results_dir_names_the_path(tmp_path):
    with pytest.raises(ResultsDirError, match=str(tmp_path / "nope")):
        load_runs(tmp_path / "nope")


def test_labels_show_only_the_ablated_parameters():
    from wrt.analysis.load import config_label

    params = {"lambda": 1, "epochs": 5, "patience": 5}
    assert config_label("uchida", params, ["lambda"]) == "uchida(lambda=1)"
    assert config_label("uchida", params) == "uchida(epochs=5,lambda=1,patience=5)"
    steps = {"steps": [{"name": "transfer_learning", "params": {"epochs": 5, "lr": 0.01}, "ablated": []},
                       {"name": "label_smoothing", "params": {"epsilon": 0.3}, "ablated": ["epsilon"]}]}
    assert config_label("tl_label_smoothing", steps) == "tl_label_smoothing(transfer_learning+label_smoothing(epsilon=0.3))"


def test_min_data_to_remove_takes_the_smallest_successful_budget():
    from wrt.analysis.budget import amount_column, min_data_table

    line = {"setting": "d", "scheme": "adi", "scheme_config": "adi(size=50)", "surrogate_wm_acc": 0.1,
            "surrogate_test_acc": 0.8, "stealing_loss": 0.01}
    rows = [{**line, "attack": "tl", "fraction": 1.0, "count": c, "images": c, "success": ok}
            for c, ok in [(5000, True), (100, False), (1000, True)]]
    rows += [{**line, "attack": "retrain", "fraction": f, "count": None, "images": None, "success": False}
             for f in (0.1, 1.0)]
    budget = pd.DataFrame(rows).astype({"count": "Int64", "images": "Int64"})
    assert amount_column(budget[budget["attack"] == "tl"]) == "images"
    assert amount_column(budget) == "fraction"  # some rows do not know how many images they used
    table = min_data_table(budget).set_index("attack")
    assert table.loc["tl", ["min_images", "min_count", "budgets_tried", "max_images"]].tolist() == [1000, 1000, 3, 5000]
    assert bool(table.loc["tl", "removed"]) and not table.loc["retrain", "removed"]
    assert pd.isna(table.loc["retrain", "min_images"]) and np.isnan(table.loc["retrain", "min_fraction"])


@pytest.mark.parametrize("n_categories", [3, 4, 5])
def test_radar_labels_do_not_overlap(n_categories):
    categories = ["input_preprocessing", "model_modification", "model_extraction", "obfuscation", "combined"]
    per_category = pd.DataFrame({"scheme": "uchida", "rescaled_wm_acc": 0.9,
                                 "category": categories[:n_categories]})
    fig = plots.radar(per_category, 0.5, "t")
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.title] if t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in labels]
    overlaps = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes))
                for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert overlaps == []
