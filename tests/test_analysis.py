"""Unit tests of the analyzer: thresholds, rescaling (Eq. 5), success/payoff, Nash solvers, loading."""

import json

import numpy as np
import pandas as pd
import pytest
from fixtures.analysis_runs import run_record, write

from wrt.analysis import game
from wrt.analysis.load import ResultsDirError, config_label, load_runs
from wrt.analysis.thresholds import (ThresholdError, binomial_threshold, decision_thresholds, empirical_threshold,
                                     normal_threshold)

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


def _null_runs(scheme, wm_accs, bits=False, key_size=100):
    return pd.DataFrame([{"status": "ok", "role": "null", "dataset": "d", "scheme.name": scheme,
                          "scheme.bits": bits, "scheme.key_size": key_size, "marked.wm_acc": w} for w in wm_accs])


def test_decision_thresholds_report_all_estimates_and_use_the_largest():
    runs = pd.concat([_null_runs("adi", np.linspace(0, 0.2, 21)),
                      _null_runs("uchida", [], bits=True, key_size=10),
                      _null_runs("deepsigns", [0.95] * 6, bits=True, key_size=10)])
    runs.loc[len(runs)] = {"status": "ok", "role": "marked", "dataset": "d", "scheme.name": "uchida",
                           "scheme.bits": True, "scheme.key_size": 10, "marked.wm_acc": 1.0}
    table = decision_thresholds(runs.reset_index(drop=True), p=0.05).set_index("scheme")
    adi = table.loc["adi"]
    assert adi["empirical"] == pytest.approx(0.19)
    assert np.isnan(adi["binomial"]) and adi["threshold"] == max(adi["empirical"], adi["normal"])
    assert table.loc["uchida", "threshold"] == pytest.approx(0.9) and table.loc["uchida", "n_null"] == 0
    assert table.loc["uchida", "method"].startswith("auto: binomial")
    # biased unmarked bits: the null runs beat the binomial bound, so auto takes the empirical/normal value
    assert table.loc["deepsigns", "threshold"] == pytest.approx(0.95)
    # an explicit method is not replaced: uchida has no null runs for the empirical quantile
    with pytest.raises(ThresholdError, match=r"uchida on d: 0 null run\(s\), 5 needed"):
        decision_thresholds(runs[runs["scheme.name"] == "uchida"], method="empirical")
    with pytest.raises(ThresholdError, match="binomial bound: needs a bit-string key"):
        decision_thresholds(runs[runs["scheme.name"] == "adi"], method="binomial")


def test_too_few_null_runs_names_count_and_need():
    runs = _null_runs("adi", [0.1, 0.2])
    with pytest.raises(ThresholdError, match=r"adi on d: 2 null run\(s\), 5 needed \(min_null_runs=5\)"):
        decision_thresholds(runs, p=0.05, min_null_runs=5)
    assert decision_thresholds(runs, min_null_runs=2)["threshold"].iloc[0] > 0.2


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
    wm = np.array([0.3, 0.5, 0.3, 0.3])
    loss = np.array([0.01, 0.01, 0.06, 0.93 - 0.88])  # last: 5 points up to float error
    success = game.attack_succeeds(wm, 0.5, loss, max_stealing_loss=0.05)
    assert success.tolist() == [True, False, False, True]  # wm == θ keeps the watermark
    assert game.payoff(success, [0.8, 0.8, 0.8, 0.7]).tolist() == [0.8, 0.0, 0.0, 0.7]
    assert game.attack_succeeds(0.3, 0.5, 0.08, max_stealing_loss=0.1)


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
