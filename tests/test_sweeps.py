"""Sweeps: the plan before a sweep (and `dry_run`), `run k/n` progress and the summary, one sweep
folder and failure list per invocation, and one computation per run name across processes."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import TINY, WRT_RUN, share_probes



def runs_in(tmp_path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]


def test_plan_dry_run_progress_and_summary(wrt_run, tmp_path, fmnist_full):
    first = wrt_run(*TINY, "scheme=adi", "attack=none")
    assert first.returncode == 0, first.stderr[-2000:]
    again = wrt_run(*TINY, "scheme=adi", "attack=none")
    assert again.returncode == 0 and "reused the finished run" in again.stderr

    sweep = ("-m", *TINY, "scheme=adi", "attack=none,weight_pruning")
    plan = wrt_run(*sweep, "dry_run=true")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "2 run(s): 1 finished earlier (reused), 1 to run" in plan.stdout
    assert "to compute: 0 source training(s) (1 reused from the store), 0 embedding(s) (1 reused)" in plan.stdout
    assert "estimate: about" in plan.stdout and "core-hours" in plan.stdout and "images/s" in plan.stdout
    assert len(runs_in(tmp_path)) == 1 and not list((tmp_path / "results" / "hydra").glob("multirun_*"))

    proc = wrt_run(*sweep)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].endswith(".json")  # the last stdout line: a JSON path
    assert "sweep plan:" in proc.stderr and "sweep plan:" not in proc.stdout
    assert "wrt-run: run 1/2 " in proc.stderr and "wrt-run: run 2/2 " in proc.stderr
    summary = [line for line in proc.stderr.splitlines() if "sweep done in" in line]
    assert len(summary) == 1 and "2 run(s), 1 computed, 1 reused, 0 failed" in summary[0]
    assert len(runs_in(tmp_path)) == 2


def test_bad_option_in_a_dry_run_is_reported_and_nothing_runs(wrt_run, tmp_path, fmnist_full):
    proc = wrt_run("-m", *TINY, "attack=weight_pruning", "attack.rate=0.5,abc", "dry_run=true")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "1 with an invalid config" in proc.stdout and "attack.rate='abc'" in proc.stdout
    assert not list((tmp_path / "results").rglob("*.json"))  # nothing ran


def sweep(tmp_path, *overrides) -> subprocess.Popen:
    args = [WRT_RUN, "-m", f"results_dir={tmp_path}/results", f"store_dir={tmp_path}/store",
            "progress=false", *TINY, "scheme=adi", "attack=weight_pruning", *overrides]
    return subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ)


def test_concurrent_sweeps_have_their_own_folders_and_compute_each_run_once(tmp_path, fmnist_full, suite_probes):
    share_probes(tmp_path / "store", suite_probes)
    a = sweep(tmp_path, "attack.rate=0.5,1.5")  # 1.5 is invalid: this sweep fails
    b = sweep(tmp_path, "attack.rate=0.5,0.7")  # started in the same second, shares rate=0.5
    (_, a_err), (_, b_err) = a.communicate(timeout=600), b.communicate(timeout=600)
    assert a.returncode == 1 and "1 run(s) failed" in a_err and "attack.rate=1.5" in a_err, a_err[-2000:]
    assert b.returncode == 0 and "failed (see" not in b_err, b_err[-2000:]
    folders = sorted((tmp_path / "results" / "hydra").glob("multirun_*"))
    assert len(folders) == 2
    assert [(f / "failed_runs.txt").exists() for f in folders].count(True) == 1
    outcomes = [line.split()[0] for f in folders for line in (f / "progress.txt").read_text().splitlines()[1:]]
    assert sorted(outcomes) == ["computed", "computed", "failed", "reused"]  # rate=0.5 computed once
    assert sorted(r["attack"]["params"]["rate"] for r in runs_in(tmp_path)) == [0.5, 0.7]


def test_a_run_waits_for_another_process_computing_it_then_reuses_its_json(compose_cfg, tmp_path, fmnist_full):
    from wrt.pipeline import execute, run_lock, run_path
    from wrt.store import atomic_write_json

    cfg = compose_cfg(*TINY, "attack=none")
    path = run_path(cfg)
    with run_lock(path):  # this test is the other process, computing the run
        proc = subprocess.Popen([WRT_RUN, f"results_dir={tmp_path}/results", f"store_dir={tmp_path}/store",
                                 "progress=false", *TINY, "attack=none"], cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
        waiting = ""
        while "waiting for another process" not in waiting and (line := proc.stderr.readline()):
            waiting += line
        assert f"waiting for another process computing {path.stem}" in waiting, waiting
        result = execute(cfg)
        assert result["status"] == "ok"
        atomic_write_json(path, result)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == str(path) and "reused the finished run" in err
    assert json.loads(path.read_text())["created"] == result["created"]  # not recomputed
