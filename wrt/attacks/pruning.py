"""Pruning attacks (SoK §V-B, Appendix XIII-B).

- Weight pruning (Zhu & Gupta 2017): zero the fraction `rate` of smallest-magnitude weights
  of every layer, 0.1 ≤ ρ ≤ 0.95.
- Fine-pruning (Liu et al., RAID 2018): prune the dormant channels of the last convolutional
  layer, 0.8 ≤ ρ ≤ 0.95, then fine-tune (10 epochs at paper budget).

Also the neuron helpers shared with Neural Cleanse and Neural Laundering: the activation
stages of a model's feature extractor, their mean activations, and pruning neurons by
masking their activations with a forward hook (the weights stay, the neuron is dead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext, FineTuningParams
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


RATE = dict(low=0.0, high=1.0, low_open=True, high_open=True)  # the fraction of weights or units pruned


@dataclass(eq=False)
class WeightPruning(Attack):
    category = "model_modification"

    rate: float = param(0.9, **RATE)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        for module in model.modules():
            if isinstance(module, PRUNABLE):
                magnitude_prune_(module.weight, self.rate)
        return model


# ---- neurons of the feature extractor (fine-pruning, Neural Cleanse, Neural Laundering) ----

SKIPPED_STAGES = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d,
                  nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity, nn.BatchNorm2d,
                  nn.BatchNorm1d)


def activation_stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The stages of `net.features` whose outputs are neuron activations: the direct children
    that are blocks or nonlinearities (bare conv/linear/norm/pool/flatten layers are skipped,
    their activation is the next stage's). small_cnn: conv1..conv4 blocks and the hidden ReLU;
    lenet: relu1..relu4; resnet18: the stem ReLU and each residual block."""
    features = net.features
    children = list(features.named_children())
    if len(children) == 1 and not isinstance(children[0][1], SKIPPED_STAGES):  # one wrapped net
        features = children[0][1]
        children = list(features.named_children())
    return [(name, m) for name, m in children if not isinstance(m, SKIPPED_STAGES)]


@torch.no_grad()
def mean_activations(net: nn.Module, modules: list[nn.Module], images: torch.Tensor, trainer,
                     transform=None, batch_size: int = 256) -> list[torch.Tensor]:
    """Mean activation per channel (4-D outputs: averaged over samples and space) or per unit
    (2-D outputs) of each module in `modules` on `images` (uint8 or float), in eval mode.
    `transform` maps a float batch before the forward pass (e.g. to stamp a trigger)."""
    from wrt.data.loader import to_float

    sums: list = [None] * len(modules)
    counts = [0] * len(modules)

    def hook(i):
        def record(module, inputs, output):
            dims = [0, 2, 3] if output.dim() == 4 else [0]
            total = output.detach().float().sum(dims)
            sums[i] = total if sums[i] is None else sums[i] + total
            counts[i] += output.numel() // output.shape[1]
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(images), batch_size):
            x = to_float(images[start:start + batch_size]).to(device)
            if transform is not None:
                x = transform(x)
            with trainer.autocast():
                net(x)
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return [s.cpu() / n if s is not None else None for s, n in zip(sums, counts)]


class ChannelMask:
    """Forward hook that zeroes pruned channels (4-D outputs) or units (2-D outputs) of a
    stage: the pruned neurons' activations are zero in every later forward pass."""

    def __init__(self, keep: torch.Tensor):
        self.keep = keep.float()

    def __call__(self, module, inputs, output):
        keep = self.keep.to(output.device, output.dtype)
        return output * (keep.view(1, -1, 1, 1) if output.dim() == 4 else keep.view(1, -1))


def prune_neurons(module: nn.Module, pruned: torch.Tensor) -> None:
    """Zero the activations of the channels/units in the boolean mask `pruned` from now on."""
    module.register_forward_hook(ChannelMask(~pruned))


def last_conv_stage(net: nn.Module, sample: torch.Tensor, attack: str) -> tuple[str, nn.Module]:
    """The last stage of `net.features` with a 4-D (convolutional) activation."""
    from wrt.validation import require

    stages = activation_stages(net)
    shapes = {}
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: shapes.__setitem__(name, o.dim()))
               for name, m in stages]
    try:
        with torch.no_grad():
            was_training = net.training
            net.eval()
            net(sample)
            net.train(was_training)
    finally:
        for h in handles:
            h.remove()
    conv = [(name, m) for name, m in stages if shapes.get(name) == 4]
    require(bool(conv), f"attack.{attack}", type(net).__name__,
            "a model whose features have a convolutional stage")
    return conv[-1]


@dataclass(eq=False)
class FinePruning(FineTuningParams, Attack):
    """Fine-Pruning (Liu et al., RAID 2018; SoK §V-B, App. XIII-B): prune the fraction `rate`
    of the last convolutional layer's channels that are least activated by the attacker's
    clean images (dormant neurons), then fine-tune all layers for `epochs` (10 in the paper)
    on the labels the source model predicts. 0.8 ≤ ρ ≤ 0.95."""

    category = "model_modification"

    rate: float = param(0.9, **RATE)
    epochs: float = param(10, **EPOCHS)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        from wrt.attacks.finetuning import attacker_data, classifier_of, fine_tune
        from wrt.data.loader import to_float

        net = classifier_of(model, "fine_pruning")
        images, targets = attacker_data(ctx, model, "predicted")
        device = next(net.parameters()).device
        _, stage = last_conv_stage(net, to_float(images[:2]).to(device), "fine_pruning")
        (activation,) = mean_activations(net, [stage], images, ctx.trainer)
        k = int(round(self.rate * len(activation)))
        pruned = torch.zeros(len(activation), dtype=torch.bool)
        pruned[activation.argsort()[:k]] = True
        prune_neurons(stage, pruned)
        fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr, desc="fine_pruning")
        return model
