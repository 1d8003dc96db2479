"""Neural Cleanse (Wang et al., IEEE S&P 2019; SoK §V-B, Appendix XIII-B).

1. Reverse-engineering: for every class t, a trigger — a mask m ∈ [0, 1]^{H×W} and a pattern
   p ∈ [0, 1]^{C×H×W}, stamped as x' = (1 − m)·x + m·p — is optimised with Adam on the
   attacker's images so that the frozen model classifies x' as t, with an L1 penalty λ·|m|₁
   (λ = 0.01) that looks for the smallest such trigger.
2. Detection: a class whose trigger is much smaller than the others' is backdoored. With the
   median absolute deviation (MAD, ×1.4826 for consistency), the anomaly index of class t is
   (median − |m_t|) / MAD; classes with an index > 2 are flagged (a detection). If none is
   flagged, the attacker — who knows the model is watermarked — still removes the smallest
   trigger, as the SoK's toolbox does (its `neural_cleanse_partial_*` configs never apply the
   anomaly test and always take the smallest trigger); the record keeps the two apart:
   `flagged` (detected, possibly empty) and `removed` (the classes whose triggers step 3 uses).
3. Removal, either
   - `unlearning`: fine-tune on the attacker's images, 20 % of them stamped with the
     removed classes' triggers but keeping their own (source-predicted) labels, so the model
     unlearns the trigger → target mapping (lr 1e-3 … 1e-2); or
   - `pruning`: prune the fraction ρ (0.8 … 0.99) of the last convolutional layer's channels
     whose activation rises most under the triggers, then fine-tune to regain accuracy.

Reverse-engineering runs `reverse_epochs` (budget-scaled) over a seeded subset of
`reverse_samples` attacker images per class; removal fine-tunes for `epochs` (5, as in the
SoK's WRT configs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext, FineTuningParams
from wrt.attacks.toolkit import (attacker_data, classifier_of, fine_tune, frozen, last_conv_stage,
                                 mean_activations, prune_neurons)
from wrt.data.loader import to_float
from wrt.params import EPOCHS, param
from wrt.train import LossTerm

METHODS = ("unlearning", "pruning")


class Trigger(nn.Module):
    """A mask/pattern trigger in front of a frozen classifier (kept in eval mode)."""

    def __init__(self, model: nn.Module, shape: tuple[int, int, int]):
        super().__init__()
        channels, height, width = shape
        self.model = model
        self.mask_logit = nn.Parameter(torch.full((1, height, width), -2.0))
        self.pattern_logit = nn.Parameter(torch.zeros(channels, height, width))

    def mask(self) -> torch.Tensor:
        return torch.sigmoid(self.mask_logit)

    def stamp(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mask().to(x.device, x.dtype)
        return (1 - m) * x + m * torch.sigmoid(self.pattern_logit).to(x.device, x.dtype)

    def forward(self, x):
        return self.model(self.stamp(x))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.model is not None:
            self.model.eval()
        return self


def reverse_engineer(ctx: AttackContext, net: nn.Module, images: torch.Tensor, target: int, *,
                     epochs: float, lam: float, lr: float = 0.1) -> Trigger:
    """The smallest trigger found that sends `images` to class `target`."""
    trigger = Trigger(net, tuple(images.shape[1:]))
    targets = torch.full((len(images),), target, dtype=torch.long)
    l1 = LossTerm(lambda model, batch, logits: lam * model.mask().sum())
    with frozen(net):
        ctx.trainer.fit(trigger, images, targets, epochs=epochs, lr=lr,
                        optimizer=partial(torch.optim.Adam, betas=(0.5, 0.9)),
                        params=[trigger.mask_logit, trigger.pattern_logit], callbacks=[l1],
                        desc=f"reverse trigger {target}")
    trigger.model = None  # keep only the mask and pattern
    return trigger.eval()


def anomaly_indices(norms: torch.Tensor) -> torch.Tensor:
    """Neural Cleanse's anomaly index of each class' trigger norm (small norms → large index)."""
    median = norms.median()
    mad = 1.4826 * (norms - median).abs().median()
    return (median - norms) / mad.clamp_min(1e-12)


def detect_triggers(ctx: AttackContext, net: nn.Module, images: torch.Tensor, *, epochs: float,
                    samples: int, lam: float) -> tuple[list[Trigger], dict]:
    """Reverse-engineer a trigger for every class; return the triggers to remove and the record:
    `flagged` (anomaly index > 2, empty when nothing is detected), `removed` (the flagged
    classes, else the smallest trigger's class) and `detected` (whether any class was flagged)."""
    generator = ctx.generator()
    subset = images[torch.randperm(len(images), generator=generator)[:samples]]
    subset = to_float(subset)
    triggers = [reverse_engineer(ctx, net, subset, t, epochs=epochs, lam=lam)
                for t in range(net.num_classes)]
    norms = torch.stack([t.mask().detach().sum() for t in triggers])
    index = anomaly_indices(norms)
    flagged = [int(i) for i in torch.nonzero(index > 2).flatten()]
    removed = flagged or [int(norms.argmin())]
    info = {"mask_l1": norms.tolist(), "anomaly_index": index.tolist(), "flagged": flagged,
            "removed": removed, "detected": bool(flagged)}
    return [triggers[i] for i in removed], info


def stamp_fraction(images: torch.Tensor, triggers: list[Trigger], fraction: float,
                   generator: torch.Generator) -> torch.Tensor:
    """Float copies of `images` with a random `fraction` stamped, cycling through `triggers`."""
    x = to_float(images)
    chosen = torch.randperm(len(x), generator=generator)[:int(round(fraction * len(x)))]
    with torch.no_grad():
        for i, trigger in enumerate(triggers):
            part = chosen[i::len(triggers)]
            x[part] = trigger.stamp(x[part]).cpu()
    return x


@dataclass(eq=False)
class TriggerReversalParams:
    """Reverse-engineering triggers (Wang et al. 2019): `reverse_epochs` over `reverse_samples`
    images with mask-norm weight `lam`; a `trigger_fraction` of the unlearning data is stamped."""

    trigger_fraction: float = param(0.2, low=0, high=1, low_open=True)
    reverse_epochs: float = param(4, **EPOCHS)
    reverse_samples: int = param(2000, low=1)
    lam: float = param(0.01, low=0, high=100)


@dataclass(eq=False)
class NeuralCleanse(TriggerReversalParams, FineTuningParams, Attack):
    category = "model_modification"
    paper_epochs = True  # a Table V row (budget.paper_epoch_scale)

    method: str = param("unlearning", choices=METHODS)
    rate: float = param(0.9, low=0, high=1, low_open=True, high_open=True)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "neural_cleanse")
        images, targets = attacker_data(ctx, model, "queried")
        triggers, detection = detect_triggers(ctx, net, images, epochs=self.reverse_epochs,
                                              samples=self.reverse_samples, lam=self.lam)
        ctx.report(detection=detection)
        generator = ctx.generator()
        if self.method == "unlearning":
            train_x = stamp_fraction(images, triggers, self.trigger_fraction, generator)
        else:
            device = next(net.parameters()).device
            _, stage = last_conv_stage(net, to_float(images[:2]).to(device), "neural_cleanse")
            sample = images[torch.randperm(len(images), generator=generator)[:self.reverse_samples]]
            (clean,) = mean_activations(net, [stage], sample, ctx.trainer)
            rise = torch.zeros_like(clean)
            for trigger in triggers:
                (stamped,) = mean_activations(net, [stage], sample, ctx.trainer, transform=trigger.stamp)
                rise += stamped - clean
            pruned = torch.zeros(len(rise), dtype=torch.bool)
            pruned[rise.argsort(descending=True)[:int(round(self.rate * len(rise)))]] = True
            prune_neurons(stage, pruned)
            train_x = images
        fine_tune(ctx, model, train_x, targets, epochs=self.epochs, lr=self.lr, desc="neural_cleanse")
        return model
