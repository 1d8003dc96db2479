"""Weight pruning (Zhu & Gupta 2017; SoK §V, Appendix XIII-B): zero the fraction `rate`
of smallest-magnitude weights of every layer, 0.1 ≤ ρ ≤ 0.95."""

from __future__ import annotations

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext
from wrt.validation import in_range

PRUNABLE = (nn.Conv2d, nn.Linear)


@torch.no_grad()
def magnitude_prune_(weight: torch.Tensor, rate: float) -> None:
    """Zero the `rate` fraction of entries of `weight` with the smallest magnitude, in place."""
    k = int(round(rate * weight.numel()))
    if k == 0:
        return
    threshold = weight.abs().flatten().kthvalue(k).values
    weight[weight.abs() <= threshold] = 0


class WeightPruning(Attack):
    category = "model_modification"

    def __init__(self, rate: float = 0.9):
        in_range("attack.rate", rate, 0.0, 1.0, low_open=True, high_open=True)
        self.rate = rate

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        for module in model.modules():
            if isinstance(module, PRUNABLE):
                magnitude_prune_(module.weight, self.rate)
        return model
