"""Sweeps: launcher configs compose, a 2-job joblib multirun runs in parallel and shares the store,
and a failed run does not stop the others but sets the exit status."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir

from conftest import CONFIG_DIR


def test_launcher_configs_compose():
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        local = compose("config", overrides=["hydra/launcher=local"], return_hydra_config=True)
        slurm = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                        return_hydra_config=True)
    assert local.hydra.launcher.n_jobs == 2 and "joblib" in local.hydra.launcher._target_
    assert slurm.hydra.launcher.gpus_per_node == 1 and slurm.hydra.launcher.partition == "gpu"
    assert "submitit" in slurm.hydra.launcher._target_ and slurm.hydra.launcher.timeout_min > 0


def test_joblib_multirun_and_failure_accounting(wrt_run, tmp_path, fmnist_full):
    proc = wrt_run("-m", "hydra/launcher=local", "budget=smoke", "attack=weight_pruning",
                   "attack.rate=0.5,1.5")  # 1.5 is invalid: that run fails, the other completes
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 run(s) failed" in proc.stderr
    results = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert sorted(r["status"] for r in results) == ["failed", "ok"]
    assert len(list((tmp_path / "store" / "source").glob("*.pt"))) == 1
