"""Fine-tuning attacks: FTLL, FTAL, RTLL, RTAL (Uchida et al., ICMR 2017, as used by Lukas et
al., S&P 2022, §V-B and Appendix XIII-B), label smoothing (Szegedy et al. 2016; SoK App.
XIII-B, ε = 0.3) and regularization (Shafieinejad et al. 2021; SoK App. XIII-B: weight decay
0.1 for five epochs, then fine-tuning).

- FTAL fine-tunes all layers, FTLL only the last layer (the rest frozen, BatchNorm statistics
  included); both train on the attacker's ground-truth labels (SoK Table III: labeled data).
- RTAL / RTLL first re-initialise the last layer, then fine-tune all / only the last layer, on
  labels predicted by the source model (the model under attack) for the attacker's images —
  with ground-truth labels of a frozen, unchanged model the gradients would be ~zero.
- Label smoothing fine-tunes all layers on the source's predicted labels mixed with a uniform
  distribution (weight ε).
- Regularization fine-tunes with a strong L2 penalty (weight decay 0.1, two orders of
  magnitude above training), which lowers test accuracy and moves the weights far from
  their origin, then fine-tunes without it to recover accuracy in a different minimum.

Epochs in the configs are the paper's (the WRT configs of Lukas et al.: 5 for FTAL, FTLL,
RTAL and label smoothing, 10 for RTLL); `Trainer.fit` scales them by the budget. The helpers
`attacker_data` and `fine_tune` live in `wrt.attacks.toolkit`.
"""

from __future__ import annotations

from torch import nn

from wrt.attacks.base import Attack, AttackContext
from wrt.attacks.toolkit import attacker_data, classifier_of, fine_tune
from wrt.validation import in_range

class FineTuning(Attack):
    """Fine-tune (FT) or re-initialise and retrain (RT) all layers (AL) or the last layer (LL)."""

    category = "model_modification"
    name = "fine_tuning"
    last_layer_only = False
    reinitialize = False
    labels = "ground_truth"

    def __init__(self, epochs: float = 5, lr: float = 0.01):
        in_range("attack.epochs", epochs, 0, 1000, low_open=True)
        in_range("attack.lr", lr, 0, 1, low_open=True)
        self.epochs, self.lr = epochs, lr

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, self.name)
        images, targets = attacker_data(ctx, model, self.labels)
        if self.reinitialize:
            net.reset_classifier()
        fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr,
                  head_only=self.last_layer_only, desc=self.name)
        return model


class FTLL(FineTuning):
    name, last_layer_only, reinitialize, labels = "ftll", True, False, "ground_truth"


class FTAL(FineTuning):
    name, last_layer_only, reinitialize, labels = "ftal", False, False, "ground_truth"


class RTLL(FineTuning):
    name, last_layer_only, reinitialize, labels = "rtll", True, True, "queried"


class RTAL(FineTuning):
    name, last_layer_only, reinitialize, labels = "rtal", False, True, "queried"


class LabelSmoothing(Attack):
    """Fine-tune all layers on the source's predicted labels smoothed with weight ε."""

    category = "model_modification"

    def __init__(self, epsilon: float = 0.3, epochs: float = 5, lr: float = 0.01):
        in_range("attack.epsilon", epsilon, 0, 1, low_open=True, high_open=True)
        in_range("attack.epochs", epochs, 0, 1000, low_open=True)
        in_range("attack.lr", lr, 0, 1, low_open=True)
        self.epsilon, self.epochs, self.lr = epsilon, epochs, lr

    def __call__(self, model, ctx):
        classifier_of(model, "label_smoothing")
        images, targets = attacker_data(ctx, model, "queried")
        fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr,
                  label_smoothing=self.epsilon, desc="label_smoothing")
        return model


class Regularization(Attack):
    """Phase 1: fine-tune with weight decay `weight_decay` for `epochs`; phase 2: fine-tune
    without weight decay for `finetune_epochs` to regain test accuracy. Both on the source's
    predicted labels (domain data, SoK Table III)."""

    category = "model_modification"

    def __init__(self, weight_decay: float = 0.1, epochs: float = 5, finetune_epochs: float = 5,
                 lr: float = 0.01):
        in_range("attack.weight_decay", weight_decay, 0, 10, low_open=True)
        in_range("attack.epochs", epochs, 0, 1000, low_open=True)
        in_range("attack.finetune_epochs", finetune_epochs, 0, 1000, low_open=True)
        in_range("attack.lr", lr, 0, 1, low_open=True)
        self.weight_decay, self.epochs, self.finetune_epochs, self.lr = weight_decay, epochs, finetune_epochs, lr

    def __call__(self, model, ctx):
        classifier_of(model, "regularization")
        images, targets = attacker_data(ctx, model, "queried")
        fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr,
                  weight_decay=self.weight_decay, desc="regularize")
        fine_tune(ctx, model, images, targets, epochs=self.finetune_epochs, lr=self.lr,
                  weight_decay=0.0, desc="regularization finetune")
        return model
