"""The adaptive attacker (issue #27): its objective, the attacks' search spaces, θ before training, and a real
Optuna search through `wrt-run -m experiment=best_response` whose row the analyzer's "grid vs search" shows."""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import CONFIG_DIR, REMOVAL_BUDGET, WRT_ANALYZE, WRT_RUN, missing, run_tool
from fixtures.analysis_runs import run_record, write
from wrt.analysis.game import attacker_objective
from wrt.config import build
from wrt.search import dimensions
from wrt.validation import InvalidParameter

THETA = 0.2


def needs_optuna() -> None:
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        missing("the Optuna sweeper is not installed: pip install -e '.[optuna]' (make test does)")


def objective(wm: float, loss: float, acc: float = 0.85) -> float:
    return attacker_objective(wm, THETA, loss, acc)


def test_removed_beats_not_removed_and_lower_wm_acc_beats_higher():
    removed = objective(0.1, 0.04, acc=0.3)  # a poor surrogate, but the watermark is gone within the rule
    assert removed == pytest.approx(0.3)  # the payoff: its test accuracy
    for wm, loss in [(0.2, 0.0), (0.21, 0.0), (0.9, 0.0), (0.0, 0.06), (0.0, 0.5), (1.0, 0.9)]:
        assert objective(wm, loss) < 0 <= removed, (wm, loss)
    assert objective(0.3, 0.01) > objective(0.6, 0.01) > objective(1.0, 0.01)  # lower wm acc climbs
    assert objective(0.3, 0.01) == objective(0.3, 0.04)  # within the rule the loss does not count
    assert objective(0.1, 0.07) > objective(0.1, 0.3)  # over the rule, less loss climbs


def test_a_loss_over_the_rule_is_never_a_success():
    for wm in (0.0, 0.1, 0.19):
        assert objective(wm, 0.0501, acc=0.99) < 0
        assert objective(wm, 0.05, acc=0.5) == pytest.approx(0.5)  # at the rule: a success
    assert math.isnan(attacker_objective(None, THETA, None, None))  # a failed run measured nothing


ATTACKS = {path.stem: yaml.safe_load(path.read_text()) for path in sorted((Path(CONFIG_DIR) / "attack").glob("*.yaml"))}
SEARCHABLE = [name for name, node in ATTACKS.items() if "search" in node]  # plain YAML: no defaults list


@pytest.mark.parametrize("name", SEARCHABLE)
def test_search_spaces_are_valid_configurations(name):
    """Every searched range's ends and every choice build the attack (wrt.params validates them); learning
    rates are searched on a log scale, epochs are not searched."""
    node = ATTACKS[name]
    for d in dimensions(node):
        when = dict(d.when)
        for value in d.choices if d.choices is not None else (d.low, d.high):
            build({**node, **when, d.name: value})
        if d.name == "lr":
            assert d.log, f"{name}: a learning rate is searched on a log scale"
        assert "epochs" not in (d.name for d in dimensions(node))


def test_search_space_errors_are_one_line():
    node = ATTACKS["weight_pruning"]
    for search, wrong in [({"rate": {"low": 0.9, "high": 0.1}}, "numbers low < high"),
                          ({"speed": {"low": 0.1, "high": 0.9}}, "a parameter of attack weight_pruning"),
                          ({"rate": {"low": 0.0, "high": 0.9, "log": True}}, "above 0 on a log scale"),
                          (None, "this attack has no search space")]:
        with pytest.raises(InvalidParameter, match=wrong) as error:
            dimensions({**node, "search": search})
        assert "\n" not in str(error.value)


def test_a_search_without_theta_stops_before_training(wrt_run, tmp_path):
    needs_optuna()
    proc = wrt_run("-m", "experiment=best_response", "budget=smoke", "attack=weight_pruning",
                   "hydra.sweeper.n_trials=2")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "theta=null" in errors[0] and "pass theta=" in errors[0], proc.stderr[-2000:]
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".json", ".pt")]  # nothing trained


def null_runs(results_dir: Path) -> None:
    """Five unmarked models' scores of uchida's 100-bit key: θ is the binomial bound, 0.59 (the analyzer's
    `auto` method with fewer than 20 null models); no numerics recorded, so they join any setting's."""
    for seed, wm in enumerate((0.45, 0.5, 0.52, 0.48, 0.55)):
        record = run_record(run_name=f"null_uchida_{seed}", scheme="uchida", scheme_params={}, attack="none",
                            attack_params={}, seed=100 + seed, role="null", marked_wm=wm, surrogate_wm=wm,
                            budget="smoke")
        record["scheme"]["key_size"] = 100
        del record["device"]
        write(results_dir, record)


def grid_runs(results_dir: Path, trial: dict) -> None:
    """The grid's two weight pruning configs against the trial's scheme config and seed (hand-made outcomes):
    rate 0.5 keeps the watermark, rate 0.9 removes it at 30 points of loss (not a success)."""
    for rate, wm, acc in ((0.5, 0.95, trial["marked"]["test_acc"] - 0.01), (0.9, 0.1, trial["marked"]["test_acc"] - 0.3)):
        record = copy.deepcopy(trial)
        record["attack"].update(params={"rate": rate, "method": "random"}, ablated=["rate"])
        del record["attack"]["searched"], record["attack"]["study"]
        record["run_name"] = f"grid_rate{rate}"
        record["surrogate"] = {"test_acc": acc, "wm_acc": wm}
        record["stealing_loss"] = trial["marked"]["test_acc"] - acc
        write(results_dir, record)


def test_best_response_search_writes_tagged_trials_and_the_grid_vs_search_row(removal_store, tmp_path, fmnist_full):
    """`wrt-run -m experiment=best_response` with a seeded TPE sampler, 3 trials of weight pruning's rate against
    uchida (λ = 10) at the removal budget, θ from fixture null runs: one JSON per trial, tagged, with the
    progress lines counting; then wrt-analyze's grid_vs_search table has the study's row."""
    needs_optuna()
    results = tmp_path / "results"
    null_runs(results)
    proc = run_tool([WRT_RUN, "-m", "experiment=best_response", *REMOVAL_BUDGET, "scheme=uchida", "scheme.lam=10",
                     "attack=weight_pruning", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=1",
                     f"results_dir={results}", f"store_dir={removal_store}", "progress=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "search best_response_uchida_weight_pruning_s0: attack.rate; θ = 0.5900" in proc.stderr
    assert all(f"wrt-run: run {k}/3 computed" in proc.stderr for k in (1, 2, 3)), proc.stderr[-3000:]
    trials = [json.loads(p.read_text()) for p in (results / "runs").glob("marked_*.json")]
    assert len(trials) == 3 and len({t["attack"]["params"]["rate"] for t in trials}) == 3
    for trial in trials:
        assert trial["status"] == "ok" and trial["attack"]["searched"] is True
        assert trial["attack"]["study"] == "best_response_uchida_weight_pruning_s0"
        assert 0.1 <= trial["attack"]["params"]["rate"] <= 0.95 and trial["marked"]["wm_acc"] >= 0.59
    objectives = [float(line.split()[2]) for line in proc.stderr.splitlines() if line.startswith("wrt-run: objective")]
    assert len(objectives) == 3

    grid_runs(results, trials[0])
    analysis = run_tool([WRT_ANALYZE, f"results_dir={results}", "figures=false"], tmp_path)
    assert analysis.returncode == 0, analysis.stderr[-3000:]
    with open(results / "analysis" / "robustness.csv") as f:  # Table V: the grid's two configs, no search
        cell = [r for r in csv.DictReader(f) if r["attack"] == "weight_pruning"][0]
    assert cell["uchida"] == "✓" and float(cell["runs_expected"]) == 2
    with open(results / "analysis" / "grid_vs_search.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    row = rows[0]
    assert (row["study"], row["trials"], row["grid_configs"], row["seed"]) == (
        "best_response_uchida_weight_pruning_s0", "3", "2", "0")
    # the grid's best: rate 0.9 removes the watermark at too much loss, which scores above keeping it (rate 0.5)
    assert row["grid_best"] == "weight_pruning(rate=0.9)" and float(row["grid_payoff"]) == 0
    best = max(trials, key=lambda t: attacker_objective(t["surrogate"]["wm_acc"], 0.59, t["stealing_loss"],
                                                        t["surrogate"]["test_acc"]))
    assert row["search_best"] == f"weight_pruning(rate={best['attack']['params']['rate']:g})"
    assert float(row["search_objective"]) == pytest.approx(max(objectives), abs=1e-4)
    removed = float(row["search_payoff"]) > 0
    assert (row["mark"], row["mark_with_search"], row["mark_changes"]) == (
        "✓", "✗" if removed else "✓", str(removed))
    assert "Grid vs search" in (results / "analysis" / "report.html").read_text()
