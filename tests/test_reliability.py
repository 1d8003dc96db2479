"""Reliability: a killed run leaves nothing half-written and resumes, one failing run does not sink
a sweep, the same seed gives the same numbers, and malformed input gives clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import TINY, WRT_RUN
from fixtures.analysis_runs import run_record, write
from wrt.analysis.load import load_runs

VOLATILE = ("timing_s", "cpu_s", "memory", "created", "config", "source", "marked", "attack_time_ratio")


def test_sigkill_mid_training_leaves_no_valid_partial_output_and_rerun_completes(tmp_path, fmnist_full):
    args = [WRT_RUN, *TINY, "budget.source_trainer.epochs=8", "attack=none",  # 7 epochs (~2 s) after the first checkpoint
            f"results_dir={tmp_path}/results", f"store_dir={tmp_path}/store", "progress=false"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    source_dir = tmp_path / "store" / "source"
    deadline = time.time() + 240
    while not list(source_dir.glob("*.ckpt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its first checkpoint"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list((tmp_path / "results").rglob("*.json")), "no run JSON from a killed run"
    assert not list(source_dir.glob("*.pt")), "no source model from a killed run"

    rerun = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    result = json.loads(open(rerun.stdout.strip().splitlines()[-1]).read())
    assert result["status"] == "ok" and not list(source_dir.glob("*.ckpt"))
    again = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert again.stdout.strip().splitlines()[-1] == rerun.stdout.strip().splitlines()[-1]
    assert json.loads(open(again.stdout.strip().splitlines()[-1]).read())["created"] == result["created"], \
        "a finished run is skipped, not repeated"


def test_same_seed_gives_identical_numbers(compose_cfg, tmp_path, fmnist_full):
    from wrt.pipeline import run

    results = []
    for name in ("a", "b"):
        cfg = compose_cfg(*TINY, "attack=weight_pruning", f"results_dir={tmp_path}/{name}",
                          f"store_dir={tmp_path}/{name}-store")
        result, _ = run(cfg)
        results.append(result)
    a, b = ({k: v for k, v in r.items() if k not in VOLATILE} for r in results)
    assert a == b
    for stage in ("source", "marked", "surrogate"):
        assert results[0][stage]["test_acc"] == results[1][stage]["test_acc"]



def test_thread_count_and_precision_are_part_of_run_and_store_identity(compose_cfg, monkeypatch):
    """CPU floats depend on threads and precision, so neither a result file nor a cached model of
    one setting is ever reused for another (docs/reliability.md, determinism)."""
    import torch

    import wrt.hardware
    from wrt.pipeline import new_record, run_name, source_spec
    from wrt.store import spec_digest

    def identity(*overrides):
        cfg = compose_cfg("budget=smoke", "device=cpu", *overrides)
        return run_name(cfg), spec_digest(source_spec(cfg, 0)), new_record(cfg).precision

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = identity()
        torch.set_num_threads(2)
        two = identity()
    finally:
        torch.set_num_threads(threads)
    assert one[0] != two[0] and one[1] != two[1]
    # precision=auto on a CPU where bf16 is the faster and on one where it is not: the resolved precision
    # is part of the identity; precision=fp32 on the first is the same run as auto on the second
    monkeypatch.setattr(wrt.hardware, "cpu_bf16_is_faster", lambda: True)
    monkeypatch.setattr(wrt.hardware, "cpu_has_bf16", lambda: True)
    bf16 = identity("precision=auto")
    fp32_here = identity("precision=fp32")
    monkeypatch.setattr(wrt.hardware, "cpu_bf16_is_faster", lambda: False)
    fp32 = identity("precision=auto")
    assert (bf16[2], fp32[2], fp32_here[2]) == ("bf16", "fp32", "fp32")
    assert bf16[0] != fp32[0] and bf16[1] != fp32[1]
    assert fp32_here == fp32


def test_bf16_on_a_cpu_without_it_is_one_line_error(compose_cfg, monkeypatch):
    """An explicit precision=bf16 where the CPU has no native bf16 is refused, not run in fp32."""
    import pytest

    import wrt.hardware
    from wrt.pipeline import check_run_config
    from wrt.validation import InvalidParameter

    monkeypatch.setattr(wrt.hardware, "cpu_flags", lambda: ["avx2", "fma"])
    with pytest.raises(InvalidParameter) as error:
        check_run_config(compose_cfg("budget=smoke", "device=cpu", "precision=bf16"))
    message = str(error.value)
    assert "\n" not in message and message.startswith("precision='bf16' is not allowed") and "fp32 or auto" in message
    for value in ("fp16", "true"):
        with pytest.raises(InvalidParameter, match="precision=.* is not allowed: must be fp32, bf16 or auto"):
            check_run_config(compose_cfg("budget=smoke", "device=cpu", f"precision={value}"))
    assert check_run_config(compose_cfg("budget=smoke", "device=cpu", "precision=auto")) is None
    with pytest.raises(InvalidParameter, match=r"budget.trainer.cpu_bf16=False is not allowed: must be absent"):
        check_run_config(compose_cfg("budget=smoke", "device=cpu", "+budget.trainer.cpu_bf16=false"))


def test_joblib_jobs_share_the_cores():
    from omegaconf import OmegaConf
    from hydra.types import RunMode

    from wrt.cli import threads_per_job
    from wrt.hardware import cores

    def hydra(mode, **launcher):
        return OmegaConf.create({"mode": mode, "launcher": launcher})

    assert threads_per_job(hydra(RunMode.RUN)) is None
    assert threads_per_job(hydra(RunMode.MULTIRUN, n_jobs=2)) == max(1, cores() // 2)
    assert threads_per_job(hydra(RunMode.MULTIRUN, n_jobs=-1)) == 1
    assert threads_per_job(hydra(RunMode.MULTIRUN, timeout_min=60)) is None  # submitit: one job per node

PLUGIN = '''
import torch
from wrt.attacks.base import Attack
from wrt.train import LossTerm


class Diverge(Attack):
    """Fine-tunes with a loss that becomes NaN: a stand-in for a diverging attack."""

    category = "model_modification"

    def __call__(self, model, ctx):
        images, labels = ctx.attacker_labeled()
        ctx.trainer.fit(model, images, labels, epochs=1,
                        callbacks=[LossTerm(lambda *a: torch.tensor(float("nan")))])
        return model
'''


def test_a_nan_in_one_run_fails_that_run_only(wrt_run, tmp_path, fmnist_full):
    """Also shows that an attack is one module plus one config, found through Hydra's search path."""
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "diverge_attack.py").write_text(PLUGIN)
    (tmp_path / "extra" / "attack").mkdir(parents=True)
    (tmp_path / "extra" / "attack" / "diverge.yaml").write_text("name: diverge\n_target_: diverge_attack.Diverge\n")
    proc = wrt_run("-m", *TINY, "attack=none,diverge", f"hydra.searchpath=[file://{tmp_path}/extra]",
                   env={"PYTHONPATH": f"{tmp_path}/plugin"})
    assert proc.returncode == 1 and "1 run(s) failed" in proc.stderr
    results = {r["attack"]["name"]: r for r in
               (json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json"))}
    assert results["none"]["status"] == "ok"
    assert results["diverge"]["status"] == "failed" and results["diverge"]["failed_stage"] == "attack"
    assert results["diverge"]["error"].startswith("NonFiniteLoss: train: loss is nan")


@pytest.mark.parametrize("override, message", [
    ("seed=abc", "seed='abc'"),
    ("seed=-1", "seed=-1"),
    ("role=attacker", "role='attacker'"),
    ("device=tpu", "device='tpu'"),
    ("budget.max_train=0", "budget.max_train=0"),
    ("checkpoint_every=x", "checkpoint_every='x'"),
])
def test_malformed_overrides_are_one_line_errors(wrt_run, override, message):
    proc = wrt_run(override)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrt-run: error: ") and message in lines[0]
    assert "Traceback" not in proc.stderr


def test_malformed_hydra_syntax_is_reported_without_traceback(wrt_run):
    proc = wrt_run("attack.rate=[0.5")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "'[0.5'" in proc.stderr


@pytest.mark.parametrize("content", [
    '{"schema_version": 1, "status": "ok"',                        # truncated
    '{"schema_version": 1, "status": "ok", "seed": "zero"}',       # wrong types, missing fields
    '[1, 2, 3]',                                                    # not an object
    '{"schema_version": 1, "status": "ok", "source": {"test_acc": NaN}}',  # NaN
    '{"schema_version": 1, "status": "ok", "seed": 1e400}',        # huge
    '\x00\x01garbage',
    '',
])
def test_analyzer_skips_malformed_run_files(tmp_path, content):
    write(tmp_path, run_record(run_name="good", scheme="adi", scheme_params={}, attack="none",
                               attack_params={}, seed=0))
    (tmp_path / "runs" / "bad.json").write_text(content)
    warnings = []
    loaded = load_runs(tmp_path, warn=warnings.append)
    assert loaded.runs["run_name"].tolist() == ["good"] and len(loaded.skipped) == 1
    assert any("bad.json" in w for w in warnings)
