"""The configuration game's sweep (wrt/sweeper.py, `hydra/sweeper=ablation`): grids from the configs'
`ablation:` entries, expanded per job; the sweep plan counts the expanded jobs; a tiny real sweep."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONFIG_DIR, TINY
from wrt.config import ablated_of
from wrt.pipeline import run_name
from wrt.analysis.grid import read_manifests
from wrt.sweeper import (Options, apply_overrides, configuration_overrides, configurations, hydra_value,
                         write_manifests)
from wrt.validation import InvalidParameter

UCHIDA = OmegaConf.create({"name": "uchida", "_target_": "x", "lam": 0.1, "lr": 0.01,
                           "ablation": {"lam": [0.1, 1, 10]}})
SMOOTHING = OmegaConf.create({"name": "input_smoothing", "_target_": "x", "kernel": "median", "sigma": 0.3,
                              "ablation": [{"kernel": "mean"}, {"kernel": "median"},
                                           {"kernel": "gaussian", "sigma": 0.1}, {"kernel": "gaussian", "sigma": 0.3}]})
TABLE5 = OmegaConf.load(f"{CONFIG_DIR}/experiment/table5.yaml")
THRESHOLDS = OmegaConf.load(f"{CONFIG_DIR}/experiment/thresholds.yaml")
EXTRACTION = ["knockoff_nets", "retraining", "smooth_retraining", "cross_architecture_retraining",
              "transfer_learning"]


def test_both_grid_forms():
    assert configurations({"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    assert configurations([{"kernel": "mean"}, {"kernel": "gaussian", "sigma": 0.1}]) == [
        {"kernel": "mean"}, {"kernel": "gaussian", "sigma": 0.1}]
    assert configurations(None) == configurations({}) == configurations([]) == [{}]
    assert ablated_of(SMOOTHING) == ["kernel", "sigma"] and ablated_of(UCHIDA) == ["lam"]
    with pytest.raises(InvalidParameter, match="ablation.lam=0.1 is not allowed: must be a non-empty list"):
        configurations({"lam": 0.1})
    with pytest.raises(InvalidParameter, match="must be a mapping of lists"):
        configurations(["mean", "median"])


def test_a_configuration_equal_to_the_config_runs_as_the_job_itself():
    assert Options().grid(UCHIDA, "scheme", set()) == [{}, {"lam": 1}, {"lam": 10}]
    # median keeps σ = 0.3: the config itself; gaussian with σ = 0.3 differs in the kernel only
    assert Options().grid(SMOOTHING, "attack", set()) == [
        {"kernel": "mean"}, {}, {"kernel": "gaussian", "sigma": 0.1}, {"kernel": "gaussian"}]
    node = OmegaConf.merge(UCHIDA, {"lam": 1.0, "ablation": {"lam": [1, 1.0, 10], "lr": [0.01]}})
    assert Options().grid(node, "scheme", set()) == [{}, {"lam": 10}]  # 1 == 1.0, lr at its value


def test_options_restrict_the_grids():
    assert Options(ablate=("attack",)).grid(UCHIDA, "scheme", set()) == [{}]
    job = OmegaConf.create({"scheme": UCHIDA, "attack": SMOOTHING})
    assert len(configuration_overrides(job, [], Options())) == 3 * 4
    assert len(configuration_overrides(job, [], Options(ablate=("scheme",)))) == 3
    assert configuration_overrides(job, [], Options(defaults_only=("input_smoothing",))) == [[]]
    assert configuration_overrides(job, [], Options(defaults_only=("uchida",))) == [[]]
    assert Options().grid(UCHIDA, "scheme", {"lam"}) == [{}]  # the job's own scheme.lam=... wins
    selected = Options(select={"input_smoothing": {"kernel": "gaussian"}}).grid(SMOOTHING, "attack", set())
    assert selected == [{"kernel": "gaussian", "sigma": 0.1}, {"kernel": "gaussian"}]
    with pytest.raises(InvalidParameter, match="hydra.sweeper.select.input_smoothing"):
        Options(select={"input_smoothing": {"kernel": "box"}}).grid(SMOOTHING, "attack", set())
    with pytest.raises(InvalidParameter, match="hydra.sweeper.ablate"):
        Options.of(ablate=["schemes"])
    with pytest.raises(InvalidParameter, match="a parameter of scheme uchida"):
        Options().grid(OmegaConf.merge(UCHIDA, {"ablation": {"gamma": [1]}}), "scheme", set())


@pytest.mark.parametrize("value", [0.1, 1, 1e-05, True, None, "gaussian", "null", "a b", [3, 4], "features.fc1"])
def test_override_values_parse_back(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (override,) = OverridesParser.create().parse_overrides([f"scheme.x={hydra_value(value)}"])
    assert override.value() == value and type(override.value()) is type(value)


def composed(*overrides):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def sweep_options(experiment, *extra) -> Options:
    sweeper = OmegaConf.merge(OmegaConf.load(f"{CONFIG_DIR}/hydra/sweeper/ablation.yaml"),
                              experiment.hydra.sweeper, *extra)
    return Options.from_sweeper(sweeper)


def grid_sizes(experiment, group, options) -> dict[str, int]:
    names = experiment.hydra.sweeper.params[group].split(",")
    return {n: len(options.grid(composed("experiment=table5", f"{group}={n}")[group], group, set())) for n in names}


def test_table5_game_size():
    """29 scheme configs × 18 attack configs; with the extraction attacks' jobs at their defaults
    29 × 13 + 13 × 5."""
    options = sweep_options(TABLE5)
    schemes, attacks = grid_sizes(TABLE5, "scheme", options), grid_sizes(TABLE5, "attack", options)
    assert sum(schemes.values()) == 29 and schemes["uchida"] == 3 and schemes["noise"] == 4
    assert attacks == {"input_smoothing": 3, "regularization": 2, "neural_cleanse": 3, "feature_permutation": 1,
                       "weight_shifting": 4, **dict.fromkeys(EXTRACTION, 1)}
    assert sum(schemes.values()) * sum(attacks.values()) == 522
    restricted = sweep_options(TABLE5, {"defaults_only": EXTRACTION})
    cfg = composed("experiment=table5", "scheme=uchida", "attack=retraining")
    assert configuration_overrides(cfg, [], restricted) == [[]] and len(configuration_overrides(cfg, [], options)) == 3
    assert sweep_options(THRESHOLDS).ablate == ("scheme", "attack")  # null runs for every scheme config


def test_thresholds_measure_every_configuration_of_the_max_over_configs_schemes():
    """θ of content, noise, frontier stitching and blackmarks is the largest over their configurations
    (wrt.analysis.thresholds.MAX_OVER_CONFIGS): experiment=thresholds makes null runs of each one."""
    options = sweep_options(THRESHOLDS)
    for scheme, size in {"content": 2, "noise": 4, "frontier_stitching": 2, "blackmarks": 3}.items():
        cfg = composed("experiment=thresholds", f"scheme={scheme}")
        assert len(configuration_overrides(cfg, [], options)) == size


def test_derived_configs_equal_composed_ones():
    """The plan derives each configuration's config from its job's; the run must get the same run name."""
    job = ["scheme=uchida", "attack=input_smoothing", "budget=smoke"]
    cfg = composed(*job)
    extras = configuration_overrides(cfg, job, Options())
    own = 5 + 1  # λ ∈ {0.1, 1, 10} × 5 kernels: the job itself is uchida's default λ = 1 with the median kernel
    assert len(extras) == 3 * 5 and extras[own] == [] and ["scheme.lam=10", "attack.kernel=mean"] in extras
    for extra in (extras[own], extras[-1], ["scheme.lam=10", "attack.kernel=mean"]):
        derived = apply_overrides(cfg, extra)
        assert run_name(derived) == run_name(composed(*job, *extra))
    assert len({run_name(apply_overrides(cfg, extra)) for extra in extras}) == len(extras)


def test_the_manifest_lists_each_planned_run_once_and_each_plan_adds_its_own_file(compose_cfg, tmp_path):
    cfgs = [compose_cfg("scheme=uchida", f"scheme.lam={lam}", "attack=input_smoothing", f"seed={seed}")
            for lam in (0.1, 1) for seed in (0, 1)]
    [path] = write_manifests(cfgs + cfgs[:1])  # a run planned twice is listed once
    assert path.parent == tmp_path / "results" / "manifests" and path.suffix == ".json"
    planned = read_manifests(tmp_path / "results", warn=pytest.fail)
    assert sorted(e["run_name"] for e in planned) == sorted(run_name(cfg) for cfg in cfgs)
    entry = next(e for e in planned if e["run_name"] == run_name(cfgs[-1]))
    assert (entry["seed"], entry["role"], entry["scheme"]["params"]["lam"], entry["scheme"]["ablated"],
            entry["attack"]["category"]) == (1, "marked", 1, ablated_of(cfgs[-1].scheme), "input_preprocessing")
    assert write_manifests(cfgs) == [path]  # the same plan: the same file
    write_manifests(cfgs[:1])  # another sweep into the folder adds its own manifest
    assert len(list(path.parent.glob("*.json"))) == 2


@pytest.mark.slow  # about 30 s of CPU: a source model, 2 embeddings, 4 runs
def test_tiny_expanded_sweep_plans_and_runs_every_configuration(wrt_run, tmp_path, fmnist_full):
    sweep = ("-m", *TINY, "scheme=uchida",
             "attack=input_smoothing", "hydra/sweeper=ablation",
             "hydra.sweeper.select={uchida:{lam:[0.1,1]},input_smoothing:{kernel:[median,gaussian],sigma:0.5}}")
    plan = wrt_run(*sweep, "dry_run=true")
    assert plan.returncode == 0 and "4 run(s): 0 finished earlier (reused), 4 to run" in plan.stdout, plan.stderr
    assert "2 embedding(s)" in plan.stdout
    assert not (tmp_path / "results" / "manifests").exists()  # a dry run plans nothing to expect
    proc = wrt_run(*sweep)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrt-run: run 4/4 " in proc.stderr
    runs = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    configs = {(r["scheme"]["params"]["lam"], r["attack"]["params"]["kernel"]) for r in runs}
    assert configs == {(0.1, "median"), (0.1, "gaussian"), (1, "median"), (1, "gaussian")}
    assert all(r["attack"]["ablated"] == ["kernel", "sigma"] for r in runs)
    # the manifest (the runs a Table V cell expects) names exactly the runs the sweep made, as they record them
    manifests = list((tmp_path / "results" / "manifests").glob("*.json"))
    assert len(manifests) == 1
    planned = {e["run_name"]: e for e in json.loads(manifests[0].read_text())["runs"]}
    assert planned.keys() == {r["run_name"] for r in runs}
    for r in runs:
        entry = planned[r["run_name"]]
        assert (entry["scheme"]["params"], entry["attack"]["params"], entry["attack"]["category"], entry["seed"]) \
            == (r["scheme"]["params"], r["attack"]["params"], r["attack"]["category"], r["seed"])

    # a resumed sweep launches only the missing runs; the finished ones are reported as reused
    wider = (*sweep[:-1],
             "hydra.sweeper.select={uchida:{lam:[0.1,1]},input_smoothing:{kernel:[median,gaussian,mean],sigma:0.5}}")
    again = wrt_run(*wider)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("reused (finished earlier, not launched;") == 4
    assert "6 run(s), 2 computed, 4 reused, 0 failed" in again.stderr
    [folder] = [f for f in (tmp_path / "results" / "hydra").glob("multirun_*") if (f / "progress.txt").exists()
                and "runs 6" in (f / "progress.txt").read_text()]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["0", "1"]  # two jobs launched
    printed = {line for line in again.stdout.splitlines() if line.endswith(".json")}  # each run's JSON path
    assert {str(p) for p in (tmp_path / "results" / "runs").glob("*.json")} == printed
