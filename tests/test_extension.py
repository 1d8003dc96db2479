"""A scheme and an attack of the user's own, outside the repository (docs/extending.md's worked example, run
from its own code blocks): found through `hydra.searchpath` and the Python path, and treated like built-in
ones by the option check, the sweep's plan, the ablation sweeper and the analyzer."""

from __future__ import annotations

import os
import re

import pandas as pd
import pytest
from conftest import ROOT

from wrt.analysis.report import Options, analyze


def user_project(folder):
    """docs/extending.md's example project written into `folder`: each code block whose first line is a
    `# mywrt/...` or `# conf/...` path comment becomes that file. Returns wrt-run's extra arguments and env."""
    text = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:python|yaml)\n# ((?:mywrt|conf)/\S+)\n(.*?)```", text, re.S)
    assert sorted(path for path, _ in blocks) == ["conf/attack/weight_noise.yaml", "conf/scheme/corner_trigger.yaml",
                                                  "mywrt/corner_trigger.py", "mywrt/weight_noise.py"]
    for path, body in blocks:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(body, encoding="utf-8")
    (folder / "mywrt" / "__init__.py").touch()
    env = {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    return [f"hydra.searchpath=[file://{folder / 'conf'}]"], env


def test_option_check_reads_the_search_path(wrt_run, tmp_path):
    search, env = user_project(tmp_path / "myproject")
    proc = wrt_run(*search, "attack=weight_nois", "scheme=corner_trigger", env=env)
    assert proc.returncode != 0
    assert proc.stderr.splitlines()[0] == ("wrt-run: error: no attack 'weight_nois' in wrt/configs/attack/ or "
                                           "hydra.searchpath; did you mean 'weight_noise'?")
    assert "scheme" not in proc.stderr.splitlines()[1]  # corner_trigger is found: no line for it


@pytest.mark.slow  # about 50 s on 2 busy cores: a source model, one embedding, two attack configurations
def test_a_users_scheme_and_attack_sweep_and_reach_table_v(wrt_run, tmp_path, fmnist_full):
    """The ablation sweeper expands the user attack's `ablation:` grid (two configurations)."""
    search, env = user_project(tmp_path / "myproject")
    proc = wrt_run("-m", *search, "hydra/sweeper=ablation", "scheme=corner_trigger", "scheme.key_size=20",
                   "attack=weight_noise", "budget=smoke", "budget.max_train=600", "budget.max_test=200", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [line for line in proc.stderr.splitlines() if "error" in line.lower()], proc.stderr
    assert "wrt-run:   2 run(s): 0 finished earlier (reused), 2 to run" in proc.stderr  # the plan counted them
    assert "wrt-run: run 2/2 computed" in proc.stderr
    analyze(Options(results_dir=str(tmp_path / "results"), threshold_method="binomial"), out=lambda line: None)
    table = pd.read_csv(tmp_path / "results" / "analysis" / "robustness.csv")
    row = table[table["attack"] == "weight_noise"]
    assert list(row["category"]) == ["model_modification"] and "corner_trigger" in table.columns
    assert row["runs_expected"].tolist() == [2]  # the sweep's manifest lists both configurations
