"""Every model config builds for the shapes of the datasets it serves (28-px grey Fashion-MNIST,
32-px colour CIFAR-10) the way a run builds it, and classifies a small batch."""

from __future__ import annotations

import pytest
import torch

from conftest import group_config, options
from wrt.pipeline import build

SHAPES = {"fashion_mnist": (1, 28), "cifar10": (3, 32)}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", options("model"))
def test_model_config_builds_and_classifies_a_batch(name, shape):
    channels, size = SHAPES[shape]
    if name == "densenet121" and size < 32:
        pytest.skip("DenseNet-121 (an ImageNet model) halves 28 px to 7 before its three 2× transitions: 7 → 3 → 1 → 0")
    torch.manual_seed(0)
    model = build(group_config("model", name), num_classes=7, in_channels=channels,  # as wrt.pipeline.Run does
                  mean=[0.5] * channels, std=[0.25] * channels).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, channels, size, size))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
