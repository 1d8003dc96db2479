"""Model-modification attacks on small real data: the victim is a narrow SmallCNN (width 8,
with BatchNorm) trained on 600 Fashion-MNIST images; the attacker's third is 300 images;
fine-tuning runs about one epoch at batch size 64 (the tests must be fast on 2 busy cores)."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from functools import partial

import pytest
import torch
from torch import nn

from wrt.attacks.equivalence import FeaturePermutation, Scaling
from wrt.attacks.neural_cleanse import NeuralCleanse, anomaly_indices
from wrt.attacks.neural_laundering import NeuralLaundering
from wrt.attacks.overwriting import Overwriting
from wrt.attacks.pruning import FinePruning, WeightPruning
from wrt.attacks.quantization import WeightQuantization
from wrt.attacks.shifting import WeightShifting
from wrt.attacks.toolkit import hidden_pairs, last_conv_stage, mean_activations
from wrt.config import build
from wrt.models import ImageClassifier, LeNet, ResNet18, SmallCNN
from wrt.validation import InvalidParameter

from conftest import attack_options, group_config, make_ctx

N_ATTACKER = 300


@pytest.fixture(scope="module")
def small(narrow_subset):
    return narrow_subset


@pytest.fixture(scope="module")
def victim_model(narrow_victim):
    return narrow_victim


@pytest.fixture
def fmnist_source(victim_model):
    return copy.deepcopy(victim_model)


# about one epoch (epoch_scale 0.1 of the attacks' epochs) of SGD at batch size 64; attacks that
# train from scratch build a SmallCNN
small_cnn_ctx = partial(make_ctx, trainer={"epoch_scale": 0.1, "channels_last": False,
                                            "optimizer": partial(torch.optim.SGD, lr=0.01, momentum=0.9)},
                        model=SmallCNN)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, model, prefix=""):
    after = model.state_dict()
    return {k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])}


def test_configs_build_with_the_paper_parameters(compose_cfg):  # every config builds: test_config_groups.py
    assert build(compose_cfg("attack=weight_shifting").attack).lambda1 == 1.5
    assert build(compose_cfg("attack=fine_pruning").attack).epochs == 10
    with pytest.raises(InvalidParameter, match=r"attack.rate=1.5 .* \(0.0, 1.0\)"):
        build(compose_cfg("attack=fine_pruning", "attack.rate=1.5").attack)
    with pytest.raises(InvalidParameter, match="attack.method='erase'"):
        NeuralCleanse(method="erase")
    with pytest.raises(InvalidParameter, match="attack.bits"):
        WeightQuantization(bits=0)


@pytest.mark.parametrize("attack", [FeaturePermutation(), Scaling(3.0), Scaling(5.0, randomize=True)],
                         ids=["permutation", "scaling", "scaling_random"])
def test_function_preserving_attacks_keep_outputs_and_change_weights(attack, small, fmnist_source):
    victim = copy.deepcopy(fmnist_source).eval()
    before = state(victim)
    x = small.test_x[:200].float() / 255
    with torch.no_grad():
        expected = victim(x)
    surrogate = attack(victim, small_cnn_ctx(small)).eval()
    with torch.no_grad():
        assert torch.allclose(surrogate(x), expected, atol=1e-4, rtol=1e-4)
    touched = changed(before, surrogate)
    # every hidden layer: conv outputs at their BatchNorm (scaling) or conv + BatchNorm
    # (permutation), the hidden linear layer, and the inputs of conv2..4, fc1 and the classifier
    layers = ["features.conv1.1.weight", "features.conv4.1.bias", "features.fc1.weight",
              "features.fc1.bias", "classifier.weight", "features.conv2.0.weight"]
    if isinstance(attack, FeaturePermutation):
        layers += ["features.conv1.0.weight", "features.conv3.1.running_mean"]
    for layer in layers:
        assert layer in touched, layer
    assert "classifier.bias" not in touched  # logits keep their order
    if isinstance(attack, FeaturePermutation):
        assert torch.equal(before["features.conv1.0.weight"].flatten().sort().values,
                           surrogate.features.conv1[0].weight.flatten().sort().values)


@pytest.mark.parametrize("model", [LeNet(), ResNet18(in_channels=1, mean=(0.5,), std=(0.25,))], ids=["lenet", "resnet18"])
def test_function_preserving_attacks_on_other_architectures(model):
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    ctx = make_ctx(None, seed=3)
    pairs = len(hidden_pairs(model, "test"))
    assert pairs == (4 if isinstance(model, LeNet) else 8)  # resnet18: conv1→conv2 in 8 blocks
    for attack in (FeaturePermutation(), Scaling(2.0, randomize=True)):
        with torch.no_grad():
            assert torch.allclose(attack(model, ctx)(x), expected, atol=1e-4, rtol=1e-4)


class LinearOnly(ImageClassifier):
    def __init__(self):
        super().__init__((0.5,), (0.5,))
        self.features = nn.Sequential(OrderedDict(flatten=nn.Flatten()))
        self.classifier = nn.Linear(784, 10)


def test_attacks_that_cannot_apply_fail_clearly(small):
    with pytest.raises(InvalidParameter, match="attack.feature_permutation=.*hidden layers"):
        FeaturePermutation()(LinearOnly(), small_cnn_ctx(small))
    with pytest.raises(InvalidParameter, match="attack.weight_shifting=.*convolutional"):
        WeightShifting()(LinearOnly(), small_cnn_ctx(small))
    with pytest.raises(InvalidParameter, match="attack.fine_pruning=.*convolutional stage"):
        FinePruning()(LinearOnly(), small_cnn_ctx(small))


def test_weight_pruning_at_0_9_zeroes_90_percent_and_costs_accuracy(small, fmnist_source):
    ctx = small_cnn_ctx(small)
    source_acc = ctx.trainer.accuracy(fmnist_source, small.test_x, small.test_y)
    surrogate = WeightPruning(rate=0.9)(copy.deepcopy(fmnist_source), ctx)
    for name, module in surrogate.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert (module.weight == 0).float().mean() >= 0.9, name
    assert ctx.trainer.accuracy(surrogate, small.test_x, small.test_y) < source_acc - 0.1


def test_weight_pruning_is_random_by_default_and_magnitude_on_request(fmnist_source, small):
    """SoK §V-B: random pruning zeroes ⌈ρ·n⌉ weights of each layer drawn at random, as many above
    the layer's median magnitude as below it; `magnitude` zeroes exactly the smallest ones."""
    before = {name: m.weight.detach().clone() for name, m in fmnist_source.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))}
    pruned = dict(WeightPruning(rate=0.5)(copy.deepcopy(fmnist_source), small_cnn_ctx(small)).named_modules())
    by_size = dict(WeightPruning(rate=0.5, method="magnitude")(copy.deepcopy(fmnist_source),
                                                                small_cnn_ctx(small)).named_modules())
    big = 0
    for name, w in before.items():
        zeroed = pruned[name].weight == 0
        assert zeroed.sum() >= math.ceil(0.5 * w.numel()), name
        kept = ~zeroed
        assert torch.equal(pruned[name].weight[kept], w[kept]), name
        if w.numel() >= 1000:  # enough weights for the share above the median to be near ½
            big += 1
            above = w.abs() > w.abs().median()
            assert 0.4 < above[zeroed].float().mean() < 0.6, name
            assert not above[by_size[name].weight == 0].any(), name
    assert big >= 2


def test_fine_pruning_kills_the_dormant_channels_of_the_last_conv_layer(small, fmnist_source):
    ctx = small_cnn_ctx(small)
    victim = copy.deepcopy(fmnist_source)
    name, stage = last_conv_stage(victim, small.test_x[:2].float() / 255, "test")
    assert name == "conv4"
    (before,) = mean_activations(victim, [stage], small.attacker()[0], ctx.trainer)
    surrogate = FinePruning(rate=0.8, epochs=10)(victim, ctx)
    (after,) = mean_activations(surrogate, [surrogate.features.conv4], small.test_x, ctx.trainer)
    dead = after == 0
    assert dead.sum() >= round(0.8 * 32)
    assert set(before.argsort()[:round(0.8 * 32)].tolist()) <= set(torch.nonzero(dead).flatten().tolist())
    assert ctx.trainer.accuracy(surrogate, small.test_x, small.test_y) > 0.35  # chance: 0.1


# every model-modification attack but those tested on their own in this module (pruning,
# function-preserving, Neural Cleanse, Neural Laundering, overwriting), with fewer epochs or
# steps than its config where it needs a few hundred CPU steps to be usable again
FINE_TUNING = [name for name in attack_options("model_modification")
               if name not in ("weight_pruning", "fine_pruning", "feature_permutation", "scaling", "neural_cleanse",
                               "neural_laundering", "overwriting")]
FAST = {"ftll": {"epochs": 10}, "ftal": {"epochs": 10}, "ftal_mixup": {"epochs": 10}, "rtll": {"epochs": 30, "lr": 0.05}, "rtal": {"epochs": 20},
        "label_smoothing": {"epochs": 10}, "regularization": {"epochs": 10, "finetune_epochs": 10},
        "weight_shifting": {"epochs": 20}, "weight_quantization": {"bits": 4, "epochs": 10},
        "adversarial_training": {"eps": 0.1, "iterations": 5, "epochs": 10}}


@pytest.mark.parametrize("name", FINE_TUNING)
def test_fine_tuning_attacks_change_weights_and_keep_accuracy(name, small, fmnist_source):
    attack = build(group_config("attack", name), **FAST.get(name, {}))
    ctx = small_cnn_ctx(small)
    victim = copy.deepcopy(fmnist_source)
    source_acc = ctx.trainer.accuracy(victim, small.test_x, small.test_y)
    before = state(victim)
    surrogate = attack(victim, ctx)
    assert isinstance(surrogate, SmallCNN) and surrogate.num_classes == 10
    assert ctx.trainer.predict(surrogate, small.test_x[:3]).shape == (3, 10)
    touched = changed(before, surrogate)
    assert "classifier.weight" in touched
    if name in ("ftll", "rtll"):  # only the last layer moves; BatchNorm statistics stay frozen
        assert touched <= {"classifier.weight", "classifier.bias"}
    else:
        assert "features.conv1.0.weight" in touched
    # each of the attacker's images is used once, with its true label (ftll, ftal: Uchida et al.)
    # or the victim's answer (the others in FAST)
    usage = {"labeled": ctx.usage["labeled_samples"], "queried": ctx.usage["queries"]}
    assert sorted(usage.values()) == [0, N_ATTACKER]
    if name in FAST:
        assert usage["labeled" if name in ("ftll", "ftal", "ftal_mixup") else "queried"] == N_ATTACKER
    # a usable model, not the paper's loss: the largest drops measured over 3 victims × 2 data orders
    # in bf16 and fp32 were ftll/ftal/rtll/regularization ≤ 0.07, weight quantization and
    # adversarial training ≤ 0.15, rtal 0.24, label smoothing and weight shifting 0.30 (re-initialised,
    # smoothed or shifted models regain less in two epochs on 300 images)
    tolerance = {"rtal": 0.35, "label_smoothing": 0.35, "weight_shifting": 0.35,
                 "weight_quantization": 0.25, "adversarial_training": 0.25}.get(name, 0.15)
    assert ctx.trainer.accuracy(surrogate, small.test_x, small.test_y) > source_acc - tolerance, name


def test_weight_quantization_leaves_2_to_the_b_levels_per_layer(small, fmnist_source):
    surrogate = WeightQuantization(bits=4, epochs=10)(copy.deepcopy(fmnist_source), small_cnn_ctx(small))
    for module in surrogate.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert len(torch.unique(module.weight.detach())) <= 16
            assert "parametrizations" not in dict(module.named_children())


def test_weight_shifting_moves_filters_against_their_mean(small, fmnist_source):
    victim = copy.deepcopy(fmnist_source)
    w = victim.features.conv2[0].weight.detach().clone()
    ctx = small_cnn_ctx(small)
    ctx.trainer.fit = lambda *a, **k: None  # look at the shift alone (Eq. 7 without fine-tuning)
    shifted = WeightShifting(lambda1=1.5, lambda2=0.0)(victim, ctx).features.conv2[0].weight
    assert torch.allclose(shifted, w - 1.5 * w.mean(0, keepdim=True), atol=1e-6)


def test_anomaly_index_flags_the_class_with_the_small_trigger():
    norms = torch.tensor([50.0, 52, 49, 51, 48, 50, 53, 5, 48.5, 51])
    index = anomaly_indices(norms)
    assert index.argmax() == 7 and index[7] > 2 and (index[torch.arange(10) != 7] < 2).all()


@pytest.mark.parametrize("method", ["unlearning", "pruning"])
def test_neural_cleanse_runs_and_keeps_accuracy(method, small, fmnist_source):
    ctx = small_cnn_ctx(small)
    source_acc = ctx.trainer.accuracy(fmnist_source, small.test_x, small.test_y)
    attack = NeuralCleanse(method=method, rate=0.5, epochs=10, reverse_epochs=10, reverse_samples=64)
    surrogate = attack(copy.deepcopy(fmnist_source), ctx)
    detection = ctx.result["detection"]  # reported in the run JSON's attack.result
    assert len(detection["mask_l1"]) == 10 and detection["detected"] == bool(detection["flagged"])
    assert detection["removed"] == (detection["flagged"] or [min(range(10), key=detection["mask_l1"].__getitem__)])
    assert ctx.trainer.accuracy(surrogate, small.test_x, small.test_y) > source_acc - 0.15


def test_neural_laundering_prunes_neurons_the_trigger_excites(small, fmnist_source):
    ctx = small_cnn_ctx(small)
    attack = NeuralLaundering(threshold=0.03, dense_threshold=0.03, lr=0.01, epochs=10, reverse_epochs=10,
                              reverse_samples=64)
    surrogate = attack(copy.deepcopy(fmnist_source), ctx)
    pruned = ctx.result["pruned"]
    assert sum(pruned.values()) > 0 and set(pruned) == {"conv1", "conv2", "conv3", "conv4", "relu"}
    assert len(ctx.result["detection"]["removed"]) >= 1  # what it detects: tests/test_detection.py
    assert ctx.trainer.accuracy(surrogate, small.test_x, small.test_y) > 0.5


def test_overwriting_embeds_the_attackers_own_key(small, fmnist_source):
    from wrt.schemes.adi import Adi

    scheme = Adi(key_size=10, repeats=20, lr=0.05, epochs=50, check_every=100)
    ctx = small_cnn_ctx(small, scheme=scheme)
    victim = copy.deepcopy(fmnist_source)
    attack = Overwriting()
    surrogate = attack(victim, ctx)
    assert isinstance(surrogate, SmallCNN) and attack.key is not None
    assert ctx.usage["labeled_samples"] == N_ATTACKER
    # the attacker's key (random labels, chance ≈ 0.1) is now embedded
    assert scheme.extract(surrogate, attack.key, ctx.trainer) >= 0.6
    assert scheme.extract(fmnist_source, attack.key, ctx.trainer) <= 0.3
    assert ctx.trainer.accuracy(surrogate, small.test_x, small.test_y) > 0.4
