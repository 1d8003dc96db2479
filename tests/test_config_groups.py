"""The config groups are the registry: every scheme and attack config builds, and every one of its
numeric or boolean parameters is validated (a value of the wrong type is a one-line error)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONFIG_DIR
from wrt.attacks.base import CATEGORIES
from wrt.pipeline import as_dict, build, params_of
from wrt.sweeper import configurations
from wrt.validation import InvalidParameter


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def group_config(group: str, name: str):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=[f"{group}={name}"])[group]


CASES = [(g, n) for g in ("scheme", "attack") for n in options(g)]


@pytest.mark.parametrize("group, name", CASES)
def test_config_builds_and_names_itself(group, name):
    node = group_config(group, name)
    assert node.name == name, f"configs/{group}/{name}.yaml must say name: {name}"
    component = build(node)
    if group == "attack":
        assert component.category in CATEGORIES
    for point in configurations(node.get("ablation")):  # every configuration of the grid builds
        for key in point:
            assert key in params_of(node), f"{name}: ablation over unknown parameter {key}"
        build({**as_dict(node), **point})


@pytest.mark.parametrize("group, name", CASES)
def test_every_scalar_parameter_is_validated(group, name):
    node = group_config(group, name)
    params = params_of(node)
    checked = [k for k, v in params.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for key in checked:
        with pytest.raises(InvalidParameter, match=key):
            build({**params, "_target_": node._target_, key: "not-a-number"})
