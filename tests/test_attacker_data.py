"""The attacker's data budget (`attacker_data`): how much data an attack draws, from which
domain and with whose labels, and that the run JSON records it."""

from __future__ import annotations

import copy
import json
from functools import partial

import pytest
import torch

from wrt.attacks.base import AttackerData
from wrt.attacks.extraction import Retraining
from wrt.attacks.finetuning import FineTuning
from wrt.attacks.pruning import WeightPruning
from wrt.attacks.toolkit import attacker_data
from wrt.models import LeNet
from wrt.validation import InvalidParameter

from conftest import make_ctx


@pytest.fixture(scope="module")
def small(fmnist):
    return fmnist.subset(900, 300, seed=1)


# one epoch of SGD at batch size 64; attacks that train from scratch build a LeNet (seed 1)
lenet_ctx = partial(make_ctx, trainer={"optimizer": partial(torch.optim.SGD, lr=0.05, momentum=0.9)},
                    model=LeNet, model_seed=1)


@pytest.mark.parametrize("budget, bad", [({"fraction": 0}, "attacker_data.fraction"),
                                         ({"fraction": 1.5}, "attacker_data.fraction"),
                                         ({"count": 0}, "attacker_data.count"),
                                         ({"labels": "oracle"}, "attacker_data.labels"),
                                         ({"domain": "web"}, "attacker_data.domain")])
def test_bad_budgets_are_rejected_by_name(budget, bad):
    with pytest.raises(InvalidParameter, match=bad):
        AttackerData(**budget)


def test_fraction_and_count_set_how_many_images_are_drawn(small, fmnist_source):
    attacker_third = len(small.attacker()[1])
    ctx = lenet_ctx(small, fraction=0.2)
    images, labels = attacker_data(ctx, fmnist_source, "ground_truth")
    assert len(images) == len(labels) == round(0.2 * attacker_third)
    assert ctx.usage["labeled_samples"] == len(labels) and ctx.usage["queries"] == 0
    assert ctx.record() == {"fraction": 0.2, "count": None, "labels": "protocol", "domain": "in",
                            "images": len(labels)}
    ctx = lenet_ctx(small, fraction=0.2, count=17)  # count overrides fraction
    assert len(attacker_data(ctx, fmnist_source, "ground_truth")[0]) == 17


def test_queried_labels_replace_ground_truth(small, fmnist_source):
    ctx = lenet_ctx(small, labels="queried")
    images, labels = attacker_data(ctx, fmnist_source, "ground_truth")
    assert ctx.usage["queries"] == len(images) and ctx.usage["labeled_samples"] == 0
    assert torch.equal(labels, ctx.trainer.predict(fmnist_source, images).argmax(1))


def test_ground_truth_labels_replace_queries_in_extraction(small, fmnist_source):
    ctx = lenet_ctx(small, labels="ground_truth", count=200)
    surrogate = Retraining()(copy.deepcopy(fmnist_source), ctx)
    assert isinstance(surrogate, LeNet)
    assert ctx.usage == {"queries": 0, "labeled_samples": 200, "unlabeled_samples": 0}


def test_other_domain_images_are_glyphs_labelled_by_the_victim(small, fmnist_source):
    ctx = lenet_ctx(small, domain="out", count=50)
    images, labels = attacker_data(ctx, fmnist_source, "ground_truth")
    in_domain = small.attacker()[0]
    assert images.shape[1:] == in_domain.shape[1:] and images.dtype == torch.uint8 and len(images) == 50
    # rendered glyphs are not Fashion-MNIST images
    assert not any(torch.equal(images[0], x) for x in in_domain)
    assert ctx.usage["queries"] == 50
    with pytest.raises(InvalidParameter, match="attacker_data.labels"):
        AttackerData(domain="out", labels="ground_truth")


def test_no_data_allows_only_data_free_attacks(small, fmnist_source):
    ctx = lenet_ctx(small, domain="none")
    with pytest.raises(InvalidParameter, match="attacker_data.domain"):
        FineTuning(epochs=1)(copy.deepcopy(fmnist_source), ctx)
    WeightPruning(rate=0.5)(copy.deepcopy(fmnist_source), ctx)
    assert ctx.record()["images"] == 0


def test_the_run_json_records_the_budget(wrt_run, tmp_path, fmnist_full):
    done = wrt_run("scheme=content", "attack=ftal", "budget=smoke", "attacker_data.fraction=0.25",
                   "attacker_data.labels=queried")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "results" / "runs").glob("*.json").__next__().read_text())
    assert result["status"] == "ok", result["error"]
    assert result["attack"]["data"] == {"fraction": 0.25, "count": None, "labels": "queried",
                                        "domain": "in", "images": 250}  # a quarter of 1,000
    assert result["attack_usage"]["queries"] >= 250 and result["num_classes"] == 10
    bad = wrt_run("attacker_data.domain=web")
    assert bad.returncode == 2 and "attacker_data.domain='web'" in bad.stderr
