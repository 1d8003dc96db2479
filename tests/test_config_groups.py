"""The config groups are the registry: every scheme and attack config builds, every ablation value
builds, and every declared parameter (`wrt.params`) rejects a value of the wrong type, out of its
range or outside its choices with a one-line error naming the key."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from conftest import group_config, options
from wrt.attacks.base import AttackerData
from wrt.config import as_dict, build, params_of
from wrt.params import Declaration, declared
from wrt.record import CATEGORIES
from wrt.sweeper import configurations
from wrt.validation import InvalidParameter


CASES = [(g, n) for g in ("scheme", "attack") for n in options(g)]


@pytest.mark.parametrize("group, name", CASES)
def test_config_builds_and_names_itself(group, name):
    node = group_config(group, name)
    assert node.name == name, f"wrt/configs/{group}/{name}.yaml must say name: {name}"
    component = build(node)
    if group == "attack":
        assert component.category in CATEGORIES
    for point in configurations(node.get("ablation")):  # every configuration of the grid builds
        for key in point:
            assert key in params_of(node), f"{name}: ablation over unknown parameter {key}"
        build({**as_dict(node), **point})


def bad_values(d: Declaration) -> list:
    """Values `d` must reject: one of a wrong type, one beyond each bound, one outside its choices."""
    if not d.types:
        return []  # containers and configs: checked by the class's own `check()`
    bad = ["not-a-number" if str not in d.types else 12345]
    if d.types == (bool,):
        bad = ["yes", 1]
    if d.low is not None:
        bad.append(d.low if d.low_open else d.low - 1)
    if d.high is not None:
        bad.append(d.high if d.high_open else d.high + 1)
    if d.choices is not None:
        bad.append("no-such-choice" if d.types == (str,) else max(d.choices) + 1)
    return bad


@pytest.mark.parametrize("group, name", CASES)
def test_every_declared_parameter_is_validated(group, name):
    node = group_config(group, name)
    declarations = declared(type(build(node)))
    assert set(params_of(node)) <= set(declarations), f"{name}: config keys the class does not declare"
    spec = OmegaConf.to_container(node, resolve=True)
    for d in declarations.values():
        for value in bad_values(d):
            with pytest.raises(InvalidParameter, match=re.escape(f"{group}.{d.name}={value!r} is not allowed")):
                build({**spec, d.name: value})


def test_attacker_data_is_validated():
    for d in declared(AttackerData).values():
        for value in bad_values(d):
            with pytest.raises(InvalidParameter, match=re.escape(f"attacker_data.{d.name}={value!r}")):
                AttackerData(**{d.name: value})
