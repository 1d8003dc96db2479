"""Every experiment composes with the real config, sweeps only over options that exist, and\nruns (one run of its sweep at the smoke budget)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import CONFIG_DIR, ROOT, TINY, options, share_probes
from wrt.pipeline import role_of, run
from wrt.search import dimensions

EXPERIMENTS = options("experiment")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_names_existing_options(name):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
    experiment = yaml.safe_load((Path(CONFIG_DIR) / "experiment" / f"{name}.yaml").read_text())
    for key in ("results_dir", "role"):
        if key in experiment:  # the experiment's settings win over config.yaml's
            assert cfg[key] == experiment[key], f"{name}: {key} is {cfg[key]!r}"
    params = cfg.hydra.sweeper.params or {}
    if cfg.hydra.sweeper.get("custom_search_space") == "wrt.search.suggest":  # searches the attack's `search:` block
        assert dimensions(cfg.attack), f"{name}: attack {cfg.attack.name} has no search space"
    else:
        assert params, f"{name} sweeps nothing"
    for group, values in params.items():
        if (Path(CONFIG_DIR) / group).is_dir():
            missing = [v for v in str(values).split(",") if not (Path(CONFIG_DIR) / group / f"{v.strip()}.yaml").exists()]
            assert not missing, f"{name}: {group} options without a config: {missing}"
    script = ROOT / "scripts" / f"reproduce_{name}.sh"
    assert script.exists() or name == "demo_null", f"no {script.name}"


def test_experiment_files_are_global_packages():
    for name in EXPERIMENTS:
        text = (Path(CONFIG_DIR) / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_"), name
        yaml.safe_load(text)


# a run of each experiment at the smoke budget on 600 training images: every run shares one store,
# so its source models (seeds 0 and 1: null runs measure seed 0's key on seed 1's model) train once
# transfer learning pre-trains on 214 × 100 glyphs for 30 epochs (minutes on a CPU): 2 × 1 here
CHEAP = {"transfer_learning": ["attack.pretrain_per_class=2", "attack.pretrain_epochs=1"],
         "tl_label_smoothing": ["attack.steps.0.pretrain_per_class=2", "attack.steps.0.pretrain_epochs=1"]}


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory, suite_probes):
    store = tmp_path_factory.mktemp("store")
    share_probes(store, suite_probes)
    return store


def first_of_sweep(name: str) -> list[str]:
    """The first value of each parameter `experiment=name` sweeps, as overrides: one run of it."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
    parser = OverridesParser.create()
    sweep = parser.parse_overrides([f"{key}={value}" for key, value in (cfg.hydra.sweeper.params or {}).items()])
    return [f"{o.key_or_group}={next(iter(o.sweep_string_iterator()))}" for o in sweep]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_its_first_scheme_and_attack(name, shared_store, tmp_path, fmnist_full):
    chosen = first_of_sweep(name)
    attack = dict(o.split("=", 1) for o in chosen).get("attack")
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}", *chosen, *TINY, "progress=false", *CHEAP.get(attack, []),
                                           f"results_dir={tmp_path}", f"store_dir={shared_store}"])
    result, path = run(cfg)
    assert result["status"] == "ok", (chosen, result.get("error"))
    assert path.parent == tmp_path / "runs" and result["role"] == role_of(cfg)
    assert (result["scheme"]["name"], result["attack"]["name"]) == (cfg.scheme.name, cfg.attack.name)


SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("reproduce_*.sh"))


# scripts that sweep every scheme plan two of them here (a trigger-set scheme and the active one)
TWO_SCHEMES = {"reproduce_table5.sh": ["scheme=adi,dawn"], "reproduce_thresholds.sh": ["scheme=adi,dawn"],
               "reproduce_dominant.sh": ["scheme=adi,dawn"]}


@pytest.mark.parametrize("script", SCRIPTS)
def test_reproduce_script_plans_its_sweeps_into_the_given_folder(script, shared_store, tmp_path, fmnist_full):
    """Each script with RESULTS=<tmp> and cheap extra arguments (dry_run=true, budget=smoke, one seed, two
    schemes where a script sweeps all: `TWO_SCHEMES`, and the Table V campaign's SCHEMES=adi dawn; the
    best-response searches with 3 trials): every sweep's plan, then one total instead of the analysis
    (nothing ran)."""
    root = ROOT
    proc = subprocess.run(["bash", str(root / "scripts" / script), "dry_run=true", "budget=smoke", "seed=0",
                           f"store_dir={shared_store}", *TWO_SCHEMES.get(script, [])],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "RESULTS": str(tmp_path / "results"), "SCHEMES": "adi dawn", "TRIALS": "3"},
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    plans = re.findall(r"wrt-run:   (\d+) run\(s\): \d+ finished earlier \(reused\), (\d+) to run", proc.stdout)
    total = re.fullmatch(r"total: (\d+) run\(s\) in (\d+) sweep\(s\), (\d+) to run \(dry run: no analysis\)",
                         proc.stdout.splitlines()[-1])
    assert plans and total, proc.stdout[-2000:]
    assert [int(x) for x in total.groups()] == [sum(int(n) for n, _ in plans), len(plans),
                                                sum(int(m) for _, m in plans)]
    estimates = [(int(wall_s), float(core)) for wall_s, core in
                 re.findall(r"wrt-run:   estimate: about .* wall time \((\d+) s\), ([\d.]+) core-hours", proc.stdout)]
    if int(total.group(3)):  # what is to run has an estimate, summed over the sweeps
        summed = re.fullmatch(r"estimate: about ([\d.]+) h wall time, ([\d.]+) core-hours in all \(.*\)",
                              proc.stdout.splitlines()[-2])
        assert summed and estimates
        assert float(summed.group(1)) == pytest.approx(sum(wall for wall, _ in estimates) / 3600, abs=0.05)
        assert float(summed.group(2)) == pytest.approx(sum(core for _, core in estimates), abs=0.01)
    assert (tmp_path / "results").is_dir() and not (tmp_path / "results" / "analysis").exists()
    assert not list((tmp_path / "results").rglob("*.json"))  # a plan runs nothing
