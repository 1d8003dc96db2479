"""Weight quantization (Jacob et al., CVPR 2018; SoK §V-B, Appendix XIII-B).

The weights of every convolutional and linear layer are quantized to 2^b evenly spaced
levels per layer: the layer's range [min, max] is cut into 2^b intervals and each weight is
set to the centre of its interval (as input quantization does for pixels), b ∈ {4, 5}. The
model is then fine-tuned for one epoch (paper budget) on the labels the source model
predicts, quantization-aware: the forward pass always uses the quantized weights, gradients
reach the float weights straight through, and the surrogate keeps the quantized weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from wrt.attacks.base import Attack, AttackContext, FineTuningParams
from wrt.attacks.toolkit import attacker_data, classifier_of, fine_tune
from wrt.params import EPOCHS, param

QUANTIZED = (nn.Conv2d, nn.Linear)


def quantize_weights(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Each entry → the centre of its interval among 2^bits equal intervals of [min, max]."""
    low, high = weight.min(), weight.max()
    levels = 2 ** bits
    width = (high - low).clamp_min(1e-12) / levels
    index = ((weight - low) / width).floor().clamp(0, levels - 1)
    return low + (index + 0.5) * width


class StraightThroughQuantizer(nn.Module):
    """Parametrization: quantized weights forward, identity gradient backward."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = bits

    def forward(self, weight):
        return weight + (quantize_weights(weight.detach(), self.bits) - weight).detach()


@dataclass(eq=False)
class WeightQuantization(FineTuningParams, Attack):
    category = "model_modification"
    paper_epochs = True  # fine-tunes on the attacker's third only

    bits: int = param(5, low=1, high=16)
    epochs: float = param(1, **EPOCHS)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "weight_quantization")
        images, targets = attacker_data(ctx, model, "queried")
        layers = [m for m in net.modules() if isinstance(m, QUANTIZED)]
        for layer in layers:
            parametrize.register_parametrization(layer, "weight", StraightThroughQuantizer(self.bits))
        try:
            fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr,
                      desc="weight_quantization")
        finally:
            for layer in layers:  # keep the quantized values as plain weights
                parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
                with torch.no_grad():
                    layer.weight.copy_(quantize_weights(layer.weight, self.bits))
        return model
