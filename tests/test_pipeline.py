"""`wrt-run` end to end at budget=smoke, and its handling of bad input."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TINY, WRT_ANALYZE, run_tool
from wrt.pipeline import run_name

REQUIRED = ["status", "error", "dataset", "model", "seed", "role", "scheme", "attack", "source",
            "marked", "surrogate", "stealing_loss", "embedding_loss", "timing_s", "versions", "config"]


def last_line_json(proc) -> dict:
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.suffix == ".json" and path.exists(), proc.stdout + proc.stderr
    return json.loads(path.read_text())


def test_smoke_run_writes_a_complete_json_and_reuses_the_source(wrt_run, fmnist_full, tmp_path):
    proc = wrt_run("budget=smoke", "scheme=adi", "attack=weight_pruning")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = last_line_json(proc)
    assert all(field in result for field in REQUIRED)
    assert result["status"] == "ok" and result["error"] is None and result["role"] == "marked"
    assert result["scheme"] == {**result["scheme"], "name": "adi", "bits": False, "key_size": 100}
    assert result["attack"]["category"] == "model_modification" and result["attack"]["params"] == {"rate": 0.9, "method": "random"}
    for stage in ("source", "marked", "surrogate"):
        assert 0.0 <= result[stage]["test_acc"] <= 1.0
    assert result["source"]["cached"] is False and result["source"]["test_acc"] > 0.5
    assert 0.0 <= result["marked"]["wm_acc"] <= 1.0
    assert abs(result["stealing_loss"] - (result["marked"]["test_acc"] - result["surrogate"]["test_acc"])) < 1e-9
    assert set(result["timing_s"]) >= {"source", "embed", "attack", "evaluate", "total"}
    assert result["cpu_s"]["source"] > 0 and result["cpu_s"]["total"] >= result["cpu_s"]["source"]  # core-seconds
    assert result["config"]["budget"]["name"] == "smoke"

    again = last_line_json(wrt_run("budget=smoke", "scheme=adi", "attack=none"))
    assert again["status"] == "ok" and again["source"]["cached"] is True and again["marked"]["cached"] is True
    assert again["surrogate"] == {k: again["marked"][k] for k in ("test_acc", "wm_acc")}
    # the source's test accuracy and the marked model's evaluation were computed once, by the first run
    assert len(list((tmp_path / "store" / "evaluation").glob("*.pt"))) == 2
    assert again["source"]["test_acc"] == result["source"]["test_acc"]
    assert {k: again["marked"][k] for k in ("test_acc", "wm_acc")} == {k: result["marked"][k] for k in ("test_acc", "wm_acc")}


def test_null_role_measures_the_key_on_an_unmarked_model(compose_cfg, fmnist_full):
    from wrt.pipeline import run

    from wrt.analysis.load import validate

    result, path = run(compose_cfg(*TINY, "role=null", "attack=none", "null_keys=4"))
    assert result["status"] == "ok" and path.name.startswith("null_adi_none")
    assert result["marked"]["wm_acc"] < 0.3  # random labels: about 1/10 on an unmarked model
    null = result["null"]  # the run's own key first, then 3 more draws, each from its own seed
    assert null["keys"] == 4 and null["wm_accs"][0] == result["marked"]["wm_acc"] and len(null["wm_accs"]) == 4
    assert all(a < 0.3 for a in null["wm_accs"]) and validate(result) is None
    marked, _ = run(compose_cfg(*TINY, "attack=none", "null_keys=4"))
    assert "null" not in marked  # only null runs draw keys; null_keys leaves marked runs' names alone
    assert marked["run_name"] == run(compose_cfg(*TINY, "attack=none"))[0]["run_name"]


def test_unknown_option_suggests_the_closest_and_lists_the_available_ones(wrt_run):
    proc = wrt_run("attack=weight_prunin")
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert lines[0] == ("wrt-run: error: no attack 'weight_prunin' in wrt/configs/attack/ or hydra.searchpath; "
                        "did you mean 'weight_pruning'?")
    assert "Available options in 'attack'" in proc.stderr and "none" in proc.stderr  # Hydra's list follows


def test_bad_parameter_is_a_config_error_before_the_run(wrt_run, tmp_path):
    for override, message in [("attack.rate=1.5", "attack.rate=1.5 is not allowed: must be a number in (0.0, 1.0)"),
                              ("attack.rate=abc", "attack.rate='abc' is not allowed"),
                              ("+attack.foo=1", "attack.weight_pruning: TypeError")]:
        proc = wrt_run("budget=smoke", "attack=weight_pruning", override)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip().splitlines() == [f"wrt-run: error: stage config: {proc.stderr.split(': ', 3)[-1].strip()}"]
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "results").rglob("*.json"))  # no run JSON


def test_analyze_help_lists_its_options_not_the_runs_groups(tmp_path):
    proc = run_tool([WRT_ANALYZE, "--help"], tmp_path)
    assert proc.returncode == 0 and "threshold_method" in proc.stdout
    assert "scheme" not in proc.stdout and "attack" not in proc.stdout and "Configuration groups" not in proc.stdout


def test_missing_dataset_fails_with_the_fix(wrt_run, tmp_path):
    (tmp_path / "nowhere").mkdir()  # an existing folder without the files (a missing one: test_data.py)
    proc = wrt_run("budget=smoke", "dataset=cifar10", f"dataset.root={tmp_path}/nowhere", env={"WRT_DATA": ""})
    assert proc.returncode != 0
    result = last_line_json(proc)
    assert result["status"] == "failed" and result["failed_stage"] == "data"
    assert result["error"].startswith("DatasetUnavailable: CIFAR-10 not found") and "dataset.root" in result["error"]
    assert "run failed in stage data" in proc.stderr


def test_run_names_are_stable_and_distinguish_configs(compose_cfg):
    a, b = compose_cfg("seed=1"), compose_cfg("seed=1")
    assert run_name(a) == run_name(b)
    assert run_name(a) != run_name(compose_cfg("seed=2")) != run_name(compose_cfg("seed=1", "attack.rate=0.5"))
    assert run_name(a) == run_name(compose_cfg("seed=1", "progress=true"))  # volatile keys ignored
