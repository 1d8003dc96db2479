"""The attack protocol.

An attack takes the (marked) model and an `AttackContext` and returns the surrogate model.
Input-preprocessing attacks return the model wrapped behind their preprocessing. The
attacker's capabilities (SoK §IV, Table III) are what the context offers: the attacker's third
of the labeled training data, the whole training set unlabeled (model extraction), the trainer,
and a factory for fresh models of the source architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from wrt.data import Dataset
from wrt.train import Trainer

CATEGORIES = ("none", "input_preprocessing", "model_modification", "model_extraction", "combined", "obfuscation")


@dataclass
class AttackContext:
    data: Dataset
    trainer: Trainer  # fine-tuning trainer (budget-scaled epochs)
    source_trainer: Trainer  # the source model's training setup (retraining from scratch)
    build_model: Callable[[], nn.Module]  # a fresh, untrained model of the source architecture
    scheme: object = None  # the defender's scheme class and parameters (not its key)
    seed: int = 0
    usage: dict = field(default_factory=lambda: {"queries": 0, "labeled_samples": 0,
                                                  "unlabeled_samples": 0})
    store: object = None  # the run's `wrt.store.Store` (caches pretrained models); None: no caching

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + 7919)

    def attacker_labeled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The attacker's labeled third of the training data (recorded in `usage`)."""
        images, labels = self.data.attacker()
        self.usage["labeled_samples"] += len(labels)
        return images, labels

    def query(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Logits of the victim on `images`, counted as queries."""
        self.usage["queries"] += len(images)
        return self.trainer.predict(model, images)


class Attack:
    """Base class: subclasses set `category` and implement `__call__`."""

    category: ClassVar[str] = "none"

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        raise NotImplementedError


class NoAttack(Attack):
    """The identity: the surrogate is the marked model itself."""

    def __call__(self, model, ctx):
        return model
