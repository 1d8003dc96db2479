"""Statistics of watermark accuracy under chance (SoK §VII-A; DeepSigns' Eq. 4): the decision thresholds
of the analyzer (`wrt.analysis.thresholds`) and the claim level of the forging attack
(`wrt.attacks.forging`) share them."""

from __future__ import annotations

import numpy as np
from scipy import stats


class ThresholdError(Exception):
    """A decision threshold cannot be determined from the runs at hand."""


def empirical_threshold(null_wm_accs, p: float) -> float:
    """(1 − p) quantile of the null watermark accuracies."""
    return float(np.quantile(np.asarray(null_wm_accs, dtype=float), 1.0 - p))


def normal_threshold(null_wm_accs, p: float) -> float:
    """mean + z_{1−p} · std of a normal fit to the null watermark accuracies (SoK §VII-A)."""
    values = np.asarray(null_wm_accs, dtype=float)
    return float(values.mean() + stats.norm.ppf(1.0 - p) * values.std(ddof=1))


def binomial_threshold(key_size: int, p: float, chance: float = 0.5) -> float:
    """Smallest k/N with P[Binom(N, chance) ≥ k] ≤ p: a model that matches each of the N key entries by
    chance (a random bit: 1/2; a trigger label on a C-class task: 1/C) matches ≥ k of them w.p. ≤ p."""
    ks = np.arange(key_size + 1)
    tail = stats.binom.sf(ks - 1, key_size, chance)  # P[X ≥ k]
    feasible = ks[tail <= p]
    if feasible.size == 0:
        raise ThresholdError(f"a key of {key_size} entries is too short: even all of them matching by chance "
                             f"has probability {chance ** key_size:.3g} > p={p}")
    return float(feasible[0] / key_size)
