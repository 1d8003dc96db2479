"""The shared model interface."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ImageClassifier(nn.Module):
    """`classifier(features(normalize(x)))` for float images x in [0, 1].

    Subclasses set `self.features` (images → flat feature vector) and `self.classifier`
    (an `nn.Linear`, the model's last layer).
    """

    features: nn.Module
    classifier: nn.Linear

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    def reset_classifier(self, num_classes: int | None = None) -> None:
        """Replace the last layer by a freshly initialised one (RTLL, RTAL, transfer learning)."""
        old = self.classifier
        self.classifier = nn.Linear(old.in_features, num_classes or old.out_features).to(old.weight.device)


def unwrap(model: nn.Module) -> nn.Module:
    """The classifier inside wrappers (DAWN's, input preprocessing), which keep it as `.model`."""
    while not isinstance(model, ImageClassifier) and isinstance(getattr(model, "model", None), nn.Module):
        model = model.model
    return model
