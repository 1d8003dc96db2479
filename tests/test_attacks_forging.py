"""The forging (ambiguity) attack: counterfeit keys made for a stolen model without data."""

from __future__ import annotations

import copy

import pytest

from wrt.attacks.forging import Forging, claim_level
from wrt.config import build
from wrt.schemes.base import NoWatermark
from wrt.train import Trainer
from wrt.validation import InvalidParameter

from conftest import group_config, make_ctx, options


def scheme(name: str):
    return build(group_config("scheme", name))


@pytest.fixture(scope="module")
def small(fmnist):
    return fmnist.subset(600, 200, seed=2)


def forge(scheme_obj, model, data, attempts: int):
    trainer = Trainer(batch_size=256, progress=False, seed=0)
    ctx = make_ctx(data, trainer, scheme=scheme_obj)
    surrogate = Forging(attempts=attempts)(model, ctx)
    assert surrogate is model  # the stolen model itself is claimed, unchanged
    return ctx.result


def test_claim_levels_are_binomial_tails():
    assert claim_level(100, 0.1, 0.05) == pytest.approx(0.16)  # P[X ≥ 16] = 0.040 ≤ 0.05 < P[X ≥ 15]
    assert 0.5 < claim_level(256, 0.5, 0.05) < 0.56
    assert claim_level(3, 0.5, 0.05) == 1.0  # too short a key: even all matches are likely


# every scheme whose key is not bound to its owner, except those tested on their own below:
# deepmarks (a codebook), greedy_residuals (a signature) and none (no key)
UNBOUND = [name for name in options("scheme") if name not in ("deepmarks", "greedy_residuals", "none")]


@pytest.mark.parametrize("name", UNBOUND)
def test_unbound_keys_can_be_counterfeited(name, small, fmnist_source):
    result = forge(scheme(name), copy.deepcopy(fmnist_source), small, attempts=3)
    assert result["applicable"] and result["false_claim"] and result["verified"] == 3


def test_deepmarks_codebook_only_admits_code_vectors(small, fmnist_source):
    """A DeepMarks claim must be a user's code vector: the closest one to the bits the model
    shows usually, but not always, clears the level."""
    result = forge(scheme("deepmarks"), copy.deepcopy(fmnist_source), small, attempts=10)
    assert result["false_claim"] and 1 <= result["verified"] <= 10
    assert result["claim_level"] <= result["best_wm_acc"] < 1.0


def test_signature_bound_greedy_residuals_resists_200_forged_signatures(small, fmnist_source):
    result = forge(scheme("greedy_residuals"), copy.deepcopy(fmnist_source), small, attempts=200)
    assert result["claim_level"] == 1.0 and result["key_size"] == 256
    assert result["verified"] == 0 and not result["false_claim"]
    assert 0.3 < result["mean_wm_acc"] < 0.7  # forged bits match the residuals' signs by chance


def test_schemes_without_a_key_are_not_applicable(small, fmnist_source):
    result = forge(NoWatermark(), fmnist_source, small, attempts=5)
    assert result == {"applicable": False, "reason": "NoWatermark has no counterfeit-key strategy"}


def test_bad_parameters_are_named():
    with pytest.raises(InvalidParameter, match="attack.attempts"):
        Forging(attempts=0)
    with pytest.raises(InvalidParameter, match="attack.p"):
        Forging(p=1.0)
