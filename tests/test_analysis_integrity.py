"""Issue #25: the analyzer's integrity. One run counts once (renamed copies, other numerics, searched runs, null
runs with more key draws), an incomplete cell says so (`inc`), a killed analysis leaves the previous complete
one, a setting without θ is skipped with one line, a reference without a comparable cell says why."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fixtures.analysis_runs import run_record, write, write_sweep

from wrt.analysis import tables
from wrt.analysis.report import Options, analyze
from wrt.analysis.tables import INCOMPLETE, REMOVED, ROBUST

ADI0, ADI1, TRANSFER = "adi(size=50)", "adi(size=100)", "transfer_learning(epochs=5)"


def _analyze(results, **options) -> list[str]:
    printed: list[str] = []
    analyze(Options(results_dir=str(results), figures=False, **options), out=printed.append)
    return printed


def _robustness(results, **options) -> pd.DataFrame:
    _analyze(results, **options)
    return pd.read_csv(results / "analysis" / "robustness.csv").set_index("attack")


def _outcome(results, scheme_config=ADI0, attack_config=TRANSFER) -> pd.Series:
    outcomes = pd.read_csv(results / "analysis" / "outcomes.csv")
    return outcomes[(outcomes["scheme_config"] == scheme_config) & (outcomes["attack_config"] == attack_config)]


def _record(results, name: str) -> dict:
    return json.loads((results / "runs" / f"{name}.json").read_text())


def _fail(results, name: str) -> None:
    record = _record(results, name)
    record.update(status="failed", error="RuntimeError: out of memory", failed_stage="attack",
                  surrogate={"test_acc": None, "wm_acc": None}, stealing_loss=None)
    write(results, record)


# ---------------------------------------------------------------- finding 1: one run counts once

@pytest.mark.parametrize("surrogate_wm", [0.9, None])  # other numbers, or an identical copy
def test_a_renamed_copy_counts_once_with_one_warning_naming_both_files(tmp_path, capsys, surrogate_wm):
    write_sweep(tmp_path)
    copy = _record(tmp_path, "adi0_transfer_learning5_s0")
    copy["run_name"] = "adi0_transfer_copy"
    if surrogate_wm is not None:
        copy["surrogate"]["wm_acc"] = surrogate_wm
    write(tmp_path, copy)
    _analyze(tmp_path)
    assert _outcome(tmp_path)["n_runs"].item() == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "adi0_transfer_copy.json" in line]
    assert len(lines) == 1 and "adi0_transfer_learning5_s0.json" in lines[0], lines
    assert ("a copy under another name" if surrogate_wm is None else "other results") in lines[0]


def _with_numerics(results, threads: int) -> None:
    for path in (results / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        record.update(precision="fp32", cpu_threads=threads)
        path.write_text(json.dumps(record))


def test_runs_of_other_numerics_are_another_setting_unless_merged(tmp_path, capsys):
    write_sweep(tmp_path)
    _with_numerics(tmp_path, 2)
    rerun = _record(tmp_path, "adi0_transfer_learning5_s0")
    rerun.update(run_name="adi0_transfer_learning5_s0_1thread", cpu_threads=1)
    rerun["surrogate"]["wm_acc"] = 0.9
    write(tmp_path, rerun)
    _analyze(tmp_path)
    cell = _outcome(tmp_path)
    assert cell["setting"].tolist() == ["fashion_mnist@cpu-fp32-2t"] and cell["n_runs"].item() == 2
    err = capsys.readouterr().err.splitlines()
    # the 1-thread setting has no null runs: no θ, skipped with one line; the 2-thread one is analysed
    assert [line for line in err if "fashion_mnist@cpu-fp32-1t" in line and "no θ" in line] != []
    _analyze(tmp_path, merge_numerics=True)
    cell = _outcome(tmp_path)
    assert cell["setting"].tolist() == ["fashion_mnist"] and cell["n_runs"].item() == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "1thread" in line]
    assert len(lines) == 1 and "adi0_transfer_learning5_s0.json" in lines[0] and "other numerics" in lines[0]
    assert "merge_numerics" in (tmp_path / "analysis" / "report.html").read_text()


def test_searched_runs_are_no_grid_runs(tmp_path):
    write_sweep(tmp_path)
    searched = _record(tmp_path, "adi1_transfer_learning5_s0")
    searched.update(run_name="adi1_transfer_searched", seed=7)
    searched["attack"]["searched"] = True
    write(tmp_path, searched)
    robustness = _robustness(tmp_path)
    assert robustness.loc["transfer_learning", "adi"] == REMOVED  # seed 7 is expected nowhere
    assert _outcome(tmp_path, ADI1)["n_runs"].item() == 2


def test_of_two_null_runs_the_one_with_more_key_draws_counts(tmp_path, capsys):
    write_sweep(tmp_path)
    more = _record(tmp_path, "null_adi_0")
    more["run_name"] = "null_adi_0_20keys"
    more["null"] = {"keys": 20, "wm_accs": [0.05] * 20}
    write(tmp_path, more)
    _analyze(tmp_path)
    thresholds = pd.read_csv(tmp_path / "analysis" / "thresholds.csv").set_index("scheme")
    assert thresholds.loc["adi", "n_null"] == 6 and thresholds.loc["adi", "n_scores"] == 5 + 20
    lines = [line for line in capsys.readouterr().err.splitlines() if "null_adi_0.json" in line]
    assert len(lines) == 1 and "null_adi_0_20keys.json" in lines[0] and "key draws" in lines[0]


# ---------------------------------------------------------------- finding 3: incomplete grids

def _second_transfer_config(results) -> None:
    """transfer_learning(epochs=10), which removes neither adi config (wm acc 0.9)."""
    for s_i, size in enumerate((50, 100)):
        for seed in (0, 1):
            write(results, run_record(run_name=f"adi{s_i}_transfer_learning10_s{seed}", scheme="adi",
                                      scheme_params={"size": size}, attack="transfer_learning",
                                      attack_params={"epochs": 10}, seed=seed, surrogate_acc=0.86, surrogate_wm=0.9))


def _drop_adi1_transfer(results, seeds=(0, 1)) -> None:
    for seed in seeds:
        (results / "runs" / f"adi1_transfer_learning5_s{seed}.json").unlink()


def test_an_attack_config_missing_on_every_seed_makes_the_cell_incomplete(tmp_path):
    write_sweep(tmp_path)
    _second_transfer_config(tmp_path)
    assert _robustness(tmp_path).loc["transfer_learning", "adi"] == REMOVED  # epochs=5 removes both configs
    _drop_adi1_transfer(tmp_path)  # paying 0 in its place, adi(size=100) would be the robust defender
    robustness = _robustness(tmp_path)
    assert robustness.loc["transfer_learning", "adi"] == INCOMPLETE
    assert robustness.loc["transfer_learning", ["runs_present", "runs_expected"]].tolist() == [6 + 4, 8 + 4]
    configs = pd.read_csv(tmp_path / "analysis" / "robustness_configs.csv").set_index(["attack", "scheme"])
    assert configs.loc[("transfer_learning", "adi"), ["runs_present", "runs_expected", "missing_pairs"]].tolist() \
        == [6, 8, 1]  # adi(size=100) × transfer_learning(epochs=5): paying 0 in the shown equilibrium
    assert robustness.loc["transfer_learning", "uchida"] == REMOVED  # complete: marked as before
    assert f"{INCOMPLETE} incomplete" in (tmp_path / "analysis" / "robustness.md").read_text()  # the legend


def test_a_run_missing_on_one_seed_is_incomplete_not_a_disagreement(tmp_path):
    write_sweep(tmp_path)
    _drop_adi1_transfer(tmp_path, seeds=(1,))
    robustness = _robustness(tmp_path)
    assert robustness.loc["transfer_learning", "adi"] == INCOMPLETE
    outcome = _outcome(tmp_path, ADI1)
    assert outcome[["runs_present", "runs_expected"]].values.tolist() == [[1, 2]]


def _cell(scheme_config: str, attack_config: str, payoff: float) -> dict:
    removed = payoff > 0
    return {"setting": "fm", "dataset": "fm", "scheme": "adi", "scheme_config": scheme_config, "attack": "pruning",
            "category": "model_modification", "attack_config": attack_config, "payoff": payoff, "embedded": True,
            "active": False, "rescaled_wm_acc": 0.2 if removed else 0.9, "stealing_loss": 0.01,
            "surrogate_wm_acc": 0.1 if removed else 0.9, "theta": 0.3, "theta_lo": 0.3, "theta_hi": 0.3,
            "seed": 0, "marked.wm_acc": 1.0}


@pytest.mark.parametrize("left_out, mark", [(False, REMOVED), (True, INCOMPLETE)])
def test_a_hand_made_game_without_a_removing_run_is_incomplete(left_out, mark):
    """A×X and B×Y remove the watermark; without B×Y, a 0 in its place would make B the robust defender."""
    cells = pd.DataFrame([_cell("A", "X", 0.8), _cell("A", "Y", 0.0), _cell("B", "X", 0.0)]
                         + ([] if left_out else [_cell("B", "Y", 0.8)]))
    failed = pd.DataFrame(columns=["setting", "scheme.name", "attack.name"])
    table = tables.robustness_table(cells, cells, failed, 0.05)
    assert table.set_index("attack").loc["pruning", "adi"] == mark


def test_a_failed_run_makes_the_cell_incomplete_only_when_it_could_change_the_mark(tmp_path):
    write_sweep(tmp_path)
    for seed in (0, 1):
        _fail(tmp_path, f"adi1_transfer_learning5_s{seed}")  # paying 0 it would make adi robust, 1: removed
        _fail(tmp_path, f"adi1_input_smoothing1.0_s{seed}")  # adi0 survives smoothing whatever adi1 pays
    robustness = _robustness(tmp_path)
    assert robustness.loc["transfer_learning", "adi"] == INCOMPLETE
    assert robustness.loc["input_smoothing", "adi"] == ROBUST


# ---------------------------------------------------------------- finding 2: the sweeps' manifests

def _manifest(results, entries: list[tuple[str, int]]) -> None:
    """A manifest planning adi(size=`size`) × transfer learning on these seeds."""
    runs = [{"run_name": f"adi{0 if size == 50 else 1}_transfer_learning5_s{seed}", "dataset": "fashion_mnist",
             "model": "small_cnn", "budget": "default", "seed": seed, "role": "marked",
             "scheme": {"name": "adi", "params": {"size": size}, "ablated": None},
             "attack": {"name": "transfer_learning", "category": "model_extraction", "params": {"epochs": 5},
                        "ablated": None}} for size, seed in entries]
    (results / "manifests").mkdir(exist_ok=True)
    (results / "manifests" / "plan.json").write_text(json.dumps({"runs": runs}))


def test_a_cell_expects_the_runs_its_manifest_plans(tmp_path):
    write_sweep(tmp_path)
    _drop_adi1_transfer(tmp_path)
    _manifest(tmp_path, [(50, 0), (50, 1)])  # the sweep selected adi(size=50) only: complete
    robustness = _robustness(tmp_path)
    assert robustness.loc["transfer_learning", "adi"] == REMOVED
    _manifest(tmp_path, [(50, 0), (50, 1), (50, 2)])  # seed 2 was planned and is missing
    robustness = _robustness(tmp_path)
    assert robustness.loc["transfer_learning", "adi"] == INCOMPLETE


# ---------------------------------------------------------------- finding 4: a killed analysis

def _contents(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("after", [1, 12])
def test_a_killed_analysis_leaves_the_previous_complete_one(tmp_path, monkeypatch, after):
    write_sweep(tmp_path)
    _second_transfer_config(tmp_path)
    _analyze(tmp_path)
    before = _contents(tmp_path / "analysis")
    _drop_adi1_transfer(tmp_path)  # the next analysis marks adi × transfer learning inc
    written, write_table = [], tables.write_table

    def dies(*args, **kwargs):
        if len(written) >= after:
            raise KeyboardInterrupt
        written.append(args[2])
        return write_table(*args, **kwargs)

    monkeypatch.setattr(tables, "write_table", dies)
    with pytest.raises(KeyboardInterrupt):
        _analyze(tmp_path)
    assert _contents(tmp_path / "analysis") == before
    monkeypatch.setattr(tables, "write_table", write_table)
    _analyze(tmp_path)
    assert pd.read_csv(tmp_path / "analysis" / "robustness.csv").set_index("attack").loc[
        "transfer_learning", "adi"] == INCOMPLETE
    assert len(list((tmp_path / "analysis.versions").iterdir())) == 1  # the killed one's leftovers are gone


def test_a_killed_first_analysis_leaves_no_analysis_folder(tmp_path, monkeypatch):
    write_sweep(tmp_path)
    monkeypatch.setattr(tables, "write_table", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("full")))
    with pytest.raises(OSError):
        _analyze(tmp_path)
    assert not (tmp_path / "analysis").exists()


def test_an_analysis_folder_of_an_earlier_wrt_is_replaced_whole(tmp_path):
    write_sweep(tmp_path)
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "stale.csv").write_text("old\n")
    printed = _analyze(tmp_path)
    assert printed[-1] == str(tmp_path / "analysis" / "report.html")
    assert (tmp_path / "analysis" / "robustness.csv").exists() and not (tmp_path / "analysis" / "stale.csv").exists()


# ---------------------------------------------------------------- findings 5 and 8

def test_a_setting_without_theta_is_skipped_with_one_line(tmp_path, capsys):
    write_sweep(tmp_path)
    other = _record(tmp_path, "adi0_transfer_learning5_s0")
    other.update(run_name="cifar_run", dataset="cifar10")
    write(tmp_path, other)
    _analyze(tmp_path)
    lines = [line for line in capsys.readouterr().err.splitlines() if "cifar10" in line]
    assert len(lines) == 1 and "no θ" in lines[0] and "adi" in lines[0], lines
    assert set(pd.read_csv(tmp_path / "analysis" / "outcomes.csv")["setting"]) == {"fashion_mnist"}


def test_a_reference_without_a_comparable_cell_says_why(tmp_path):
    for i, wm in enumerate((0.05, 0.08, 0.10, 0.12, 0.15, 0.20)):
        write(tmp_path, run_record(run_name=f"null{i}", scheme="adi", scheme_params={"size": 50}, attack="none",
                                   attack_params={}, seed=100 + i, role="null", marked_wm=wm))
    for seed in (0, 1):  # weight pruning is no row of the SoK's Table V
        write(tmp_path, run_record(run_name=f"adi_pruning_s{seed}", scheme="adi", scheme_params={"size": 50},
                                   attack="weight_pruning", attack_params={"rate": 0.5}, seed=seed,
                                   surrogate_wm=0.9))
    printed = _analyze(tmp_path, reference="sok_cifar10")
    lines = [line for line in printed if "sok_cifar10" in line]
    assert len(lines) == 1 and lines[0].startswith("reference sok_cifar10: no comparable cell in setting "
                                                   "fashion_mnist: no Table V row run"), printed
    assert "another dataset's setting (fashion_mnist" in lines[0]
    assert not (tmp_path / "analysis" / "reference.csv").exists()


# ---------------------------------------------------------------- issue #29: an unrun pair is missing, not 0

def _game(pairs: dict) -> pd.DataFrame:
    """Hand-made outcome cells of one attack (ftal, two configs) against scheme configs: (scheme config, attack
    config) -> payoff (> 0: removed)."""
    return pd.DataFrame([{"setting": "s", "category": "model_modification", "attack": "ftal", "scheme": "adi",
                          "scheme_config": s, "attack_config": a, "payoff": v, "payoff_lo": v, "payoff_hi": v,
                          "stealing_loss": 0.01, "rescaled_wm_acc": 0.1 if v else 0.9, "embedded": True,
                          "n_seeds": 1} for (s, a), v in pairs.items()])


def test_an_unrun_pair_is_missing_in_the_dominant_attacks_and_the_nash_game():
    removes_x, y_survives_a1 = {("x", "a1"): 0.8, ("x", "a2"): 0.0}, {("y", "a1"): 0.0}  # y never faced a2
    dominant = tables.dominant_attacks_table(_game({**removes_x, **y_survives_a1}), 0.05).iloc[0]
    # a2 could remove y: undecided, where a 0 for the unrun pair said "not dominant"
    assert dominant["dominant"] is None and dominant["missing_pairs"] == 1 and dominant["removed_by_some_config"] == 1
    assert dominant["nash_payoff"] == pytest.approx(0.8)  # on x, the one scheme config that faced both configs
    z_faced_both = {("z", "a1"): 0.0, ("z", "a2"): 0.0}
    assert tables.dominant_attacks_table(_game({**removes_x, **y_survives_a1, **z_faced_both}), 0.05)[
        "dominant"].tolist() == [False]  # z faced every config and survived: not dominant, whatever a2 does to y
    y_removed = {("y", "a1"): 0.7}
    assert tables.dominant_attacks_table(_game({**removes_x, **y_removed}), 0.05)["dominant"].tolist() == [True]

    entry = tables.nash_entry(_game({**removes_x, **y_survives_a1}), 0.05)
    assert entry["missing_pairs"] == [["y", "a2"]] and entry["left_out"] == {"scheme_configs": ["y"],
                                                                            "attack_configs": []}
    assert entry["pure"] == {"scheme": "x", "attack": "a1", "payoff": 0.8}  # with a 0 for (y, a2): y, robust
    assert list(entry["mixed"]["defender"]) == ["x"]
    crossed = tables.nash_entry(_game({("x", "a1"): 0.8, ("y", "a2"): 0.0}), 0.05)  # no complete sub-game
    assert crossed["pure"] is None and crossed["mixed"] is None and len(crossed["missing_pairs"]) == 2
    per_scheme = tables.nash_per_scheme_table(_game({("x", "a1"): 0.8, ("y", "a2"): 0.0}),
                                              {"s": {"per_scheme": {"adi": crossed}}})
    assert per_scheme["robust"].tolist() == [None] and per_scheme["missing_pairs"].tolist() == [2]
