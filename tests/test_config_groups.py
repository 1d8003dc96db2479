"""The config groups are the registry: every scheme and attack config builds, and every one of its
numeric or boolean parameters is validated (a value of the wrong type is a one-line error)."""

from __future__ import annotations

import pytest

from conftest import group_config, options
from wrt.attacks.base import CATEGORIES
from wrt.pipeline import build, params_of
from wrt.validation import InvalidParameter


CASES = [(g, n) for g in ("scheme", "attack") for n in options(g)]


@pytest.mark.parametrize("group, name", CASES)
def test_config_builds_and_names_itself(group, name):
    node = group_config(group, name)
    assert node.name == name, f"configs/{group}/{name}.yaml must say name: {name}"
    component = build(node)
    if group == "attack":
        assert component.category in CATEGORIES
    for key, values in (node.get("ablation") or {}).items():
        assert key in params_of(node), f"{name}: ablation over unknown parameter {key}"
        for value in values:
            build({**params_of(node), "_target_": node._target_, key: value})


@pytest.mark.parametrize("group, name", CASES)
def test_every_scalar_parameter_is_validated(group, name):
    node = group_config(group, name)
    params = params_of(node)
    checked = [k for k, v in params.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for key in checked:
        with pytest.raises(InvalidParameter, match=key):
            build({**params, "_target_": node._target_, key: "not-a-number"})
