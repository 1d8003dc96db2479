"""Mixup fine-tuning (`ftal_mixup`): FTAL whose batches are mixup'd — Zhang, Cisse, Dauphin and
Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018, §2.

Each training batch (after the dataset's augmentation) is replaced by convex combinations of
its images and one-hot labels with those of a random permutation of the same batch, with one
λ ~ Beta(α, α) per batch (the paper's minibatch form, Fig. 1a): x̃ = λx + (1 − λ)x[π],
ỹ = λy + (1 − λ)y[π]. The model is fine-tuned on the soft targets ỹ; everything else is FTAL's
(all layers, the attacker's ground-truth labels, the attack trainer).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wrt.attacks.base import AttackContext
from wrt.attacks.finetuning import FTAL
from wrt.attacks.toolkit import attacker_data, classifier_of, fine_tune
from wrt.params import param
from wrt.train import Batch, Callback


class Mixup(Callback):
    """Replaces each batch by its mixup with a permutation of itself; the targets become
    probability rows over `num_classes` classes. Mixes every row, so it goes before callbacks
    that append tagged rows."""

    def __init__(self, alpha: float, num_classes: int, seed: int = 0):
        self.alpha, self.num_classes = alpha, num_classes
        self.rng = random.Random(seed)  # λ ~ Beta(α, α)
        self.generator = torch.Generator().manual_seed(seed)  # π

    def on_batch(self, batch: Batch, step: int) -> None:
        lam = self.rng.betavariate(self.alpha, self.alpha)
        perm = torch.randperm(len(batch.images), generator=self.generator).to(batch.images.device)
        targets = batch.targets if batch.targets.dim() == 2 else F.one_hot(batch.targets, self.num_classes).float()
        batch.images = lam * batch.images + (1 - lam) * batch.images[perm]
        batch.targets = lam * targets + (1 - lam) * targets[perm]


@dataclass(eq=False)
class FTALMixup(FTAL):
    """FTAL on mixup batches with mixing parameter `alpha` (α = 1: λ uniform, the paper's
    CIFAR-10 setting; α ∈ [0.1, 0.4] its ImageNet range)."""

    name = "ftal_mixup"

    alpha: float = param(1.0, low=0, high=100, low_open=True)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        classifier_of(model, self.name)
        images, labels = attacker_data(ctx, model, self.labels)
        mixup = Mixup(self.alpha, ctx.data.num_classes, seed=ctx.seed)
        fine_tune(ctx, model, images, labels, epochs=self.epochs, lr=self.lr, desc=self.name, callbacks=[mixup])
        return model
