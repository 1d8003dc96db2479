"""Adversarial examples in [0, 1] pixel space: FGM (Goodfellow et al. 2015) and PGD (Madry et
al. 2018), used by Frontier Stitching, Blackmarks and adversarial-training attacks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wrt.params import param


@dataclass(eq=False)
class AdversarialParams:
    """PGD examples for adversarial training: L∞ radius `eps`, `step` size and `iterations`, made
    for a `fraction` of the images, each added `repeats` times (Madry et al.; SoK App. XIII-B)."""

    eps: float = param(0.1, low=0, high=1, low_open=True)
    step: float = param(0.01, low=0, high=1, low_open=True)
    iterations: int = param(40, low=1)
    fraction: float = param(0.1, low=0, high=1, low_open=True)
    repeats: int = param(2, low=1)


def _loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x).float(), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, targeted: bool = False) -> torch.Tensor:
    """Fast gradient (sign) method: one step of size `eps` that raises the loss on `y`
    (or, `targeted`, lowers it towards `y`); clipped to [0, 1]."""
    sign = -1.0 if targeted else 1.0
    return (x + sign * eps * _loss_gradient(model, x, y).sign()).clamp(0, 1).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float = 0.01,
        iterations: int = 40, targeted: bool = False, random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent in the L∞ ball of radius `eps` around `x`, clipped to [0, 1]."""
    sign = -1.0 if targeted else 1.0
    adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
        adv = (adv + (2 * noise - 1) * eps).clamp(0, 1)
    for _ in range(iterations):
        adv = adv + sign * step * _loss_gradient(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1).detach()
    return adv


def batched(attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
            **kwargs) -> torch.Tensor:
    """Apply `attack` in batches with the model in eval mode; returns float images on x's device."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [attack(model, x[i:i + batch_size].to(device).float(), y[i:i + batch_size].to(device), **kwargs).to(x.device)
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)
