"""Sweeps: launcher configs compose, a 2-job joblib multirun runs in parallel and shares the store,
and a failed run does not stop the others but sets the exit status."""

from __future__ import annotations

import importlib.util
import json

from hydra import compose, initialize_config_dir

from conftest import CONFIG_DIR, TINY, missing


def test_launcher_configs_compose():
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        local = compose("config", overrides=["hydra/launcher=local"], return_hydra_config=True)
        slurm = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                        return_hydra_config=True)
        local_slurm = compose("config", overrides=["hydra/launcher=submitit_local"], return_hydra_config=True)
    assert local.hydra.launcher.n_jobs == 2 and "joblib" in local.hydra.launcher._target_
    assert slurm.hydra.launcher.gpus_per_node == 1 and slurm.hydra.launcher.partition == "gpu"
    assert "submitit" in slurm.hydra.launcher._target_ and slurm.hydra.launcher.timeout_min > 0
    assert local_slurm.hydra.launcher._target_.endswith("LocalLauncher")
    assert local_slurm.hydra.launcher.timeout_min == slurm.hydra.launcher.timeout_min


SWEEP = (*TINY, "scheme=adi", "attack=weight_pruning")


def test_joblib_multirun_and_failure_accounting(wrt_run, tmp_path, fmnist_full):
    proc = wrt_run("-m", "hydra/launcher=local", *SWEEP, "attack.rate=0.5,1.5")  # 1.5 is invalid
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 run(s) failed" in proc.stderr and "invalid-config:" in proc.stderr
    results = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert [r["status"] for r in results] == ["ok"]  # the invalid run wrote no JSON
    assert len(list((tmp_path / "store" / "source").glob("*.pt"))) == 1


def assert_sweep_completed(proc, tmp_path):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert sorted((r["status"], r["attack"]["params"]["rate"]) for r in results) == [("ok", 0.5), ("ok", 0.7)]
    assert "2 run(s), 2 computed, 0 reused, 0 failed" in proc.stderr
    assert len(list((tmp_path / "store" / "source").glob("*.pt"))) == 1  # the jobs shared the store


def test_submitit_local_runs_a_sweep_through_the_slurm_job_code(wrt_run, tmp_path, fmnist_full):
    proc = wrt_run("-m", "hydra/launcher=submitit_local", *SWEEP, "attack.rate=0.5,0.7")
    assert_sweep_completed(proc, tmp_path)
    sweep_dir = next((tmp_path / "results" / "hydra").glob("multirun_*"))
    assert len(list(sweep_dir.glob(".submitit/*/*_result.pkl"))) == 2  # submitit ran and pickled both jobs


def test_ray_runs_a_sweep_on_a_local_ray_cluster(wrt_run, tmp_path, fmnist_full):
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None or importlib.util.find_spec("ray") is None:
        missing("the Ray launcher is not installed: pip install -e '.[ray]' (make test does)")
    proc = wrt_run("-m", "hydra/launcher=ray", *SWEEP, "attack.rate=0.5,0.7",
                   env={"RAY_USAGE_STATS_ENABLED": "0"})
    assert_sweep_completed(proc, tmp_path)
    assert "Started a local Ray instance" in proc.stderr and "(_run_job pid=" in proc.stderr
