"""Every experiment composes with the real config and sweeps only over options that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from conftest import CONFIG_DIR

EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_names_existing_options(name):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={name}"], return_hydra_config=True)
    experiment = yaml.safe_load((Path(CONFIG_DIR) / "experiment" / f"{name}.yaml").read_text())
    for key in ("results_dir", "role"):
        if key in experiment:  # the experiment's settings win over config.yaml's
            assert cfg[key] == experiment[key], f"{name}: {key} is {cfg[key]!r}"
    params = cfg.hydra.sweeper.params
    assert params, f"{name} sweeps nothing"
    for group, values in params.items():
        if (Path(CONFIG_DIR) / group).is_dir():
            missing = [v for v in str(values).split(",") if not (Path(CONFIG_DIR) / group / f"{v.strip()}.yaml").exists()]
            assert not missing, f"{name}: {group} options without a config: {missing}"
    script = Path(CONFIG_DIR).parent / "scripts" / f"reproduce_{name}.sh"
    assert script.exists() or name == "demo_null", f"no {script.name}"


def test_experiment_files_are_global_packages():
    for name in EXPERIMENTS:
        text = (Path(CONFIG_DIR) / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_"), name
        yaml.safe_load(text)
