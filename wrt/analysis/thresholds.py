"""Decision thresholds θ per (setting, scheme) from unmarked ("null") models (SoK §VII-A, Appendix XV).

θ is the watermark accuracy an unmarked model reaches or exceeds with probability at most p. A null run
(`role=null`) measures many key draws on one unmarked model (`null.wm_accs`, its own key first; older runs
have one key, `marked.wm_acc`); the scores of all keys on all null models of a scheme are pooled. Three
estimates are computed from them:

* empirical: the (1 − p) quantile of the pooled null scores (linear interpolation);
* normal:    mean + z_{1−p} · std (sample std), the normal fit the SoK uses (§VII-A);
* binomial:  the exact chance-match bound, the smallest k/N with P[Binom(N, q) ≥ k] ≤ p for a key of N
             entries that an unmarked model matches by chance with probability q each: q = 1/2 for bit-string
             keys (DeepSigns' Eq. 4), q = 1/C for trigger-set keys on a C-class task (`num_classes`).

Method `sok` (the default) is the SoK's: the normal fit once there are at least max(min_null_runs, ⌈1/p⌉)
null models (20 at p = 0.05; Appendix XV), never below the binomial chance bound when there is one; with
fewer null models it falls back to `auto`. Method `auto` uses the largest estimate available, so θ never
falls below what the null models show nor below chance: bit keys always have the binomial bound (plus
empirical/normal when there are enough null runs); trigger-set keys need `min_null_runs` null runs, and the
binomial bound (when `num_classes` is known) is their floor — unmarked models that never match the key's
labels still get θ above chance.

For Content, Noise, Frontier Stitching and Blackmarks (`MAX_OVER_CONFIGS`) the SoK observed that the
parameters change θ and reports the largest θ over the scheme's configurations (§VII-A, Appendix XV): θ is
computed per configuration (`scheme_label`) from that configuration's null runs, and the largest one is kept,
with its own interval and estimates (`threshold_config` names it, `n_configs` counts the configurations that
had a θ; one without enough null runs for θ is left out). The other schemes pool the null runs of all their
configurations into one θ (`threshold_config`: `pooled`; `n_configs`: the configurations of those null runs).

θ comes with a 95 % interval (`threshold_lo`, `threshold_hi`): a bootstrap over the null MODELS (each
resampled model brings all its key scores: keys measured on one model are correlated) for the empirical and
normal estimates, θ itself for the exact binomial bound. Table V marks a cell whose watermark accuracy falls
inside it as undecided.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wrt.stats import ThresholdError, binomial_threshold, empirical_threshold, normal_threshold

METHODS = ("sok", "auto", "empirical", "normal", "binomial")
# schemes whose θ is the largest over their configurations (SoK §VII-A: "the choice of parameters affects their
# decision thresholds. In these cases, Table IV shows the largest computed decision threshold")
MAX_OVER_CONFIGS = ("content", "noise", "frontier_stitching", "blackmarks")
POOLED = "pooled"


ESTIMATORS = {"empirical": empirical_threshold, "normal": normal_threshold}


def threshold_interval(null_scores, p: float, method: str, n_resamples: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of an `empirical` or `normal` θ: θ is an estimate, and a watermark
    accuracy inside this interval cannot be told apart from θ (Table V's undecided cells). `null_scores` holds
    one entry per null model: its key scores (a sequence) or its one score; the bootstrap resamples models,
    each with all its scores, since the keys measured on one model are not independent."""
    models = [np.atleast_1d(np.asarray(scores, dtype=float)) for scores in null_scores]
    if len(models) < 2:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    estimates = [ESTIMATORS[method](np.concatenate([models[i] for i in rng.integers(len(models), size=len(models))]),
                                    p) for _ in range(n_resamples)]
    alpha = (1.0 - level) / 2.0
    return float(np.nanquantile(estimates, alpha)), float(np.nanquantile(estimates, 1.0 - alpha))


def _chance(group: pd.DataFrame, bits: bool) -> float:
    """Probability that an unmarked model matches one key entry: 1/2 per bit, 1/C per trigger label (the
    fewest classes when several; NaN when no run says how many classes there are)."""
    if bits:
        return 0.5
    classes = group["num_classes"].dropna() if "num_classes" in group else []
    return 1.0 / min(int(c) for c in classes) if len(classes) else np.nan


def null_scores_of(group: pd.DataFrame) -> list[np.ndarray]:
    """Per null (unmarked) model, the watermark accuracies its key draws reach: `null.wm_accs`, or the one
    key's `marked.wm_acc` of a run that measured one key."""
    nulls = group[group["role"] == "null"]
    draws = nulls["null.wm_accs"] if "null.wm_accs" in nulls else pd.Series(None, index=nulls.index, dtype=object)
    return [np.asarray(d if isinstance(d, list) and d else [one], dtype=float)
            for d, one in zip(draws, nulls["marked.wm_acc"])]


def _estimates(group: pd.DataFrame, p: float, min_null_runs: int) -> dict:
    models = null_scores_of(group)
    null_accs = pd.Series(np.concatenate(models) if models else [], dtype=float)
    bits = bool(group["scheme.bits"].fillna(False).any())
    key_sizes = sorted({int(k) for k in group["scheme.key_size"].dropna()})
    enough = len(models) >= max(min_null_runs, 1)
    # a score that is no rate of independent matches (scheme.match_rate false) has no binomial bound
    scores = "scheme.match_rate" in group and bool(group["scheme.match_rate"].eq(False).any())
    chance = np.nan if scores else _chance(group, bits)
    est = {
        "n_null": len(models),
        "n_scores": len(null_accs),
        "sok_ready": len(models) >= max(min_null_runs, int(np.ceil(1.0 / p - 1e-9))),
        "bits": bits,
        "key_size": ",".join(map(str, key_sizes)),
        "chance": chance,
        "null_mean": float(null_accs.mean()) if len(null_accs) else np.nan,
        "null_std": float(null_accs.std(ddof=1)) if len(null_accs) > 1 else np.nan,
        "empirical": empirical_threshold(null_accs, p) if enough else np.nan,
        "normal": normal_threshold(null_accs, p) if enough and len(null_accs) > 1 else np.nan,
        # the shortest key gives the largest (most conservative) bound
        "binomial": np.nan,
        "binomial_error": "",
    }
    if key_sizes and not np.isnan(chance):
        try:
            est["binomial"] = binomial_threshold(key_sizes[0], p, chance)
        except ThresholdError as exc:
            est["binomial_error"] = str(exc)
    return est


def _shortage(est: dict, method: str, min_null_runs: int, setting: str, scheme: str) -> str:
    if method == "binomial" or (est["bits"] and est["binomial_error"]):
        reason = est["binomial_error"] or ("needs a bit-string key (scheme.bits true) or the runs' num_classes, "
                                           "and scheme.key_size")
        return f"{scheme} on {setting}: binomial bound: {reason}"
    needed = max(min_null_runs, 2 if method == "normal" else 1)
    return f"{scheme} on {setting}: {est['n_null']} null run(s), {needed} needed (min_null_runs={min_null_runs})"


def _choose(est: dict, method: str) -> tuple[str, float] | None:
    if method == "sok" and est["sok_ready"] and not np.isnan(est["normal"]):
        if not np.isnan(est["binomial"]) and est["binomial"] > est["normal"]:
            return ("sok: binomial (floor above normal)", est["binomial"])
        return ("sok: normal", est["normal"])
    if method in ("sok", "auto"):
        available = {m: est[m] for m in ("binomial", "empirical", "normal") if not np.isnan(est[m])}
        if not available or not (est["bits"] or "empirical" in available):  # chance alone is only a floor
            return None
        used = max(available, key=available.get)
        return (f"auto: {used} (largest of {', '.join(available)})", available[used])
    return (method, est[method]) if not np.isnan(est[method]) else None


def _theta(group: pd.DataFrame, p: float, method: str, min_null_runs: int, setting: str, scheme: str,
           config: str) -> dict | str:
    """θ with its estimates and interval from one group of runs (a scheme, or one of its configurations), or
    why there is none."""
    est = _estimates(group, p, min_null_runs)
    name = scheme if config == POOLED else config
    chosen = _choose(est, method)
    if chosen is None:
        return _shortage(est, method, min_null_runs, setting, name)
    used, theta = chosen
    base = used.split(": ")[-1].split(" ")[0]
    lo, hi = (threshold_interval(null_scores_of(group), p, base) if base in ESTIMATORS
              else (theta, theta))  # the binomial bound is exact
    if used.startswith("sok") and not np.isnan(est["binomial"]):  # the floor holds for the interval too
        lo, hi = max(lo, est["binomial"]), max(hi, est["binomial"])
    if theta >= 1.0:
        return (f"{name} on {setting}: θ={theta:.4f} ≥ 1 ({used}); unmarked models reach full watermark "
                f"accuracy, so the watermark cannot be verified")
    est.pop("binomial_error"), est.pop("sok_ready")
    return {**est, "method": used, "threshold": theta, "threshold_lo": lo, "threshold_hi": hi,
            "threshold_from": setting, "threshold_config": config}


def decision_thresholds(runs: pd.DataFrame, p: float = 0.05, method: str = "sok",
                        min_null_runs: int = 5, thresholds_from: str | None = None,
                        skipped: dict | None = None) -> pd.DataFrame:
    """One row per (setting, scheme) with all three estimates, the method used and θ. A setting (dataset,
    model, budget; `wrt.analysis.tables.add_settings`; the dataset when runs have no `setting`) has its own
    null runs and θ.

    A (setting, scheme) whose θ cannot be determined from its own runs takes the θ of `thresholds_from` (a
    setting name) when given (`threshold_from` says where θ came from); otherwise ThresholdError names every
    such (setting, scheme) with how many null runs exist, how many are needed and which other setting has
    them. With `skipped` (a dict), those go into it instead, (setting, scheme) -> why, and the others' θ are
    returned (ThresholdError only when no (setting, scheme) has a θ).
    """
    if method not in METHODS:
        raise ThresholdError(f"unknown threshold method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0.0 < p < 1.0:
        raise ThresholdError(f"p must lie in (0, 1), got {p}")
    ok = runs[runs["status"] == "ok"]
    ok = ok if "setting" in ok else ok.assign(setting=ok["dataset"])
    if thresholds_from is not None and thresholds_from not in set(ok["setting"]):
        raise ThresholdError(f"thresholds_from={thresholds_from} is not a setting of these runs; settings: "
                             f"{', '.join(sorted(set(ok['setting'])))}")
    own, problems = {}, {}
    for (setting, dataset, scheme), group in ok.groupby(["setting", "dataset", "scheme.name"], sort=True):
        labels = group["scheme_label"].fillna(scheme) if "scheme_label" in group else pd.Series(scheme, group.index)
        if scheme in MAX_OVER_CONFIGS:
            configs = [_theta(g, p, method, min_null_runs, setting, scheme, label)
                       for label, g in group.groupby(labels, sort=True)]
            found = [c for c in configs if isinstance(c, dict)]
            if found:
                row = max(found, key=lambda c: c["threshold"])
                own[(setting, scheme)] = {"setting": setting, "dataset": dataset, "scheme": scheme, **row,
                                          "n_configs": len(found)}
            else:
                problems[(setting, scheme)] = "; ".join(configs)
            continue
        result = _theta(group, p, method, min_null_runs, setting, scheme, POOLED)
        if isinstance(result, str):
            problems[(setting, scheme)] = result
        else:
            own[(setting, scheme)] = {"setting": setting, "dataset": dataset, "scheme": scheme, **result,
                                      "n_configs": labels[group["role"] == "null"].nunique()}
    rows = dict(own)
    for setting, scheme in list(problems):
        donor = own.get((thresholds_from, scheme))
        if donor is not None:
            rows[(setting, scheme)] = {**donor, "setting": setting, "dataset": setting_dataset(ok, setting)}
            del problems[(setting, scheme)]
        else:
            others = sorted(s for s, sch in own if sch == scheme and s != setting)
            if others:
                problems[(setting, scheme)] += (f" (setting {others[0]} has a θ for {scheme}: add "
                                                f"thresholds_from={others[0]} to use it)")
    if problems and skipped is not None and rows:
        skipped.update(problems)
        problems = {}
    if problems:
        raise ThresholdError("cannot determine decision thresholds (p={}): {}. Add role=null runs for these "
                             "schemes or lower min_null_runs.".format(p, "; ".join(problems.values())))
    return pd.DataFrame([rows[key] for key in sorted(rows)])


def setting_dataset(runs: pd.DataFrame, setting: str) -> str:
    return runs.loc[runs["setting"] == setting, "dataset"].iloc[0]
