"""Adversarial training as a removal attack (Madry et al., ICLR 2018; SoK §V-B, Appendix
XIII-B).

PGD adversarial examples (L∞ radius ε ∈ {0.01, 0.1, 0.25}, step 0.01, 40 iterations) are
made from a random ~10 % of the attacker's images against the model under attack, each is
repeated twice and injected into the attacker's data, and the model is fine-tuned on this
set for five epochs (paper budget). Labels are the source model's predictions on the clean
images (domain data, SoK Table III), so an adversarial example keeps its clean image's label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wrt.adversarial import AdversarialParams, batched, pgd
from wrt.attacks.base import Attack, AttackContext, FineTuningParams
from wrt.attacks.toolkit import attacker_data, classifier_of, fine_tune
from wrt.data.loader import to_float


@dataclass(eq=False)
class AdversarialTraining(AdversarialParams, FineTuningParams, Attack):
    category = "model_modification"

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "adversarial_training")
        images, targets = attacker_data(ctx, model, "queried")
        generator = ctx.generator()
        n_adv = max(1, int(round(self.fraction * len(images))))
        chosen = torch.randperm(len(images), generator=generator)[:n_adv]
        clean = to_float(images)
        adversarial = batched(pgd, net, clean[chosen], targets[chosen], eps=self.eps, step=self.step,
                              iterations=self.iterations, generator=generator)
        train_x = torch.cat([clean] + [adversarial] * self.repeats)
        train_y = torch.cat([targets] + [targets[chosen]] * self.repeats)
        fine_tune(ctx, model, train_x, train_y, epochs=self.epochs, lr=self.lr, desc="adversarial_training")
        return model
