"""Verification quality: ROC curves of the watermark accuracy as a test "marked vs unmarked" (numpy only).

Negatives are unmarked models tested with keys (every key score of every null run, `null.wm_accs`, as for θ:
`wrt.analysis.thresholds.null_scores_of`); positives are the marked models or the
surrogates an attack made of them (`surrogate.wm_acc`): does verification still fire on the attacked model?
A model is declared marked when its watermark accuracy is ≥ the threshold t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wrt.analysis.thresholds import null_scores_of

FPR_LEVELS = {"tpr_at_1fpr": 0.01, "tpr_at_5fpr": 0.05}


def roc_curve(pos, neg) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at t = +inf and at every distinct score t, descending: a model is declared marked when
    its score is ≥ t, so tied scores move together; the curve runs from (0, 0) to (1, 1)."""
    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    thresholds = np.r_[np.inf, np.unique(np.r_[pos, neg])[::-1]]
    tpr = np.array([(pos >= t).mean() for t in thresholds])
    fpr = np.array([(neg >= t).mean() for t in thresholds])
    return fpr, tpr


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; equals P[pos > neg] + ½ P[pos = neg])."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """The largest TPR whose FPR ≤ level (with n negatives the FPR moves in steps of 1/n)."""
    return float(tpr[fpr <= level + 1e-12].max())


def _positives(marked: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(kind, scores): the marked models (one per seed and scheme config) and the surrogates of every
    attack config and of all attacks together (attack `none` leaves the marked model, so it is left out)."""
    models = marked.drop_duplicates(["model", "budget", "seed", "scheme_label"])
    attacked = marked[marked["attack.name"] != "none"]
    kinds = [("marked", models["marked.wm_acc"])]
    if len(attacked):
        kinds.append(("surrogate:all", attacked["surrogate.wm_acc"]))
    kinds += [(f"surrogate:{label}", g["surrogate.wm_acc"]) for label, g in attacked.groupby("attack_label", sort=True)]
    return kinds


def few_negatives_note(n_neg: int) -> str:
    """Says which TPR@FPR columns read the TPR at FPR 0 because 1/n_neg exceeds their level."""
    coarse = [f"TPR@{level:.0%}FPR" for level in FPR_LEVELS.values() if 1.0 / n_neg > level]
    if not coarse:
        return ""
    return f"{n_neg} negatives: FPR steps of {1.0 / n_neg:.0%}, so {' and '.join(coarse)} read the TPR at FPR 0"


def roc_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """One row per (setting, scheme, positives kind) with AUC and TPR at 1 % and 5 % FPR, and the curves
    {(setting, scheme, kind): (fpr, tpr)}. Schemes without null runs have no negatives and no row."""
    ok = runs[runs["status"] == "ok"]
    ok = ok if "setting" in ok else ok.assign(setting=ok["dataset"])
    rows, curves = [], {}
    for (setting, dataset, scheme), group in ok.groupby(["setting", "dataset", "scheme.name"], sort=True):
        models = null_scores_of(group)
        neg = np.concatenate(models) if models else np.array([])
        marked = group[group["role"] == "marked"]
        if not neg.size or marked.empty:
            continue
        for kind, pos in _positives(marked):
            fpr, tpr = roc_curve(pos, neg)
            curves[(setting, scheme, kind)] = (fpr, tpr)
            rows.append({"setting": setting, "dataset": dataset, "scheme": scheme, "positives": kind, "n_pos": len(pos),
                         "n_neg": len(neg), "auc": auc(fpr, tpr),
                         **{name: tpr_at_fpr(fpr, tpr, level) for name, level in FPR_LEVELS.items()},
                         "note": few_negatives_note(len(neg))})
    return pd.DataFrame(rows), curves
