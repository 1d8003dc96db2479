"""The attacker's data budget (SoK Fig. 3a): the outcome of an attack as a function of the data it used.

Only (scheme config, attack) pairs run at several budget sizes (`attack.data.fraction` or `count`) enter;
their outcome cells (one per budget, `attack_config` = `<label>@data=...`) come from the outcomes table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wrt.analysis.tables import game_cells

BUDGET_INFO = {"attack": "attack_base_label", "fraction": "attack.data.fraction", "count": "attack.data.count",
               "labels": "attack.data.labels", "domain": "attack.data.domain", "images": "attack.data.images"}
LINE_KEYS = ["setting", "scheme", "scheme_config", "attack"]
MEASURES = ["surrogate_wm_acc", "rescaled_wm_acc", "surrogate_test_acc", "stealing_loss"]


def _budgets(scored: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, attack_config): its base attack label and budget; images is the median over its runs
    (NaN when no run recorded it)."""
    frame = scored[["setting", "attack_config", *BUDGET_INFO.values()]].rename(
        columns={v: k for k, v in BUDGET_INFO.items()})
    frame = frame.assign(count=pd.to_numeric(frame["count"]), images=pd.to_numeric(frame["images"]))
    return frame.groupby(["setting", "attack_config"], as_index=False).agg(
        attack=("attack", "first"), fraction=("fraction", "first"), count=("count", "first"),
        labels=("labels", "first"), domain=("domain", "first"), images=("images", "median")).round({"images": 0})


def amount_column(table: pd.DataFrame) -> str:
    """`images` when every row knows it, else `fraction`: the x axis of a budget sweep."""
    return "images" if table["images"].notna().all() else "fraction"


def data_budget_table(cells: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """The outcome cells (means with CIs, success) of every (scheme config, attack) tried at several data
    fractions or counts, one row per budget; `attack` names the line (with its label source and domain when
    those vary too). Empty when no attack's budget varies."""
    budgets = _budgets(scored)
    several = budgets.groupby(["setting", "attack"])[["labels", "domain"]].transform("nunique").max(axis=1) > 1
    budgets["attack"] = np.where(several, budgets["attack"] + " (" + budgets["labels"] + ", " + budgets["domain"]
                                 + ")", budgets["attack"])
    table = game_cells(cells).drop(columns="attack").merge(budgets, on=["setting", "attack_config"])
    table["size"] = list(zip(table["fraction"], table["count"].fillna(-1)))
    table = table[table.groupby(LINE_KEYS)["size"].transform("nunique") > 1]
    columns = [*LINE_KEYS, "attack_config", "fraction", "count", "images", "n_seeds", "theta",
               *[f"{m}{s}" for m in MEASURES for s in ("", "_lo", "_hi")], "success"]
    table = table[columns].sort_values([*LINE_KEYS, "images", "fraction", "count"]).reset_index(drop=True)
    return table.astype({"count": "Int64", "images": "Int64"})


def min_data_table(budget: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, scheme config, attack) the smallest budget at which the attack succeeds (surrogate wm
    acc < θ and stealing loss within the limit, on the seed means); blank when no budget tried succeeds."""
    rows = []
    for key, line in budget.groupby(LINE_KEYS, sort=True):
        line = line.sort_values([amount_column(line), "count"])
        hits = line[line["success"]]
        row = {**dict(zip(LINE_KEYS, key)), "budgets_tried": len(line), "max_images": line["images"].max(),
               "removed": not hits.empty}
        first = hits.iloc[0] if len(hits) else pd.Series(dtype=float)
        row.update({f"min_{c}": first.get(c, np.nan) for c in ("images", "fraction", "count")})
        row.update({m: first.get(m, np.nan) for m in ("surrogate_wm_acc", "surrogate_test_acc", "stealing_loss")})
        rows.append(row)
    return pd.DataFrame(rows).astype({c: "Int64" for c in ("max_images", "min_images", "min_count")})
