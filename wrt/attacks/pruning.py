"""Pruning attacks (SoK §V-B, Appendix XIII-B).

- Weight pruning (Zhu & Gupta 2017): zero the fraction `rate` of every layer's weights, 0.1 ≤
  ρ ≤ 0.95. As in the SoK (§V-B: it "randomly prunes the weights in the source model until a
  given sparsity ρ is reached in each layer") the pruned weights are drawn at random by
  default (`method: random`); `method: magnitude` prunes the smallest-magnitude ones instead.
- Fine-pruning (Liu et al., RAID 2018): prune the dormant channels of the last convolutional
  layer, 0.8 ≤ ρ ≤ 0.95, then fine-tune (10 epochs at paper budget).

Fine-pruning prunes neurons with the toolkit's helpers (`wrt.attacks.toolkit`): a forward
hook masks their activations (the weights stay, the neuron is dead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext, FineTuningParams
from wrt.attacks.toolkit import (attacker_data, classifier_of, fine_tune, last_conv_stage, mean_activations,
                                 prune_neurons)
from wrt.data.loader import to_float
from wrt.params import EPOCHS, param

PRUNABLE = (nn.Conv2d, nn.Linear)


@torch.no_grad()
def magnitude_prune_(weight: torch.Tensor, rate: float) -> None:
    """Zero (at least) the `rate` fraction of entries of `weight` with the smallest magnitude,
    in place."""
    k = math.ceil(rate * weight.numel() - 1e-9)
    if k == 0:
        return
    threshold = weight.abs().flatten().kthvalue(k).values
    weight[weight.abs() <= threshold] = 0


@torch.no_grad()
def random_prune_(weight: torch.Tensor, rate: float, generator: torch.Generator) -> None:
    """Zero `⌈rate · numel⌉` entries of `weight` drawn uniformly at random with `generator`, in
    place (any memory format)."""
    k = math.ceil(rate * weight.numel() - 1e-9)
    mask = torch.zeros(weight.numel(), dtype=torch.bool)
    mask[torch.randperm(weight.numel(), generator=generator)[:k]] = True
    weight[mask.view(weight.shape).to(weight.device)] = 0


PRUNING_METHODS = ("random", "magnitude")
RATE = dict(low=0.0, high=1.0, low_open=True, high_open=True)  # the fraction of weights or units pruned


@dataclass(eq=False)
class WeightPruning(Attack):
    """Weight pruning: the fraction `rate` of each conv/linear layer's weights set to zero, drawn
    at random (`random`, the SoK's) or the smallest in magnitude (`magnitude`); no fine-tuning."""

    category = "model_modification"

    rate: float = param(0.9, **RATE)
    method: str = param("random", choices=PRUNING_METHODS)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        generator = ctx.generator()
        for module in model.modules():
            if isinstance(module, PRUNABLE):
                if self.method == "random":
                    random_prune_(module.weight, self.rate, generator)
                else:
                    magnitude_prune_(module.weight, self.rate)
        return model


@dataclass(eq=False)
class FinePruning(FineTuningParams, Attack):
    """Fine-Pruning (Liu et al., RAID 2018; SoK §V-B, App. XIII-B): prune the fraction `rate`
    of the last convolutional layer's channels that are least activated by the attacker's
    clean images (dormant neurons), then fine-tune all layers for `epochs` (10 in the paper)
    on the labels the source model predicts. 0.8 ≤ ρ ≤ 0.95."""

    category = "model_modification"
    paper_epochs = True  # fine-tunes on the attacker's third only

    rate: float = param(0.9, **RATE)
    epochs: float = param(10, **EPOCHS)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "fine_pruning")
        images, targets = attacker_data(ctx, model, "queried")
        device = next(net.parameters()).device
        _, stage = last_conv_stage(net, to_float(images[:2]).to(device), "fine_pruning")
        (activation,) = mean_activations(net, [stage], images, ctx.trainer)
        k = int(round(self.rate * len(activation)))
        pruned = torch.zeros(len(activation), dtype=torch.bool)
        pruned[activation.argsort()[:k]] = True
        prune_neurons(stage, pruned)
        fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr, desc="fine_pruning")
        return model
