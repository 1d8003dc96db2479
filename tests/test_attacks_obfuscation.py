"""Structural obfuscation (dummy neurons): the widened model computes the same function on
the small model configs (SmallCNN, LeNet, ResNet-18), its layers report their new shapes, bad parameters fail
clearly, and white-box keys either no longer fit (`KeyMismatch`, recorded as watermark
accuracy 0) or are read from the changed weights without crashing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from wrt.attacks.dummy_neurons import DummyNeurons
from wrt.attacks.toolkit import hidden_pairs
from wrt.config import build
from wrt.models import SmallCNN
from wrt.pipeline import run
from wrt.record import CATEGORIES
from wrt.schemes.base import Key, KeyMismatch
from wrt.schemes.deepmarks import DeepMarks
from wrt.schemes.deepsigns import DeepSigns
from wrt.schemes.greedy_residuals import GreedyResiduals
from wrt.schemes.uchida import Uchida
from wrt.validation import InvalidParameter

from conftest import group_config, make_ctx, options

CTX = make_ctx(None, seed=3)


def randomized(model: nn.Module) -> nn.Module:
    """`model` in eval mode with non-trivial BatchNorm statistics and affine parameters."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


# every model config but the ImageNet/CIFAR-sized ones (millions of weights: 15–30 s each to widen
# on two busy cores; densenet121 also needs 32-px inputs)
MODELS = [name for name in options("model") if name not in ("densenet121", "resnet50", "wrn_28_10")]


def widths(model: nn.Module) -> dict[str, tuple]:
    return {n: tuple(m.weight.shape) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def assert_consistent(model: nn.Module) -> None:
    """Every layer's shape attributes match its tensors."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.shape[:2] == (m.out_channels, m.in_channels // m.groups), name
        elif isinstance(m, nn.Linear):
            assert m.weight.shape == (m.out_features, m.in_features), name
        elif isinstance(m, nn.BatchNorm2d):
            assert m.weight.numel() == m.running_var.numel() == m.num_features, name


def test_config_builds_and_parameters_are_validated(compose_cfg):
    attack = build(compose_cfg("attack=dummy_neurons").attack)
    assert attack.category == "obfuscation" and attack.category in CATEGORIES
    assert (attack.channels, attack.mode, attack.shuffle, attack.layers) == (0.25, "cancelling", True, None)
    layers = build(compose_cfg("attack=dummy_neurons", "attack.layers=[features.fc1]").attack).layers
    assert layers == ["features.fc1"]
    for bad in ({"channels": 0}, {"channels": 1.5}, {"channels": True}, {"channels": "2"},
                {"mode": "noise"}, {"shuffle": "yes"}, {"layers": "features.fc1"}, {"layers": []}):
        with pytest.raises(InvalidParameter, match=f"attack.{next(iter(bad))}="):
            DummyNeurons(**bad)


@pytest.mark.parametrize("mode", ["cancelling", "zero"])
@pytest.mark.parametrize("name", MODELS)
def test_outputs_unchanged_and_layers_widened(name, mode):
    model = randomized(build(group_config("model", name), num_classes=10, in_channels=1, mean=[0.5], std=[0.25]))
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    before, params = widths(model), sum(p.numel() for p in model.parameters())
    producers = [p.producer_name for p in hidden_pairs(model, "test")]
    surrogate = DummyNeurons(channels=0.5, mode=mode)(copy.deepcopy(model), CTX)
    with torch.no_grad():
        assert (surrogate(x) - expected).abs().max() <= 1e-5
        assert (surrogate.train()(x) - model.train()(x)).abs().max() <= 1e-5  # batch statistics too
    assert_consistent(surrogate)
    after = widths(surrogate)
    for producer in producers:  # half as many units again (an even count when cancelling)
        added = round(0.5 * before[producer][0])
        added += added % 2 if mode == "cancelling" else 0
        assert after[producer][0] == before[producer][0] + added, producer
    # the classifier reads widened units, except in ResNet-18 (its input is a residual sum)
    assert (after["classifier"] == before["classifier"]) == (name == "resnet18")
    assert sum(p.numel() for p in surrogate.parameters()) > 1.4 * params


def test_counts_layers_and_shuffle():
    model = randomized(SmallCNN(width=8, hidden=16))
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    f = model.features
    # an odd count is rounded up to whole pairs when cancelling; mode zero keeps it
    for mode, added in (("cancelling", 4), ("zero", 3)):
        widened = DummyNeurons(channels=3, mode=mode, shuffle=False, layers=["features.conv1.0"])(
            copy.deepcopy(model), CTX)
        assert widened.features.conv1[0].out_channels == 8 + added
        assert widened.features.conv1[1].num_features == 8 + added
        assert widened.features.conv2[0].in_channels == 8 + added
        assert widened.features.conv2[0].out_channels == 16  # only the named producer
        # unshuffled, the old units keep their place and the dummies follow them
        assert torch.equal(widened.features.conv1[0].weight[:8], f.conv1[0].weight)
        if mode == "cancelling":
            dummies = widened.features.conv1[0].weight[8:]
            assert torch.equal(dummies[0::2], dummies[1::2])
            outgoing = widened.features.conv2[0].weight[:, 8:]
            assert torch.equal(outgoing[:, 0::2], -outgoing[:, 1::2])
        else:
            assert (widened.features.conv2[0].weight[:, 8:] == 0).all()
    shuffled = DummyNeurons(channels=4, layers=["features.conv4.0"])(copy.deepcopy(model), CTX)
    assert shuffled.features.fc1.in_features == (32 + 4) * 9  # one 3×3 spatial block per channel
    assert not torch.equal(shuffled.features.conv4[0].weight[:32], f.conv4[0].weight)
    with torch.no_grad():
        assert (shuffled(x) - expected).abs().max() <= 1e-5


def test_unknown_layer_names_fail_with_the_valid_ones_listed():
    with pytest.raises(InvalidParameter, match=r"'features.conv9' not a widenable layer of SmallCNN; "
                                               r"valid names: features.conv1.0, .*features.fc1$"):
        DummyNeurons(layers=["features.conv1.0", "features.conv9"])(SmallCNN(), CTX)


def test_whitebox_keys_that_no_longer_fit_raise_key_mismatch(fmnist):
    model = SmallCNN(mean=fmnist.mean, std=fmnist.std).eval()
    # the weight schemes on conv2 (their default: its mean filter holds their 100 and 133 bits)
    schemes = {type(s).__name__: s for s in (Uchida(layer="features.conv2.0"), DeepMarks(layer="features.conv2.0"),
                                             DeepSigns(), GreedyResiduals())}
    keys = {name: s.keygen(model, fmnist, torch.Generator().manual_seed(0)) for name, s in schemes.items()}
    surrogate = DummyNeurons()(copy.deepcopy(model), CTX)  # 32 → 40 channels, fc1 128 → 160
    messages = {}
    for name, scheme in schemes.items():
        try:
            accuracy = scheme.extract(surrogate, keys[name], None)
        except KeyMismatch as e:
            messages[name] = str(e)
        else:  # the shape still fits (Greedy Residuals pools any weight tensor): it reads the new weights
            assert 0 <= accuracy <= 1
    assert set(messages) == {"Uchida", "DeepMarks", "DeepSigns"}
    assert messages["Uchida"] == ("layer 'features.conv2.0': the key projects a mean_filter of 288 values, "
                                  "the layer's weights (80×40×3×3) give 360")
    assert messages["DeepSigns"] == "layer 'features.fc1': the key projects 128 activations, the layer outputs 160"
    # widening only the marked layer's outputs keeps its filter size: the mean filter changes
    only = DummyNeurons(layers=["features.conv2.0"])(copy.deepcopy(model), CTX)
    assert 0 <= schemes["Uchida"].extract(only, keys["Uchida"], None) <= 1
    missing = Key(keys["Uchida"].tensors, {**keys["Uchida"].meta, "layer": "features.conv9"})
    with pytest.raises(KeyMismatch, match="'features.conv9': .* no such layer"):
        schemes["Uchida"].extract(model, missing, None)


def test_uchida_watermark_fails_to_verify_while_predictions_stay(compose_cfg, fmnist_full):
    result, _ = run(compose_cfg("budget=smoke", "scheme=uchida", "scheme.layer=features.conv2.0", "attack=dummy_neurons"))
    assert result["status"] == "ok", result.get("error")
    assert result["attack"]["category"] == "obfuscation"
    assert result["marked"]["wm_acc"] >= 0.8
    assert result["surrogate"]["wm_acc"] == 0.0
    assert result["surrogate"]["wm_error"].startswith("KeyMismatch: layer 'features.conv2.0'")
    assert result["surrogate"]["test_acc"] == result["marked"]["test_acc"]
