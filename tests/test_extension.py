"""A scheme and an attack of the user's own, outside the repository (docs/extending.md's worked example, run
from its own code blocks): found through `hydra.searchpath` and the Python path, and treated like built-in
ones by the option check, the sweep's plan, the ablation sweeper and the analyzer."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import TINY
from fixtures.user_project import user_project

from wrt.analysis.report import Options, analyze


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
                   "attack=weight_noise", *TINY, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [line for line in proc.stderr.splitlines() if "error" in line.lower()], proc.stderr
    assert "wrt-run:   2 run(s): 0 finished earlier (reused), 2 to run" in proc.stderr  # the plan counted them
    assert "wrt-run: run 2/2 computed" in proc.stderr
    analyze(Options(results_dir=str(tmp_path / "results"), figures=False, threshold_method="binomial"), out=lambda line: None)
    table = pd.read_csv(tmp_path / "results" / "analysis" / "robustness.csv")
    row = table[table["attack"] == "weight_noise"]
    assert list(row["category"]) == ["model_modification"] and "corner_trigger" in table.columns
    assert row["runs_expected"].tolist() == [2]  # the sweep's manifest lists both configurations
