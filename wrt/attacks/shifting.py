"""Weight shifting (Lukas et al., S&P 2022, §V-B and Appendix XIII-B, Eq. 7), an adaptive
attack against parameter-encoding schemes (Uchida, DeepMarks).

Every convolutional layer's filters W_1..W_n are shifted towards the inverse of their mean
and perturbed with Gaussian noise,

    S(W; λ1, λ2)_i = W_i − (λ1 / n) Σ_j W_j − λ2 · A_i,

where A_i is zero-mean normal noise of W_i's shape with the variance of all the layer's
filter weights; then the model is fine-tuned (10 epochs at paper budget) on the labels the
source model predicts for the attacker's images to regain test accuracy. CIFAR-10 setting:
λ1 = 1.5, λ2 = 1.0 (ImageNet: λ1 = 1.3, λ2 = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext, FineTuningParams
from wrt.attacks.toolkit import attacker_data, classifier_of, fine_tune
from wrt.params import EPOCHS, param
from wrt.validation import require


@torch.no_grad()
def shift_filters_(weight: torch.Tensor, lambda1: float, lambda2: float, generator: torch.Generator) -> None:
    """Apply Eq. 7 in place to a conv weight [n, c, h, w] (filters along dim 0)."""
    noise = torch.randn(weight.shape, generator=generator).to(weight.device, weight.dtype)
    mean = weight.mean(0, keepdim=True)
    weight.sub_(lambda1 * mean + lambda2 * weight.std() * noise)


@dataclass(eq=False)
class WeightShifting(FineTuningParams, Attack):
    category = "model_modification"
    paper_epochs = True  # fine-tunes on the attacker's third only

    lambda1: float = param(1.5, low=0, high=10)
    lambda2: float = param(1.0, low=0, high=10)
    epochs: float = param(10, **EPOCHS)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "weight_shifting")
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        require(bool(convs), "attack.weight_shifting", type(net).__name__,
                "a model with convolutional layers")
        images, targets = attacker_data(ctx, model, "queried")
        generator = ctx.generator()
        for conv in convs:
            shift_filters_(conv.weight, self.lambda1, self.lambda2, generator)
        fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr, desc="weight_shifting")
        return model
