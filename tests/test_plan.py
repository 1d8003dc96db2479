"""The plan's estimate (wrt/plan.py, `dry_run=true`): stage costs from earlier run JSONs where any exist,
key draws counted and bounded, the attacks' extra phases counted, core-hours and wall hours per launcher
(#29 "A plan you can budget by", #25 finding 7)."""

from __future__ import annotations

import pytest
from hydra.utils import get_class

from fixtures.analysis_runs import run_record, write
from wrt.hardware import timed_rates
from wrt.plan import make_plan

SMOKE = ("budget=smoke", "device=cpu")


def earlier_run(results_dir, name, *, scheme="adi", attack="weight_pruning", role="marked", status="ok",
                attack_s=5.0, evaluate_s=1.0, null=None, cpu_s=None, threads=1):
    record = run_record(run_name=name, scheme="adi", scheme_params={}, attack=attack, attack_params={},
                        seed=7, role=role, status=status, budget="smoke")
    record["timing_s"].update(attack=attack_s, evaluate=evaluate_s)
    record["cpu_threads"] = threads
    if cpu_s is not None:
        record["cpu_s"] = cpu_s
    record["scheme"]["name"] = scheme
    if null is not None:
        record["null"] = null
    write(results_dir, record)


def null_draws(keys: int, keygen_s: float, extract_s: float) -> dict:
    return {"keys": keys, "wm_accs": [0.1] * keys, "keygen_time_s": keygen_s, "extract_time_s": extract_s}


def test_the_estimate_takes_stage_costs_from_earlier_runs(compose_cfg, tmp_path, monkeypatch):
    cfg = compose_cfg(*SMOKE, "scheme=adi", "attack=weight_pruning")

    def keygen_fails(*args):  # as frontier stitching's can on an untrained model
        raise ValueError("no adversarial examples")

    monkeypatch.setattr(get_class(cfg.scheme._target_), "keygen", keygen_fails)
    without = make_plan([cfg])
    assert without.stage_s["attack"] == 0 and without.from_history == 0  # pruning trains nothing
    assert without.stage_s["keygen"] == 0 and list(without.untimed) == ["adi"]
    assert [line for line in without.lines() if "not counted: the key draws of adi" in line]
    # 3 test-set evaluations (source, marked, attacked model); a second run on the same models adds only its own
    both = make_plan([cfg, compose_cfg(*SMOKE, "scheme=adi", "attack=none")])
    assert both.stage_s["evaluate"] == pytest.approx(without.stage_s["evaluate"] * 4 / 3)
    results = tmp_path / "results"
    earlier_run(results, "a", attack_s=1000.0, evaluate_s=30.0)
    earlier_run(results, "b", attack_s=3000.0, evaluate_s=50.0)
    earlier_run(results, "c", attack_s=99999.0, evaluate_s=99999.0, status="failed")  # not a cost
    earlier_run(results, "d", attack="input_smoothing", attack_s=7.0, evaluate_s=40.0)  # another attack
    (results / "runs" / "corrupt.json").write_text("{")
    plan = make_plan([cfg, cfg], n_jobs=2)  # the second is the same run: its stored models are counted once
    assert plan.stage_s["attack"] == pytest.approx(2 * 2000.0)
    assert plan.stage_s["evaluate"] == pytest.approx(2 * 40.0)
    assert plan.from_history == 4
    assert plan.sources == 1 and plan.embeddings == 1 and plan.key_draws == 1
    assert plan.estimate_s == pytest.approx(sum(plan.stage_s.values()))
    assert plan.wall_s == pytest.approx(plan.estimate_s / 2)
    assert plan.core_hours == pytest.approx(plan.estimate_s * plan.threads / 3600)
    estimate = [line for line in plan.lines() if line.startswith("estimate:")]
    assert len(estimate) == 1 and "core-hours" in estimate[0] and "2 job(s)" in estimate[0]


def test_earlier_runs_count_by_their_cpu_seconds_per_thread_where_recorded(tmp_path):
    """A run paused or crowded for half its wall time: its CPU seconds per thread are the stage's cost."""
    from wrt.plan import History

    earlier_run(tmp_path, "crowded", attack_s=1000.0, evaluate_s=80.0, threads=2,
                cpu_s={"attack": 600.0, "evaluate": 40.0, "total": 640.0})
    earlier_run(tmp_path, "older", attack="input_smoothing", attack_s=70.0, evaluate_s=8.0)
    history = History.read(tmp_path)
    assert history.attack[("weight_pruning", "fashion_mnist", "small_cnn", "smoke")] == [300.0]
    assert history.evaluate[("adi", "fashion_mnist", "small_cnn", "smoke")] == [20.0, 8.0]
    assert history.attack[("input_smoothing", "fashion_mnist", "small_cnn", "smoke")] == [70.0]


def test_null_key_draws_are_counted_and_bounded(compose_cfg, tmp_path):
    results = tmp_path / "results"
    earlier_run(results, "adi_null", role="null", attack="none", null=null_draws(11, 50.0, 10.0))  # 6 s a draw
    earlier_run(results, "fs_null", scheme="frontier_stitching", role="null", attack="none",
                null=null_draws(5, 40.0, 8.0))  # 12 s a draw
    adi = make_plan([compose_cfg(*SMOKE, "scheme=adi", "attack=none", "role=null", "null_keys=101")])
    assert adi.key_draws == 101 and adi.stage_s["keygen"] == pytest.approx(101 * 6.0)
    # frontier stitching's keygen is costly: its max_null_keys (10) caps the draws
    fs = make_plan([compose_cfg(*SMOKE, "scheme=frontier_stitching", "attack=none", "role=null", "null_keys=100")])
    assert fs.key_draws == 10 and fs.stage_s["keygen"] == pytest.approx(10 * 12.0)
    unbounded = make_plan([compose_cfg(*SMOKE, "scheme=adi", "attack=none", "role=null", "null_keys=1000000")])
    assert unbounded.to_run == 0 and len(unbounded.invalid) == 1
    assert unbounded.invalid[0].startswith("null_keys=1000000 is not allowed: must be an integer in [1, 1000]")


def test_the_estimate_counts_reverse_engineering_and_pre_training(compose_cfg):
    cfgs = [compose_cfg(*SMOKE, "scheme=adi", f"attack={attack}") for attack in ("neural_cleanse", "transfer_learning")]
    plan = make_plan(cfgs)
    (speed,) = plan.throughput.values()
    scale = cfgs[0].budget.trainer.epoch_scale
    epochs = lambda e: max(1, round(e * scale))  # noqa: E731  the budget's scaled epochs
    attacker = 1000  # budget=smoke: a third of 3,000 images
    nc, tl = cfgs[0].attack, cfgs[1].attack
    expected = (attacker * epochs(nc.epochs) + 10 * min(nc.reverse_samples, attacker) * epochs(nc.reverse_epochs)
                + attacker * epochs(tl.epochs) + max(1, round(tl.freeze_batches * scale)) * 128
                + 214 * tl.pretrain_per_class * epochs(tl.pretrain_epochs))
    assert plan.stage_s["attack"] * speed == pytest.approx(expected, rel=1e-6)


def test_timed_rates_warms_up_before_timing():
    calls = []
    rates = timed_rates(lambda: calls.append(1), 10.0, warmup=2, repeats=3, min_s=0.0)
    assert len(calls) == 5 and len(rates) == 3 and all(rate > 0 for rate in rates)


def test_probes_are_kept_in_the_store_and_measured_again_when_forced(compose_cfg, tmp_path, monkeypatch):
    """A second plan reuses the first one's throughput and keygen probes (`wrt.plan.cached_probe`), so two
    plans a minute apart agree; `force=true` and a probe older than a day measure again; a corrupt probe
    file is measured over."""
    import json
    import time

    import wrt.plan

    timings = iter([100.0, 200.0, 300.0, 400.0])
    monkeypatch.setattr(wrt.plan, "measure_throughput", lambda run: next(timings))
    cfg = compose_cfg(*SMOKE, "scheme=adi", "attack=weight_pruning")
    first, second = make_plan([cfg]), make_plan([cfg])
    assert first.probes_reused == 0 and second.probes_reused == 2  # the throughput and adi's keygen
    assert list(first.throughput.values()) == list(second.throughput.values()) == [100.0]
    assert "2 probe(s) reused from the store" in second.lines()[-1]
    assert list(make_plan([compose_cfg(*SMOKE, "scheme=adi", "attack=weight_pruning", "force=true")]).throughput.values()) == [200.0]
    probes = sorted((tmp_path / "store" / "probes").glob("*.json"))
    assert len(probes) == 2
    for path in probes:  # a day later
        kept = json.loads(path.read_text())
        path.write_text(json.dumps({**kept, "measured": time.time() - wrt.plan.PROBE_MAX_AGE_S - 1}))
    assert list(make_plan([cfg]).throughput.values()) == [300.0]
    for path in probes:
        path.write_text("{")
    assert list(make_plan([cfg]).throughput.values()) == [400.0]


def test_a_sweeps_plan_composes_once_per_group_choice_and_gets_the_same_configs():
    """`job_composer` (the plan's composition of a sweep's jobs): value overrides go onto a copy of the
    composition of the job's group choices; what is not a value of the composed config is composed."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from wrt import CONFIG_DIR
    from wrt.sweeper import job_composer

    jobs = [[f"scheme={scheme}", "attack=weight_pruning", f"attack.rate={rate}", f"seed={seed}"]
            for scheme in ("adi", "uchida") for rate in (0.5, 0.9) for seed in (0, 1)]
    jobs += [["scheme=adi", "attack=weight_pruning", "+attack.extra=1"], ["scheme=adi", "attack=ftal", "seed=3"]]
    composed = []
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        composer = job_composer(lambda job: composed.append(job) or compose("config", overrides=job))
        planned = [OmegaConf.to_container(composer(job)) for job in jobs]
        direct = [OmegaConf.to_container(compose("config", overrides=job)) for job in jobs]
    assert planned == direct
    assert planned[1]["seed"] == 1 and planned[2]["attack"]["rate"] == 0.9 and planned[8]["attack"]["extra"] == 1
    # the first job whole (which keys hold values), each scheme's choices, the `+` job, ftal's choices
    assert len(composed) == 5 and ["scheme=uchida", "attack=weight_pruning"] in composed
