"""Adversarial training as a removal attack (Madry et al., ICLR 2018; SoK §V-B, Appendix
XIII-B).

PGD adversarial examples (L∞ radius ε ∈ {0.01, 0.1, 0.25}, step 0.01, 40 iterations) are
made from a random ~10 % of the attacker's images against the model under attack, each is
repeated twice and injected into the attacker's data, and the model is fine-tuned on this
set for five epochs (paper budget). Labels are the source model's predictions on the clean
images (domain data, SoK Table III), so an adversarial example keeps its clean image's label.
"""

from __future__ import annotations

import torch
from torch import nn

from wrt.adversarial import batched, pgd
from wrt.attacks.base import Attack, AttackContext
from wrt.attacks.toolkit import attacker_data, classifier_of, fine_tune
from wrt.data.loader import to_float
from wrt.validation import in_range, positive_int


class AdversarialTraining(Attack):
    category = "model_modification"

    def __init__(self, eps: float = 0.1, step: float = 0.01, iterations: int = 40, fraction: float = 0.1,
                 repeats: int = 2, epochs: float = 5, lr: float = 0.01):
        in_range("attack.eps", eps, 0, 1, low_open=True)
        in_range("attack.step", step, 0, 1, low_open=True)
        positive_int("attack.iterations", iterations)
        in_range("attack.fraction", fraction, 0, 1, low_open=True)
        positive_int("attack.repeats", repeats)
        in_range("attack.epochs", epochs, 0, 1000, low_open=True)
        in_range("attack.lr", lr, 0, 1, low_open=True)
        self.eps, self.step, self.iterations, self.fraction = eps, step, iterations, fraction
        self.repeats, self.epochs, self.lr = repeats, epochs, lr

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
