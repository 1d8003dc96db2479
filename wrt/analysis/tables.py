"""Per-config outcomes (seed means with bootstrap CIs) and the SoK's tables (§VIII, Tables IV and V).

An *outcome* is one (setting, scheme config, attack config) cell: its runs over seeds are averaged and the
success criterion and payoff are applied to the means.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wrt.analysis import game
from wrt.analysis.thresholds import null_scores_of
from wrt.record import FLOAT32_SLACK

CATEGORY_ORDER = ["input_preprocessing", "model_modification", "model_extraction", "obfuscation", "combined",
                  "ambiguity"]
CATEGORY_ABBREV = {"input_preprocessing": "IP", "model_modification": "MM", "model_extraction": "ME",
                   "obfuscation": "OB", "combined": "CO", "ambiguity": "AM"}
AMBIGUITY = "ambiguity"  # forging attacks: they leave the model unchanged and forge a claim (wrt.analysis.forgery)
ROBUST, REMOVED, NOT_RUN, ONLY_FAILED, SEEDS_DISAGREE = "✓", "✗", "–", "!", "±"
NOT_EMBEDDED = "n/e"  # no config of the scheme verifies on a well-trained marked model: no defender strategy
UNDECIDED = "?"  # the equilibrium's surrogate wm acc lies inside θ's 95 % interval
# an expected run is missing, or a failed run's payoff could change the mark (wrt.analysis.grid): never ✓ or ✗
INCOMPLETE = "inc"
MARKED_ROW = "marked wm acc (mean)"  # the robustness table's first row per setting
FAST, MEDIUM = 0.25, 0.75  # attack-time / training-time class bounds (SoK §IV)
MEASURES = {  # outcome column prefix -> run column
    "marked_wm_acc": "marked.wm_acc",
    "marked_test_acc": "marked.test_acc",
    "surrogate_wm_acc": "surrogate.wm_acc",
    "rescaled_wm_acc": "rescaled_wm_acc",
    "stealing_loss": "stealing_loss",
    "surrogate_test_acc": "surrogate.test_acc",
    "embedding_loss": "embedding_loss",
    "attack_time_ratio": "attack_time_ratio",
}
CELL_KEYS = ["setting", "dataset", "scheme", "scheme_config", "attack", "category", "attack_config"]


def bootstrap_ci(values, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; NaN for fewer than two values."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size < 2:
        return np.nan, np.nan
    resamples = np.random.default_rng(seed).choice(values, size=(n_resamples, values.size)).mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(resamples, alpha)), float(np.quantile(resamples, 1.0 - alpha))


def mean_ci(name: str, values) -> dict:
    """{name: mean, name_lo, name_hi: its 95 % bootstrap CI} (CI NaN for fewer than two values)."""
    values = np.asarray(values, dtype=float)
    lo, hi = bootstrap_ci(values)
    return {name: float(np.nanmean(values)) if np.any(~np.isnan(values)) else np.nan,
            f"{name}_lo": lo, f"{name}_hi": hi}


def add_settings(runs: pd.DataFrame, merge_numerics: bool = False) -> pd.DataFrame:
    """`setting` names one game: the dataset, plus model and budget when a dataset has several of those, plus
    `@<numerics>` (`cpu-fp32-2t`: device, precision, CPU threads; `wrt.analysis.load.numerics_label`) when
    its runs were made with several numerics, so that those are never averaged into one cell, unless
    `merge_numerics` (the report says so). Runs that record no numerics (older files) do not count as
    different."""
    runs = runs.copy()
    varied = runs.groupby("dataset")[["model", "budget"]].nunique(dropna=False).max(axis=1) > 1
    runs["setting"] = [
        f"{d}/{m}/{b}" if varied.get(d, False) else d
        for d, m, b in zip(runs["dataset"], runs["model"], runs["budget"])
    ]
    if not merge_numerics and "numerics" in runs:
        mixed = runs.groupby("setting")["numerics"].nunique() > 1
        runs["setting"] = [f"{s}@{n if isinstance(n, str) else 'unknown'}" if mixed.get(s, False) else s
                           for s, n in zip(runs["setting"], runs["numerics"])]
    return runs


def removal_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the removal game: every attack but the ambiguity (forging) ones, which remove nothing, and
    no run tagged `attack.searched` (an adaptive attacker's search, not a grid run)."""
    keep = runs["attack.category"] != AMBIGUITY
    if "searched" in runs:  # an adaptive attacker's searched runs are no grid runs
        keep &= ~runs["searched"].fillna(False).astype(bool)
    return runs[keep]


def score_runs(runs: pd.DataFrame, thresholds: pd.DataFrame, theta_prime: float,
               max_stealing_loss: float) -> pd.DataFrame:
    """The ok, marked runs with θ, rescaled surrogate watermark accuracy, per-run success and payoff."""
    marked = runs[(runs["status"] == "ok") & (runs["role"] == "marked")]
    theta = thresholds.set_index(["setting", "scheme"])["threshold"]
    marked = marked.assign(theta=[theta[(d, s)] for d, s in zip(marked["setting"], marked["scheme.name"])])
    theta_interval = thresholds.set_index(["setting", "scheme"])[["threshold_lo", "threshold_hi"]]
    interval = [theta_interval.loc[(d, s)] for d, s in zip(marked["setting"], marked["scheme.name"])]
    marked["theta_lo"] = [float(i["threshold_lo"]) for i in interval]
    marked["theta_hi"] = [float(i["threshold_hi"]) for i in interval]
    marked["rescaled_wm_acc"] = [float(game.rescale(x, t, theta_prime))
                                 for x, t in zip(marked["surrogate.wm_acc"], marked["theta"])]
    marked["success"] = game.attack_succeeds(marked["surrogate.wm_acc"], marked["theta"],
                                             marked["stealing_loss"], max_stealing_loss)
    marked["payoff"] = game.payoff(marked["success"], marked["surrogate.test_acc"])
    return marked.rename(columns={"scheme.name": "scheme", "scheme_label": "scheme_config",
                                  "attack.name": "attack", "attack.category": "category",
                                  "attack_label": "attack_config"})


def outcomes(scored: pd.DataFrame, failed: pd.DataFrame, max_stealing_loss: float,
             max_embedding_loss: float) -> pd.DataFrame:
    """One row per cell: seed means with 95 % bootstrap CIs, success and payoff on the means (§VII)."""
    rows = []
    for key, group in scored.groupby(CELL_KEYS, sort=True):
        row = dict(zip(CELL_KEYS, key))
        row.update(theta=group["theta"].iloc[0], theta_lo=group["theta_lo"].iloc[0],
                   theta_hi=group["theta_hi"].iloc[0], n_seeds=group["seed"].nunique(), n_runs=len(group))
        for name, column in MEASURES.items():
            row.update(mean_ci(name, group[column]))
        # a config whose marked model does not verify, or lost more than max_embedding_loss, is no defender strategy
        row["embedded"] = bool(game.well_embedded(row["marked_wm_acc"], row["theta"], row["embedding_loss"],
                                                  max_embedding_loss))
        row["active"] = bool(group["scheme.active"].fillna(False).any()) if "scheme.active" in group else False
        row["success_rate"] = group["success"].mean()
        row["success"] = bool(game.attack_succeeds(row["surrogate_wm_acc"], row["theta"],
                                                   row["stealing_loss"], max_stealing_loss))
        row["payoff"] = float(game.payoff(row["success"], row["surrogate_test_acc"]))
        row["payoff_lo"], row["payoff_hi"] = bootstrap_ci(group["payoff"])  # of the per-seed payoffs
        rows.append(row)
    cells = pd.DataFrame(rows)
    counts = failed.groupby(["setting", "scheme_label", "attack_label"]).size()
    cells["n_failed"] = [int(counts.get(key, 0)) for key in
                         zip(cells["setting"], cells["scheme_config"], cells["attack_config"])]
    return cells


def matrices(cells: pd.DataFrame, max_stealing_loss: float,
             fill: float | None = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Payoff matrix V (scheme configs × attack configs) and the tie-break matrix: rescaled watermark accuracy,
    +inf where the stealing loss is too high or not run. A pair not run pays `fill` (the game's 0: it removes
    nothing); `fill=None` leaves it NaN, so that a Table V mark sees it (`_robustness_mark`: incomplete)."""
    V = cells.pivot(index="scheme_config", columns="attack_config", values="payoff")
    V = V if fill is None else V.fillna(fill)
    usable = cells.assign(tie=np.where(game.loss_allowed(cells["stealing_loss"], max_stealing_loss),
                                       cells["rescaled_wm_acc"], np.inf))
    T = usable.pivot(index="scheme_config", columns="attack_config", values="tie").fillna(np.inf)
    return V, T.loc[V.index, V.columns]


def game_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells that enter the game: every attack except `none` (white-box attacks on an active scheme ran on a
    model extracted from its wrapper first, `wrt.pipeline.EXTRACT_FIRST`, so they count like any other)."""
    return cells[cells["attack"] != "none"]


def strategy_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The game's cells whose scheme config is a defender strategy (`embedded`: its marked model verifies,
    mean marked wm acc ≥ θ, and lost at most max_embedding_loss). A watermark that was never embedded cannot be
    removed, so it never counts as removed."""
    cells = game_cells(cells)
    return cells[cells["embedded"]] if "embedded" in cells else cells


def complete_subgame(V: pd.DataFrame) -> tuple[list, list]:
    """The scheme configs (rows) and attack configs (columns) of the largest game without an unrun pair that
    keeps every attack config: the rows that faced all of them; when no row did, every row and the attack
    configs that all of them faced; ([], []) when neither has one."""
    complete_rows = V.index[V.notna().all(axis=1)].tolist()
    if complete_rows:
        return complete_rows, V.columns.tolist()
    complete_columns = V.columns[V.notna().all(axis=0)].tolist()
    return (V.index.tolist(), complete_columns) if complete_columns else ([], [])


def nash_entry(cells: pd.DataFrame, max_stealing_loss: float) -> dict:
    """Both equilibria (`game.solve_game`) of the complete sub-game (`complete_subgame`): an unrun (scheme config,
    attack config) pair is missing, never a payoff of 0. `missing_pairs` lists the unrun pairs, `left_out` the
    configs the sub-game leaves out for them; `pure` and `mixed` are null when no sub-game is complete."""
    V, T = matrices(cells, max_stealing_loss, fill=None)
    rows, columns = complete_subgame(V)
    missing = [[s, a] for s in V.index for a in V.columns if pd.isna(V.at[s, a])]
    left_out = {"scheme_configs": [s for s in V.index if s not in rows],
                "attack_configs": [a for a in V.columns if a not in columns]}
    solved = game.solve_game(V.loc[rows, columns], T.loc[rows, columns]) if rows else {"pure": None, "mixed": None}
    return {**solved, "missing_pairs": missing, "left_out": left_out}


def pure_nash_configs(cells: pd.DataFrame, max_stealing_loss: float) -> tuple[str, str, float]:
    """The Eq. 6 equilibrium of these cells: (scheme config, attack config, payoff)."""
    V, T = matrices(cells, max_stealing_loss)
    i, j = game.pure_nash(V.to_numpy(), T.to_numpy())
    return V.index[i], V.columns[j], float(V.iat[i, j])


def outcome_at(cells: pd.DataFrame, entry: dict) -> pd.Series:
    pure = entry["pure"]
    match = cells[(cells["scheme_config"] == pure["scheme"]) & (cells["attack_config"] == pure["attack"])]
    return match.iloc[0] if len(match) else pd.Series(dtype=object)


def nash_all(cells: pd.DataFrame, max_stealing_loss: float) -> dict:
    """nash.json content: per setting, the game over all schemes, per scheme family, and per scheme family
    against each attack category — every entry in the {"pure", "mixed"} shape."""
    result = {}
    for setting, sc in strategy_cells(cells).groupby("setting", sort=True):
        result[setting] = {
            "all": nash_entry(sc, max_stealing_loss),
            "per_scheme": {s: nash_entry(g, max_stealing_loss) for s, g in sc.groupby("scheme", sort=True)},
            "per_category": {
                s: {c: nash_entry(gc, max_stealing_loss) for c, gc in g.groupby("category", sort=True)}
                for s, g in sc.groupby("scheme", sort=True)
            },
        }
    return result


def _pure_summary(cells: pd.DataFrame, entry: dict) -> dict:
    """The pure equilibrium's pair and outcome; `missing_pairs`: the unrun pairs the game left out (no complete
    sub-game: no pair, robust empty)."""
    pure = entry["pure"] or {}
    at = outcome_at(cells, entry) if pure else pd.Series(dtype=object)
    columns = [f"{m}{suffix}" for m in ("rescaled_wm_acc", "stealing_loss") for suffix in ("", "_lo", "_hi")]
    return {
        "scheme_config": pure.get("scheme"), "attack_config": pure.get("attack"),
        "payoff": pure.get("payoff", np.nan), "robust": pure["payoff"] == 0 if pure else None,
        "n_seeds": at.get("n_seeds", 0), **{c: at.get(c, np.nan) for c in columns},
        "missing_pairs": len(entry.get("missing_pairs", [])),
    }


def nash_per_scheme_table(cells: pd.DataFrame, nash: dict) -> pd.DataFrame:
    """Each scheme family against all attacks (SoK §VIII-E): pure equilibrium and mixed value."""
    rows = []
    for setting, entry in nash.items():
        sc = game_cells(cells)[game_cells(cells)["setting"] == setting]
        for scheme, e in entry["per_scheme"].items():
            mixed = e["mixed"] or {"value": np.nan, "defender": {}, "attacker": {}}
            rows.append({"setting": setting, "scheme": scheme, **_pure_summary(sc, e),
                         "mixed_value": mixed["value"], "mixed_defender": support(mixed["defender"]),
                         "mixed_attacker": support(mixed["attacker"])})
    return pd.DataFrame(rows)


def nash_per_category_table(cells: pd.DataFrame, nash: dict) -> pd.DataFrame:
    """Each scheme family against each attack category (SoK §VIII-F, Fig. 4)."""
    rows = []
    for setting, entry in nash.items():
        sc = game_cells(cells)[game_cells(cells)["setting"] == setting]
        for scheme, per_cat in entry["per_category"].items():
            for category, e in per_cat.items():
                rows.append({"setting": setting, "scheme": scheme, "category": category,
                             **_pure_summary(sc, e), "mixed_value": (e["mixed"] or {}).get("value", np.nan)})
    return pd.DataFrame(rows)


def support(strategy: dict) -> str:
    return "; ".join(f"{label}: {p:.3f}" for label, p in sorted(strategy.items(), key=lambda kv: -kv[1]))


def category_rank(category: str) -> int:
    """Position in CATEGORY_ORDER (unknown categories last)."""
    return CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER)


def seed_equilibria(runs: pd.DataFrame, max_stealing_loss: float) -> list[dict]:
    """Per seed, the Eq. 6 equilibrium of that seed's runs alone: the seed, the scheme and attack configs, the
    payoff (> 0: removed) and that pair's surrogate wm acc and stealing loss."""
    measures = [c for c in ("payoff", "stealing_loss", "rescaled_wm_acc", "surrogate.wm_acc") if c in runs]
    per_seed = runs.groupby(["seed", "scheme_config", "attack_config"], as_index=False)[measures].mean()
    equilibria = []
    for seed, g in per_seed.groupby("seed", sort=True):
        scheme_config, attack_config, payoff = pure_nash_configs(g, max_stealing_loss)
        at = g[(g["scheme_config"] == scheme_config) & (g["attack_config"] == attack_config)]
        at = at.iloc[0] if len(at) else pd.Series(dtype=float)
        equilibria.append({"seed": seed, "scheme_config": scheme_config, "attack_config": attack_config,
                           "payoff": payoff, "surrogate_wm_acc": at.get("surrogate.wm_acc", np.nan),
                           "stealing_loss": at.get("stealing_loss", np.nan)})
    return equilibria


def strategy_runs(runs: pd.DataFrame, strategies: pd.DataFrame) -> pd.DataFrame:
    """The runs of a cell whose scheme config is one of its defender strategies (`strategy_cells`)."""
    return runs[runs["scheme_config"].isin(set(strategies["scheme_config"]))]


def seed_removals(runs: pd.DataFrame, max_stealing_loss: float) -> list[bool]:
    """Per seed, whether the Eq. 6 equilibrium on that seed's runs alone removes the watermark."""
    return [e["payoff"] > 0 for e in seed_equilibria(runs, max_stealing_loss)]


def equilibrium_cell(cells: pd.DataFrame, max_stealing_loss: float) -> tuple[str, str, float, pd.Series]:
    """The Eq. 6 equilibrium of these cells: (scheme config, attack config, payoff, its outcome row; an
    empty row when that pair was not run)."""
    scheme_config, attack_config, payoff = pure_nash_configs(cells, max_stealing_loss)
    at = cells[(cells["scheme_config"] == scheme_config) & (cells["attack_config"] == attack_config)]
    return scheme_config, attack_config, payoff, at.iloc[0] if len(at) else pd.Series(dtype=object)


def inside_theta_interval(at: pd.Series, max_stealing_loss: float) -> bool:
    """Whether an outcome's surrogate wm acc lies inside θ's 95 % interval while its stealing loss is
    allowed: the watermark may or may not have been removed (SoK App. XV: θ is itself an estimate)."""
    if at.empty or "theta_lo" not in at:
        return False
    return bool(at["theta_lo"] <= at["surrogate_wm_acc"] <= at["theta_hi"] and at["theta_lo"] < at["theta_hi"]
                and game.loss_allowed(at["stealing_loss"], max_stealing_loss))


def removed_either_way(strategies: pd.DataFrame, pairs: set, max_stealing_loss: float) -> tuple[bool, bool]:
    """Whether the Eq. 6 equilibrium removes the watermark when the (scheme config, attack config) `pairs` (failed
    runs) pay 0 and when they pay 1 (the equilibrium's payoff is monotone in V, so these two bound every payoff
    the runs could have had)."""
    V, T = matrices(strategies, max_stealing_loss, fill=None)
    rows = sorted(set(V.index) | {s for s, _ in pairs})
    columns = sorted(set(V.columns) | {a for _, a in pairs})
    V, T = V.reindex(index=rows, columns=columns), T.reindex(index=rows, columns=columns).fillna(np.inf)
    removed = []
    for value in (0.0, 1.0):
        Vv, Tv = V.copy(), T.copy()
        for s, a in pairs:
            Vv.loc[s, a], Tv.loc[s, a] = value, np.inf if value == 0 else 0.0
        i, j = game.pure_nash(Vv.fillna(0.0).to_numpy(), Tv.to_numpy())
        removed.append(bool(Vv.fillna(0.0).iat[i, j] > 0))
    return removed[0], removed[1]


def incomplete(cells: pd.DataFrame, slots: pd.DataFrame | None, max_stealing_loss: float) -> bool:
    """Whether a Table V cell cannot be marked: an expected run is missing (a `slots` row in state missing;
    without `slots`, a scheme config × attack config pair of `cells` not run), or a failed run's payoff could
    change the mark (`removed_either_way` differs). Failed runs of a config that is no defender strategy (not
    embedded) do not count."""
    strategies = strategy_cells(cells)
    if slots is None:
        return bool(len(strategies)) and matrices(strategies, max_stealing_loss, fill=None)[0].isna().to_numpy().any()
    if slots.empty:
        return False
    if (slots["state"] == "missing").any():
        return True
    not_embedded = set(game_cells(cells)["scheme_config"]) - set(strategies["scheme_config"])
    failed = slots[(slots["state"] == "failed") & ~slots["scheme_config"].isin(not_embedded)]
    pairs = set(zip(failed["scheme_config"], failed["attack_config"]))
    return bool(pairs) and len(set(removed_either_way(strategies, pairs, max_stealing_loss))) > 1


def _robustness_mark(cells: pd.DataFrame, runs: pd.DataFrame, max_stealing_loss: float,
                     slots: pd.DataFrame | None = None) -> tuple[str, bool, int]:
    """inc when the cell is incomplete (`incomplete`); n/e when no config of the scheme was embedded; else
    ±(k of n) when only k of the n seeds' equilibria remove the watermark, ? when the equilibrium's wm acc
    lies inside θ's interval, ✓/✗ on the seed means. Also whether the seeds agree, and how many there are."""
    if incomplete(cells, slots, max_stealing_loss):
        return INCOMPLETE, True, runs["seed"].nunique()
    strategies = strategy_cells(cells)
    if strategies.empty:
        return NOT_EMBEDDED, True, runs["seed"].nunique()
    removals = seed_removals(strategy_runs(runs, strategies), max_stealing_loss)
    if 0 < sum(removals) < len(removals):
        return f"{SEEDS_DISAGREE}({sum(removals)} of {len(removals)})", False, len(removals)
    _, _, payoff, at = equilibrium_cell(strategies, max_stealing_loss)
    if inside_theta_interval(at, max_stealing_loss):
        return UNDECIDED, True, len(removals)
    return (REMOVED if payoff > 0 else ROBUST), True, len(removals)


def marked_row(scored: pd.DataFrame, setting: str, schemes: list[str]) -> dict:
    """The robustness table's first row of a setting: each scheme's mean marked wm acc over its marked models
    (every config and seed), so a reader sees which watermarks were embedded at all."""
    models = scored[scored["setting"] == setting].drop_duplicates(["scheme_config", "seed"])
    means = models.groupby("scheme")["marked.wm_acc"].mean()
    return {"setting": setting, "category": "embedding", "attack": MARKED_ROW,
            **{s: f"{means[s]:.3f}" if s in means else NOT_RUN for s in schemes},
            "seeds": f"{models['seed'].nunique()}", "seeds_agree": None}


def _select(frame: pd.DataFrame, setting: str, scheme: str, attack: str) -> pd.DataFrame:
    return frame[(frame["setting"] == setting) & (frame["scheme"] == scheme) & (frame["attack"] == attack)]


def _cell_slots(slots: pd.DataFrame | None, setting: str, scheme: str, attack: str) -> pd.DataFrame | None:
    return None if slots is None else _select(slots, setting, scheme, attack)


def robustness_table(cells: pd.DataFrame, scored: pd.DataFrame, failed: pd.DataFrame,
                     max_stealing_loss: float, slots: pd.DataFrame | None = None) -> pd.DataFrame:
    """SoK Table V, one block of rows per setting: each scheme's mean marked wm acc, then attacks (grouped by
    category) × schemes; ✓ robust, ✗ removed at the Eq. 6 equilibrium of the scheme's embedded configs against
    the attack's configs, ±(k of n) the seeds disagree (k of n remove it), ? undecided (wm acc inside θ's
    interval), n/e no config embedded, inc incomplete (`incomplete`: `slots`, the expected runs of
    `wrt.analysis.grid.expected_slots`), – not run, ! only failed runs. `seeds` gives the fewest and most seeds of the row's cells; `seeds_agree` is
    false when any cell of the row is ±, and empty when no cell has two seeds; runs_present / runs_expected:
    the expected runs of the row's cells (with `slots`) and how many of them are there."""
    attacked, gc, gr = cells[cells["attack"] != "none"], game_cells(cells), game_cells(scored)
    schemes = sorted(attacked["scheme"].unique())
    failed_pairs = set(zip(failed["setting"], failed["scheme.name"], failed["attack.name"]))
    rows = []
    for setting, every in attacked.groupby("setting", sort=True):
        sg = gc[gc["setting"] == setting]
        rows.append(marked_row(scored, setting, schemes))
        attacks = (every[["category", "attack"]].drop_duplicates()
                   .assign(rank=lambda d: d["category"].map(category_rank))
                   .sort_values(["rank", "attack"]))
        for category, attack in zip(attacks["category"], attacks["attack"]):
            row, agree, seeds = {"setting": setting, "category": category, "attack": attack}, True, []
            present = expected = 0
            for scheme in schemes:
                sub, expect = _select(sg, setting, scheme, attack), _cell_slots(slots, setting, scheme, attack)
                if expect is not None:
                    present, expected = present + int((expect["state"] == "ok").sum()), expected + len(expect)
                if len(sub):
                    row[scheme], cell_agrees, n_seeds = _robustness_mark(
                        sub, _select(gr, setting, scheme, attack), max_stealing_loss, expect)
                    agree &= cell_agrees
                    seeds.append(n_seeds)
                elif (setting, scheme, attack) in failed_pairs:
                    row[scheme] = ONLY_FAILED
                else:
                    row[scheme] = INCOMPLETE if expect is not None and len(expect) else NOT_RUN
            seeds = seeds or [0]
            row["seeds"] = f"{min(seeds)}" if min(seeds) == max(seeds) else f"{min(seeds)}–{max(seeds)}"
            counted = {"runs_present": present, "runs_expected": expected} if slots is not None else {}
            rows.append({**row, "seeds_agree": agree if max(seeds) > 1 else None, **counted})
    table = pd.DataFrame(rows)
    counts = [c for c in ("runs_present", "runs_expected") if c in table]  # none in the marked row
    return table.astype(dict.fromkeys(counts, "Int64"))


# every mark a Table V cell can hold, with its meaning (the report's legend and the table's text)
MARKS = [
    (ROBUST, "robust: the watermark survives the Eq. 6 equilibrium of the scheme's embedded configs vs the "
             "attack's configs (on the seed means)"),
    (REMOVED, "removed at that equilibrium"),
    (f"{SEEDS_DISAGREE}(k of n)", "the seeds disagree: the equilibrium on k of the n seeds' complete runs alone "
                                  "removes the watermark"),
    (UNDECIDED, "undecided: the equilibrium's surrogate wm acc lies inside θ's 95 % interval"),
    (NOT_EMBEDDED, "no config of the scheme was embedded (its marked models do not verify, or lost more than "
                   "max_embedding_loss of test accuracy): no defender strategy"),
    (INCOMPLETE, "incomplete: an expected run is missing (the sweeps' manifests, else every scheme config × attack "
                 "config of the cell × the setting's seeds), or a failed run's payoff could change the mark"),
    (NOT_RUN, "not run"),
    (ONLY_FAILED, "only failed runs"),
]
ROBUSTNESS_FIXED = ["setting", "category", "attack", "seeds", "seeds_agree", "runs_present", "runs_expected"]


def mark_kind(cell) -> str | None:
    """The mark of a Table V cell (`MARKS`' first column, ± for every ±(k of n)); None for a number (the marked
    row) or anything else."""
    text = str(cell)
    if text.startswith(SEEDS_DISAGREE):
        return SEEDS_DISAGREE
    return text if text in {mark for mark, _ in MARKS} else None


def summary_table(robustness: pd.DataFrame) -> pd.DataFrame:
    """Table V in words, one row per setting and scheme that ran: its mean marked wm acc, the attack categories
    it survives (✓ against every attack of the category), the attacks that remove it (✗) by category, and how
    many cells hold which other mark (not decided either way)."""
    rows = []
    schemes = [c for c in robustness.columns if c not in ROBUSTNESS_FIXED]
    for setting, block in robustness.groupby("setting", sort=True):
        attacks = block[block["attack"] != MARKED_ROW]
        marked = block.loc[block["attack"] == MARKED_ROW].iloc[0] if (block["attack"] == MARKED_ROW).any() else {}
        for scheme in schemes:
            kinds = attacks[scheme].map(mark_kind)
            if kinds.isin([NOT_RUN]).all():
                continue
            by_category = list(attacks.assign(kind=kinds).groupby("category", sort=False))
            survives = [CATEGORY_ABBREV.get(c, c) for c, g in by_category if (g["kind"] == ROBUST).all()]
            removed = [f"{CATEGORY_ABBREV.get(c, c)}: {', '.join(g.loc[g['kind'] == REMOVED, 'attack'])}"
                       for c, g in by_category if (g["kind"] == REMOVED).any()]
            other = kinds[~kinds.isin([ROBUST, REMOVED])].value_counts()
            rows.append({"setting": setting, "scheme": scheme, "marked_wm_acc": marked.get(scheme, NOT_RUN),
                         "survives": ", ".join(survives) or "none",
                         "removed_by": "; ".join(removed) or "none",
                         "not_decided": ", ".join(f"{n} {mark}" for mark, n in other.items()) or "none"})
    return pd.DataFrame(rows, columns=["setting", "scheme", "marked_wm_acc", "survives", "removed_by", "not_decided"])


def robustness_configs_table(cells: pd.DataFrame, max_stealing_loss: float,
                             slots: pd.DataFrame | None = None) -> pd.DataFrame:
    """The configuration game behind each Table V cell (on the seed means): how many embedded scheme and
    attack configurations it had, the equilibrium pair (Eq. 6) that decides the cell, its surrogate wm acc
    and θ with its interval, and `missing_pairs`: the (scheme config, attack config) pairs without a finished
    run, which that equilibrium counts as paying 0 (the cell is marked incomplete when one could matter); with
    `slots`, the cell's runs_present and runs_expected."""
    rows = []
    for (setting, category, attack, scheme), sub in strategy_cells(cells).groupby(
            ["setting", "category", "attack", "scheme"], sort=True):
        scheme_config, attack_config, payoff, at = equilibrium_cell(sub, max_stealing_loss)
        rows.append({"setting": setting, "category": category, "attack": attack, "scheme": scheme,
                     "scheme_configs": sub["scheme_config"].nunique(), "attack_configs": sub["attack_config"].nunique(),
                     "scheme_config": scheme_config, "attack_config": attack_config, "payoff": payoff,
                     "removed": payoff > 0,
                     **{c: at.get(c, np.nan) for c in ("surrogate_wm_acc", "theta", "theta_lo", "theta_hi")},
                     "missing_pairs": int(matrices(sub, max_stealing_loss, fill=None)[0].isna().to_numpy().sum())})
        expect = _cell_slots(slots, setting, scheme, attack)
        if expect is not None:
            rows[-1].update(runs_present=int((expect["state"] == "ok").sum()), runs_expected=len(expect))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return (table.assign(rank=table["category"].map(category_rank))
            .sort_values(["setting", "rank", "attack", "scheme"]).drop(columns="rank").reset_index(drop=True))


def null_pools(removal: pd.DataFrame) -> dict[tuple, np.ndarray]:
    """The key scores of the ok null runs, pooled per (setting, scheme) and per (setting, scheme, scheme config)."""
    nulls = removal[(removal["status"] == "ok") & (removal["role"] == "null")]
    pools = {}
    for (setting, scheme), group in nulls.groupby(["setting", "scheme.name"], sort=False):
        pools[(setting, scheme)] = np.concatenate(null_scores_of(group))
        if "scheme_label" in group:
            for label, config in group.groupby("scheme_label", sort=False):
                pools[(setting, scheme, label)] = np.concatenate(null_scores_of(config))
    return pools


def null_share(pools: dict[tuple, np.ndarray], setting: str, scheme: str, scheme_config: str,
               score: float) -> float:
    """The share of unmarked models' key scores at or above `score`: how often a model that never saw the
    watermark reads this high. Pools (`null_pools`) the setting's null runs of this scheme config, or of the whole
    scheme where that config has none (NaN without null runs)."""
    pool = pools.get((setting, scheme, scheme_config), pools.get((setting, scheme)))
    if pool is None or np.isnan(score):
        return np.nan
    return float(np.mean(pool >= score - FLOAT32_SLACK))  # a float32 k/N may round past an unmarked model's k/N


def robustness_seeds_table(cells: pd.DataFrame, scored: pd.DataFrame, max_stealing_loss: float,
                           removal: pd.DataFrame) -> pd.DataFrame:
    """Each Table V cell with two or more seeds, seed by seed: the Eq. 6 equilibrium of that seed's runs alone
    over the scheme's embedded configs (what `±(k of n)` counts), its configs, surrogate wm acc, θ, stealing
    loss and `removed`; `cell_removed` is the cell's equilibrium on the seed means (`robustness_configs`);
    `null_share` (from the null runs among `removal`) says how often an unmarked model scores at least the
    surrogate's wm acc: near p, a watermark that reads as kept is one that a chance draw would also give."""
    strategies, runs, rows = strategy_cells(cells), game_cells(scored), []
    pools = null_pools(removal)
    for (setting, category, attack, scheme), sub in strategies.groupby(
            ["setting", "category", "attack", "scheme"], sort=True):
        own = strategy_runs(_select(runs, setting, scheme, attack), sub)
        if own["seed"].nunique() < 2:
            continue
        cell_removed = equilibrium_cell(sub, max_stealing_loss)[2] > 0
        for e in seed_equilibria(own, max_stealing_loss):
            rows.append({"setting": setting, "category": category, "attack": attack, "scheme": scheme,
                         "seed": e["seed"], "scheme_config": e["scheme_config"], "attack_config": e["attack_config"],
                         "surrogate_wm_acc": e["surrogate_wm_acc"], "theta": own["theta"].iloc[0],
                         "stealing_loss": e["stealing_loss"], "removed": e["payoff"] > 0,
                         "cell_removed": cell_removed,
                         "null_share": null_share(pools, setting, scheme, e["scheme_config"],
                                                  e["surrogate_wm_acc"])})
    table = pd.DataFrame(rows, columns=["setting", "category", "attack", "scheme", "seed", "scheme_config",
                                        "attack_config", "surrogate_wm_acc", "theta", "stealing_loss", "removed",
                                        "cell_removed", "null_share"])
    return (table.assign(rank=table["category"].map(category_rank))
            .sort_values(["setting", "rank", "attack", "scheme", "seed"]).drop(columns="rank").reset_index(drop=True))


def dominant_attacks_table(cells: pd.DataFrame, max_stealing_loss: float) -> pd.DataFrame:
    """SoK §VIII-H: an attack is dominant when every scheme config of the setting is removed by some config of the
    attack (its Eq. 6 payoff is positive). An unrun (scheme config, attack config) pair is missing, not 0: a scheme
    config counts as removed when a config that was run removes it (payoffs are ≥ 0, so no unrun pair can undo
    that); `dominant` is yes when every scheme config is removed, no when some scheme config faced every config
    of the attack and none removed it, and empty (undecided) otherwise; `missing_pairs` counts the unrun pairs.
    Also the single attack config that removes the most scheme configs, and the Eq. 6 payoff of the complete
    sub-game (`complete_subgame`; empty when there is none)."""
    rows = []
    gc = strategy_cells(cells)
    for (setting, category, attack), sub in gc.groupby(["setting", "category", "attack"], sort=True):
        all_configs = sorted(gc.loc[gc["setting"] == setting, "scheme_config"].unique())
        V, T = matrices(sub, max_stealing_loss, fill=None)
        V, T = V.reindex(all_configs), T.reindex(all_configs).fillna(np.inf)
        removed, faced_all = V.fillna(0.0) > 0, V.notna().all(axis=1)
        by_some = removed.any(axis=1)
        dominant = True if by_some.all() else False if (faced_all & ~by_some).any() else None
        best_config = removed.sum(axis=0).idxmax()
        complete_rows, columns = complete_subgame(V)
        nash_payoff, at = np.nan, sub.iloc[:0]
        if complete_rows:
            Vc = V.loc[complete_rows, columns]
            i, j = game.pure_nash(Vc.to_numpy(), T.loc[complete_rows, columns].to_numpy())
            nash_payoff = float(Vc.iat[i, j])
            at = sub[(sub["scheme_config"] == Vc.index[i]) & (sub["attack_config"] == Vc.columns[j])]
        rows.append({
            "setting": setting, "category": category, "attack": attack, "scheme_configs": len(all_configs),
            "removed_by_some_config": int(by_some.sum()), "best_single_config": best_config,
            "removed_by_best_config": int(removed[best_config].sum()),
            "dominant": dominant, "missing_pairs": int(V.isna().to_numpy().sum()), "nash_payoff": nash_payoff,
            "nash_payoff_lo": at["payoff_lo"].iloc[0] if len(at) else np.nan,
            "nash_payoff_hi": at["payoff_hi"].iloc[0] if len(at) else np.nan,
        })
    table = pd.DataFrame(rows, columns=["setting", "category", "attack", "scheme_configs", "removed_by_some_config",
                                        "best_single_config", "removed_by_best_config", "dominant", "missing_pairs",
                                        "nash_payoff", "nash_payoff_lo", "nash_payoff_hi"])
    rank = table["dominant"].map({True: 0, False: 2}).fillna(1)  # dominant, undecided, not dominant
    return (table.assign(_rank=rank).sort_values(["setting", "_rank", "removed_by_some_config", "attack"],
                                                 ascending=[True, True, False, True]).drop(columns="_rank"))


def speed_class(ratio: float) -> str:
    """SoK §IV: fast below 25 % of the training time, medium up to 75 %, slow beyond."""
    if np.isnan(ratio):
        return "unknown"
    return "fast" if ratio < FAST else "medium" if ratio <= MEDIUM else "slow"


def fastest_attacks_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Per scheme family, the successful (scheme config, attack config) cell with the lowest attack time
    relative to training from scratch (SoK Fig. 3c,f)."""
    strategies = strategy_cells(cells)
    successful = strategies[strategies["success"] & strategies["attack_time_ratio"].notna()]
    rows = []
    for (setting, scheme), sub in strategies.groupby(["setting", "scheme"], sort=True):
        hits = successful[(successful["setting"] == setting) & (successful["scheme"] == scheme)]
        if hits.empty:
            rows.append({"setting": setting, "scheme": scheme, "attack_config": "none successful"})
            continue
        best = hits.sort_values(["attack_time_ratio", "attack_config"]).iloc[0]
        rows.append({"setting": setting, "scheme": scheme, "attack_config": best["attack_config"],
                     "category": best["category"], "scheme_config": best["scheme_config"],
                     **{c: best[c] for c in ("attack_time_ratio", "attack_time_ratio_lo", "attack_time_ratio_hi")},
                     "speed": speed_class(best["attack_time_ratio"])})
    return pd.DataFrame(rows)


def runtime_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Attack time relative to training from scratch per attack config (SoK Fig. 2b,e): mean over its runs
    (every scheme config and seed) with 95 % bootstrap CI."""
    gr = game_cells(scored).dropna(subset=["attack_time_ratio"])
    rows = [{"setting": setting, "category": category, "attack_config": config, "n_runs": len(g),
             **mean_ci("attack_time_ratio", g["attack_time_ratio"])}
            for (setting, category, config), g in gr.groupby(["setting", "category", "attack_config"], sort=True)]
    table = pd.DataFrame(rows, columns=["setting", "category", "attack_config", "n_runs", "attack_time_ratio",
                                        "attack_time_ratio_lo", "attack_time_ratio_hi"])
    return table.assign(speed=table["attack_time_ratio"].map(speed_class)).sort_values(["setting", "attack_time_ratio"])


def embedding_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Embedding loss per scheme config (SoK Fig. 2c,f) over distinct marked models (one per seed), and the
    embedding time relative to training from scratch."""
    models = scored.drop_duplicates(["setting", "scheme_config", "seed"])
    rows = []
    for (setting, scheme, config), g in models.groupby(["setting", "scheme", "scheme_config"], sort=True):
        # marked.embed_time_s is kept in the store, so it is known even for cached marked models;
        # older runs without it fall back to this run's embed stage when it was not cached
        fresh_time = g["timing_s.embed"].where(g["marked.cached"] == False)  # noqa: E712 - True/False/None
        embed_time = g["marked.embed_time_s"].astype(float).fillna(fresh_time.astype(float))
        ratio = embed_time / g["source.train_time_s"].astype(float)
        rows.append({"setting": setting, "scheme": scheme, "scheme_config": config, "n_seeds": len(g),
                     **mean_ci("embedding_loss", g["embedding_loss"]), **mean_ci("embed_time_ratio", ratio)})
    return pd.DataFrame(rows)


def failed_runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    columns = ["run_name", "dataset", "scheme_label", "attack_label", "seed", "role", "failed_stage", "error", "path"]
    return runs.loc[runs["status"] == "failed", columns].reset_index(drop=True)


# ---------------------------------------------------------------- writers

def fmt(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.4f}"
    return "" if value is None or value is pd.NA else str(value)


def to_markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(fmt(v).replace("|", "\\|") for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  ROBUST: r"\checkmark{}", REMOVED: r"$\times$", NOT_RUN: "--", SEEDS_DISAGREE: r"$\pm$",
                  "θ": r"$\theta$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: pd.DataFrame, caption: str) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs,amssymb})."""
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}",
             r"\begin{tabular}{" + "l" * len(table.columns) + "}", r"\toprule",
             " & ".join(_latex_escape(str(c)) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(fmt(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, out_dir: Path, name: str, caption: str, legend: str = "") -> list[Path]:
    """`name`.csv, `name`.md (caption, `legend`: what the cells mean, table) and `name`.tex."""
    paths = [out_dir / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    table.to_csv(paths[0], index=False)
    legend = f"{legend}\n\n" if legend else ""
    paths[1].write_text(f"{caption}\n\n{legend}{to_markdown(table)}", encoding="utf-8")
    paths[2].write_text(to_latex(table, caption), encoding="utf-8")
    return paths
