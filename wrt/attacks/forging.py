"""Ambiguity (forging) attack: a false ownership claim on the stolen model, without training data.

Instead of removing the owner's watermark, the attacker presents a counterfeit key in the
scheme's own format that the stolen model passes, so ownership becomes ambiguous (Liu et al.,
Greedy Residuals, §4.4 and Fig. 5: 200 random forged signatures; Fan et al., NeurIPS 2019, for
weight-projection schemes). Each scheme says how a counterfeit is made (`Scheme.forge`):
trigger sets are noise images labelled by the stolen model, projection schemes read the claimed
bits off the model through a fresh projection, Greedy Residuals can only sign a claim of its
own and hope that the hash of the signature matches.

A counterfeit verifies when its watermark accuracy reaches the level at which an unmarked model
matches a key by chance with probability ≤ p: the smallest k/N with P[Binom(N, q) ≥ k] ≤ p,
q = 1/2 for bit keys and 1/C for trigger labels of C classes (DeepSigns' Eq. 4); schemes whose
verification is exact (a signature's hash) need every bit; for a correlation score (DeepMarks,
`match_rate` false) the level c with P[cos(u, g) ≥ c] ≤ p for a random direction g in R^N
(`correlation_level`). The surrogate is the stolen model,
unchanged; the run JSON's `attack.result` records the attempts and whether a claim succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from wrt.attacks.base import Attack, AttackContext
from wrt.params import param
from wrt.stats import ThresholdError, binomial_threshold


def claim_level(key_size: int, chance: float, p: float) -> float:
    """Smallest k/N with P[Binom(N, chance) ≥ k] ≤ p (the analyzer's binomial threshold; 1.0
    when even N matches are likelier)."""
    try:
        return binomial_threshold(key_size, p, chance)
    except ThresholdError:
        return 1.0


def correlation_level(key_size: int, p: float) -> float:
    """Smallest c with P[cos(u, g) ≥ c] ≤ p for a fixed u and a uniformly random direction g in
    R^N: cos² ~ Beta(1/2, (N − 1)/2), so P[cos ≥ c] = P[cos² ≥ c²] / 2."""
    return float(np.sqrt(stats.beta.ppf(max(0.0, 1 - 2 * p), 0.5, (key_size - 1) / 2))) if key_size > 1 else 1.0


@dataclass(eq=False)
class Forging(Attack):
    category = "ambiguity"

    attempts: int = param(200, low=1)
    p: float = param(0.05, low=0, high=1, low_open=True, high_open=True)

    def __call__(self, model, ctx: AttackContext):
        scheme, data = ctx.scheme, ctx.data
        accuracies, level = [], None
        for attempt in range(self.attempts):
            generator = torch.Generator().manual_seed(1_000_003 * (ctx.seed + 1) + attempt)
            try:
                key = scheme.forge(model, data.image_shape, data.num_classes, generator, ctx.trainer)
            except NotImplementedError as e:
                ctx.report(applicable=False, reason=str(e))
                return model
            if level is None:
                chance = 0.5 if scheme.bits else 1.0 / data.num_classes
                size = scheme.key_length(key)
                level = (1.0 if scheme.exact_verification else claim_level(size, chance, self.p)
                         if scheme.match_rate else correlation_level(size, self.p))
            accuracies.append(scheme.extract(model, key, ctx.trainer))
        verified = sum(acc >= level for acc in accuracies)
        ctx.report(applicable=True, attempts=self.attempts, key_size=size, claim_level=level, p=self.p,
                   verified=verified, best_wm_acc=max(accuracies), mean_wm_acc=float(np.mean(accuracies)),
                   false_claim=verified > 0)
        return model
