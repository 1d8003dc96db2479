"""Grid vs search (issue #27): per searched cell and seed, the grid's best response beside the adaptive
attacker's (`experiment=best_response`, wrt/search.py), and whether the cell's Table V mark would change if
the searched configurations joined the attacker's options. Table V itself stays the grid's.

A best response is the run with the highest attacker objective (`wrt.analysis.game.attacker_objective`, the
value the search maximised) among the runs against one scheme configuration on one seed: the grid's attack
configurations, or a study's trials.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wrt.analysis import game, tables

COLUMNS = ["setting", "scheme", "scheme_config", "attack", "seed", "study", "trials", "theta",
           "grid_configs", "grid_best", "grid_wm_acc", "grid_stealing_loss", "grid_payoff", "grid_objective",
           "search_best", "search_wm_acc", "search_stealing_loss", "search_payoff", "search_objective",
           "mark", "mark_with_search", "mark_changes"]


def searched_runs(runs: pd.DataFrame, thresholds: pd.DataFrame, theta_prime: float,
                  max_stealing_loss: float) -> pd.DataFrame:
    """The ok, marked runs tagged `attack.searched` of the settings and schemes that have a θ, scored like the
    grid's (`tables.score_runs`), with their study."""
    if "searched" not in runs:
        return runs.iloc[0:0]
    searched = runs[runs["searched"].fillna(False).astype(bool) & (runs["status"] == "ok") & (runs["role"] == "marked")]
    with_theta = set(zip(thresholds["setting"], thresholds["scheme"]))
    searched = searched[[key in with_theta for key in zip(searched["setting"], searched["scheme.name"])]]
    if searched.empty:
        return searched
    study = searched["attack.study"] if "attack.study" in searched else pd.Series(None, searched.index, dtype=object)
    return tables.score_runs(searched.assign(study=study.fillna("unnamed")), thresholds, theta_prime,
                             max_stealing_loss)


def with_objective(scored: pd.DataFrame, theta_prime: float, max_stealing_loss: float) -> pd.DataFrame:
    return scored.assign(objective=[
        game.attacker_objective(wm, theta, loss, acc, theta_prime, max_stealing_loss)
        for wm, theta, loss, acc in zip(scored["surrogate.wm_acc"], scored["theta"], scored["stealing_loss"],
                                        scored["surrogate.test_acc"])])


def best(runs: pd.DataFrame) -> pd.DataFrame:
    """The run with the highest objective (ties: the first path), as a one-row frame (empty for no runs)."""
    return runs.sort_values(["objective", "path"], ascending=[False, True]).iloc[:1]


def cell_mark(cells: pd.DataFrame, scored: pd.DataFrame, slots: pd.DataFrame | None, max_stealing_loss: float) -> str:
    """The Table V mark of one (setting, scheme, attack) cell from its outcomes and runs (`tables._robustness_mark`,
    the rule Table V uses)."""
    if tables.game_cells(cells).empty:
        return tables.NOT_RUN
    return tables._robustness_mark(tables.game_cells(cells), tables.game_cells(scored), max_stealing_loss, slots)[0]


def grid_vs_search_table(scored: pd.DataFrame, searched: pd.DataFrame, slots: pd.DataFrame | None,
                         theta_prime: float, max_stealing_loss: float, max_embedding_loss: float) -> pd.DataFrame:
    """One row per searched cell (setting, scheme config, attack), seed and study: its trials, the grid's and
    the search's best response (configuration, surrogate wm acc, stealing loss, payoff, objective), the cell's
    Table V mark and the mark with each study's best configuration of the cell as one more attack
    configuration (measured on its study's seed and scheme configuration only; pairs it was not run with pay 0,
    the game's convention)."""
    if searched.empty:
        return pd.DataFrame(columns=COLUMNS)
    grid_runs = with_objective(scored, theta_prime, max_stealing_loss)
    searched = with_objective(searched, theta_prime, max_stealing_loss)
    rows = []
    for (setting, scheme, attack), studies in searched.groupby(["setting", "scheme", "attack"], sort=True):
        in_cell = grid_runs[(grid_runs["setting"] == setting) & (grid_runs["scheme"] == scheme)
                            & (grid_runs["attack"] == attack)]
        cell_slots = None if slots is None else slots[(slots["setting"] == setting) & (slots["scheme"] == scheme)
                                                      & (slots["attack"] == attack)]
        no_failures = in_cell.iloc[0:0].rename(columns={"scheme_config": "scheme_label", "attack_config": "attack_label"})
        mark = cell_mark(tables.outcomes(in_cell, no_failures, max_stealing_loss, max_embedding_loss), in_cell,
                         cell_slots, max_stealing_loss) if len(in_cell) else tables.NOT_RUN
        bests = [best(trials) for _, trials in studies.groupby(["scheme_config", "seed", "study"], sort=True)]
        bests = [b.assign(attack_config=b["attack_config"] + " [" + b["study"] + "]") for b in bests]
        joined = pd.concat([in_cell, *bests], ignore_index=True)
        with_search = (cell_mark(tables.outcomes(joined, no_failures, max_stealing_loss, max_embedding_loss), joined,
                                 cell_slots, max_stealing_loss)
                       if mark in (tables.ROBUST, tables.REMOVED, tables.UNDECIDED) or mark.startswith(
                           tables.SEEDS_DISAGREE) else mark)
        for (scheme_config, seed, study), trials in studies.groupby(["scheme_config", "seed", "study"], sort=True):
            against = in_cell[(in_cell["scheme_config"] == scheme_config) & (in_cell["seed"] == seed)]
            found = best(trials)
            rows.append({
                "setting": setting, "scheme": scheme, "scheme_config": scheme_config, "attack": attack, "seed": seed,
                "study": study, "trials": len(trials), "theta": float(found["theta"].iloc[0]),
                "grid_configs": len(against), **_response("grid", best(against)), **_response("search", found),
                "mark": mark, "mark_with_search": with_search, "mark_changes": with_search != mark})
    return pd.DataFrame(rows, columns=COLUMNS)


def _response(prefix: str, found: pd.DataFrame) -> dict:
    if found.empty:
        return {f"{prefix}_best": tables.NOT_RUN, **{f"{prefix}_{k}": np.nan for k in
                                                     ("wm_acc", "stealing_loss", "payoff", "objective")}}
    run = found.iloc[0]
    return {f"{prefix}_best": run["attack_config"], f"{prefix}_wm_acc": float(run["surrogate.wm_acc"]),
            f"{prefix}_stealing_loss": float(run["stealing_loss"]), f"{prefix}_payoff": float(run["payoff"]),
            f"{prefix}_objective": float(run["objective"])}
