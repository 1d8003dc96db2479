"""Neural Laundering (Aiken et al., Computers & Security 2021; SoK §V-B, Appendix XIII-B),
an extension of Neural Cleanse against model-independent (backdoor) watermarks.

1. Reverse-engineer the watermark trigger as Neural Cleanse does (`neural_cleanse.py`).
2. Compare the activations of clean and trigger-stamped attacker images at every stage of
   the feature extractor; prune (mask to zero) every convolutional channel whose mean
   activation rises by more than `threshold` (c, ablated 0.03 ≤ c ≤ 3) under the trigger,
   and every fully connected unit whose activation rises by more than `dense_threshold`.
3. Fine-tune ("retrain") on the attacker's images with source-predicted labels, a fraction of
   them stamped with the trigger and keeping their own labels, with lr 1e-4 ≤ α ≤ 1e-2.

Defaults follow the SoK's WRT configs: c = 0.5, dense threshold 0.2, 15 reverse-engineering
epochs, 5 fine-tuning epochs (paper budget).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext, FineTuningParams
from wrt.attacks.neural_cleanse import TriggerReversalParams, detect_triggers, stamp_fraction
from wrt.attacks.toolkit import (activation_stages, attacker_data, classifier_of, fine_tune, mean_activations,
                                 prune_neurons)
from wrt.params import EPOCHS, LR, param


@dataclass(eq=False)
class NeuralLaundering(TriggerReversalParams, FineTuningParams, Attack):
    category = "model_modification"

    threshold: float = param(0.5, low=0, high=100, low_open=True)
    dense_threshold: float = param(0.2, low=0, high=100, low_open=True)
    lr: float = param(0.001, **LR)
    reverse_epochs: float = param(15, **EPOCHS)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "neural_laundering")
        images, targets = attacker_data(ctx, model, "queried")
        triggers, detection = detect_triggers(ctx, net, images, epochs=self.reverse_epochs,
                                              samples=self.reverse_samples, lam=self.lam)
        generator = ctx.generator()
        sample = images[torch.randperm(len(images), generator=generator)[:self.reverse_samples]]
        stages = activation_stages(net)
        modules = [m for _, m in stages]
        clean = mean_activations(net, modules, sample, ctx.trainer)
        rise = [torch.zeros_like(c) for c in clean]
        shapes = {}
        for trigger in triggers:
            stamped = mean_activations(net, modules, sample, ctx.trainer, transform=trigger.stamp)
            rise = [r + torch.maximum(s - c, torch.zeros_like(c)) for r, s, c in zip(rise, stamped, clean)]
        with torch.no_grad():  # which stages are convolutional (4-D activations)
            device = next(net.parameters()).device
            hooks = [m.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, o.dim()))
                     for n, m in stages]
            net.eval()
            net(torch.zeros((1, *images.shape[1:]), device=device))
            for h in hooks:
                h.remove()
        counts = {}
        for (name, module), r in zip(stages, rise):
            pruned = r > (self.threshold if shapes[name] == 4 else self.dense_threshold)
            if pruned.any():
                prune_neurons(module, pruned)
            counts[name] = int(pruned.sum())
        ctx.report(detection=detection, pruned=counts)
        train_x = stamp_fraction(images, triggers, self.trigger_fraction, generator)
        fine_tune(ctx, model, train_x, targets, epochs=self.epochs, lr=self.lr, desc="neural_laundering")
        return model
