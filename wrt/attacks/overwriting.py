"""Overwriting (Uchida et al., ICMR 2017; SoK §V-B, Appendix XIII-B; Liu et al. 2021 §4,
"overwriting attacks"): the attacker embeds a second watermark of the same scheme, with the
scheme's parameters but their own key (from their own random generator) and their own data,
into the marked model — to damage the defender's watermark and to be able to claim
ownership too. Works for every scheme that implements `keygen` and `embed`.

The scheme embeds on "the defender's data" of the dataset it is given; the attacker's view
of the data is a `Dataset` whose training set is the attacker's labeled third only
(`defender_fraction = 1`), so `embed` trains on the attacker's data (SoK Table III: labeled).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext
from wrt.data import Dataset
from wrt.models import unwrap
from wrt.schemes.base import Key
from wrt.validation import require


def attacker_view(ctx: AttackContext, model) -> Dataset:
    """The dataset as the attacker has it: its training set is the attacker's labeled third."""
    images, labels = ctx.attacker_labeled(model)
    return dataclasses.replace(ctx.data, train_x=images, train_y=labels, defender_fraction=1.0)


class Overwriting(Attack):
    category = "model_modification"

    def __init__(self):
        self.key: Key | None = None  # the attacker's own key, after the attack

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        scheme = ctx.scheme
        require(scheme is not None and callable(getattr(scheme, "embed", None))
                and callable(getattr(scheme, "keygen", None)), "attack.overwriting",
                type(scheme).__name__, "a scheme with keygen and embed")
        data = attacker_view(ctx, model)
        net = unwrap(model)
        generator = torch.Generator().manual_seed(ctx.seed + 104729)  # the attacker's own randomness
        self.key = scheme.keygen(net, data, generator)
        marked = scheme.embed(net, data, self.key, ctx.trainer)
        return model if marked is net else marked
