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

from dataclasses import dataclass

from torch import nn

from wrt.attacks.base import Attack, AttackContext, FineTuningParams
from wrt.attacks.toolkit import attacker_data, classifier_of, fine_tune
from wrt.params import EPOCHS, param

@dataclass(eq=False)
class FineTuning(FineTuningParams, Attack):
    """Fine-tune (FT) or re-initialise and retrain (RT) all layers (AL) or the last layer (LL)."""

    category = "model_modification"
    paper_epochs = True  # fine-tunes on the attacker's third only
    name = "fine_tuning"
    last_layer_only = False
    reinitialize = False
    labels = "ground_truth"

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


@dataclass(eq=False)
class LabelSmoothing(FineTuningParams, Attack):
    """Fine-tune all layers on the source's predicted labels smoothed with weight ε."""

    category = "model_modification"
    paper_epochs = True  # fine-tunes on the attacker's third only

    epsilon: float = param(0.3, low=0, high=1, low_open=True, high_open=True)

    def __call__(self, model, ctx):
        classifier_of(model, "label_smoothing")
        images, targets = attacker_data(ctx, model, "queried")
        fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr,
                  label_smoothing=self.epsilon, desc="label_smoothing")
        return model


@dataclass(eq=False)
class Regularization(FineTuningParams, Attack):
    """Phase 1: fine-tune with weight decay `weight_decay` for `epochs`; phase 2: fine-tune
    without weight decay for `finetune_epochs` to regain test accuracy. Both on the source's
    predicted labels (domain data, SoK Table III)."""

    category = "model_modification"
    paper_epochs = True  # fine-tunes on the attacker's third only

    weight_decay: float = param(0.1, low=0, high=10, low_open=True)
    finetune_epochs: float = param(5, **EPOCHS)

    def __call__(self, model, ctx):
        classifier_of(model, "regularization")
        images, targets = attacker_data(ctx, model, "queried")
        fine_tune(ctx, model, images, targets, epochs=self.epochs, lr=self.lr,
                  weight_decay=self.weight_decay, desc="regularize")
        fine_tune(ctx, model, images, targets, epochs=self.finetune_epochs, lr=self.lr,
                  weight_decay=0.0, desc="regularization finetune")
        return model
