"""The SoK's published results as reference data (Lukas et al., S&P 2022).

`sok_table5.csv`: Table V's robustness marks, one row per (attack, scheme), on CIFAR-10 and on
ImageNet (✓ robust, ✗ removed, – not run); `sok_table4.csv`: Table IV's decision thresholds
(p = 0.05, unscaled). Both are transcribed from the paper's text (../shared/seeds/003_*, Tables IV
and V) with wrt's config names for attacks and schemes. `compare` sets a computed Table V beside
one of them, `beside_table4` the computed thresholds beside Table IV: `wrt-analyze reference=sok_cifar10`
(or `sok_imagenet`, or `none`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from wrt.validation import require

DATA = Path(__file__).resolve().parent
REFERENCES = {"sok_cifar10": "cifar10", "sok_imagenet": "imagenet"}
ROBUST, REMOVED = "✓", "✗"
SPLIT = re.compile(r"±\((\d+) of (\d+)\)")  # wrt.analysis.tables' mark of a cell that the seeds split


def check_reference(name: str | None) -> None:
    require(name in (None, "none", *REFERENCES), "reference", name, f"none or one of {', '.join(REFERENCES)}")


def table5(name: str) -> pd.DataFrame:
    """Table V of reference `name` as rows (attack, scheme, mark)."""
    check_reference(name)
    marks = pd.read_csv(DATA / "sok_table5.csv")
    return marks[["attack", "scheme", REFERENCES[name]]].rename(columns={REFERENCES[name]: "mark"})


def table4(name: str) -> pd.Series:
    """Table IV of reference `name`: the decision threshold θ per scheme."""
    check_reference(name)
    return pd.read_csv(DATA / "sok_table4.csv").set_index("scheme")[REFERENCES[name]]


def beside_table4(thresholds: pd.DataFrame, name: str) -> pd.DataFrame:
    """The thresholds table (`wrt.analysis.thresholds.decision_thresholds`) with the reference's Table IV θ
    of each scheme (`paper_threshold`, empty for schemes the SoK lacks) after our θ and its interval."""
    out = thresholds.copy()
    out.insert(out.columns.get_loc("threshold_hi") + 1, "paper_threshold", out["scheme"].map(table4(name)))
    return out


def seed_majority(mark: str) -> str | None:
    """The mark that most seeds give: ✓ and ✗ as they are; `±(k of n)` (k of n seeds remove the watermark) is
    ✗ when k > n/2 and ✓ when k < n/2; None for a tie and for every other mark (undecided, incomplete, ...)."""
    match = SPLIT.fullmatch(str(mark))
    if match:
        removing, seeds = int(match[1]), int(match[2])
        return REMOVED if 2 * removing > seeds else ROBUST if 2 * removing < seeds else None
    return mark if mark in (ROBUST, REMOVED) else None


def compare(robustness: pd.DataFrame, name: str) -> pd.DataFrame:
    """Every cell of a computed Table V (`robustness`: one row per attack, one column per scheme,
    marks as in `wrt.analysis.tables.robustness_table`) that the reference also has, with both
    marks and `agrees`: true or false where both are ✓ or ✗, null where either is not (the seeds
    disagree, the cell is undecided or not run); `ours_majority` (`seed_majority`) and `agrees_majority`
    the same for the mark that most seeds give."""
    reference = table5(name)
    ours = robustness.melt(id_vars=["attack"], value_vars=[c for c in robustness.columns
                                                          if c in set(reference["scheme"])],
                           var_name="scheme", value_name="ours")
    cells = ours.merge(reference.rename(columns={"mark": "paper"}), on=["attack", "scheme"])
    decided = cells["ours"].isin([ROBUST, REMOVED]) & cells["paper"].isin([ROBUST, REMOVED])
    cells["agrees"] = (cells["ours"] == cells["paper"]).where(decided)
    cells["ours_majority"] = cells["ours"].map(seed_majority)
    by_majority = cells["ours_majority"].notna() & cells["paper"].isin([ROBUST, REMOVED])
    cells["agrees_majority"] = (cells["ours_majority"] == cells["paper"]).where(by_majority)
    return cells.astype({"agrees": "object", "agrees_majority": "object"}).reset_index(drop=True)


TOTAL = "total"  # the agreement table's last row per setting: every row's cells


def agreement_per_attack(cells: pd.DataFrame) -> pd.DataFrame:
    """Per setting and attack (a Table V row), then a `total` row per setting: `agree` of the `decided` cells
    (✓ or ✗ in both tables) carry the same mark, `compared`: the row's cells that both tables have (only the
    reference's schemes: `compare` leaves ours that the SoK lacks, greedy_residuals and deepsigns_bb, out), and
    `agreement`: `k/n` as in `agreement_line`; `agreement_majority`: the same for the marks that most seeds give
    (`seed_majority`: a cell the seeds split 2 of 3 counts with the two), from `agree_majority` and
    `decided_majority`."""
    keys = [key for key in ("setting", "attack") if key in cells]
    decided = cells.assign(decided=cells["agrees"].notna(), agree=cells["agrees"].eq(True),
                           decided_majority=cells["agrees_majority"].notna(),
                           agree_majority=cells["agrees_majority"].eq(True))
    counts = {"agree": ("agree", "sum"), "decided": ("decided", "sum"), "compared": ("agrees", "size"),
              "agree_majority": ("agree_majority", "sum"), "decided_majority": ("decided_majority", "sum")}
    rows = decided.groupby(keys, sort=False).agg(**counts).astype(int).reset_index()
    if "setting" in cells:
        totals = decided.groupby("setting", sort=False).agg(**counts).astype(int).reset_index()
    else:
        totals = pd.DataFrame([{name: int(decided[column].sum()) if how == "sum" else len(decided)
                                for name, (column, how) in counts.items()}])
    table = pd.concat([rows, totals.assign(attack=TOTAL)], ignore_index=True)
    if "setting" in cells:  # each setting's rows, then its total
        order = {setting: i for i, setting in enumerate(dict.fromkeys(cells["setting"]))}
        table = table.sort_values("setting", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    table["agreement"] = [f"{a}/{d}" for a, d in zip(table["agree"], table["decided"])]
    table["agreement_majority"] = [f"{a}/{d}" for a, d in zip(table["agree_majority"], table["decided_majority"])]
    return table[[*keys, "agree", "decided", "compared", "agreement", "agree_majority", "decided_majority",
                  "agreement_majority"]]


ROBUSTNESS_META = ("setting", "category", "attack", "seeds", "seeds_agree", "runs_present", "runs_expected")


def beside_table5(robustness: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The computed Table V (`wrt.analysis.tables.robustness_table`) in the README's form, with the reference's
    marks (`cells`: `compare` of each setting, with `setting`): per setting its rows, each scheme's mark followed
    by the reference's in parentheses where the two do not agree, in bold where both are ✓ or ✗ and differ (a
    disagreement; an agreeing cell is our mark alone); `agreement`: agree/decided of the row
    (`agreement_per_attack`), then the setting's `total` row; `agreement_majority`: the same for the marks that
    most seeds give."""
    schemes = [c for c in robustness.columns if c not in ROBUSTNESS_META]
    paper = {(s, a, x): (p, agrees) for s, a, x, p, agrees in
             zip(cells["setting"], cells["attack"], cells["scheme"], cells["paper"], cells["agrees"])}
    counts = agreement_per_attack(cells)
    agreement = dict(zip(zip(counts["setting"], counts["attack"]), counts["agreement"]))
    majority = dict(zip(zip(counts["setting"], counts["attack"]), counts["agreement_majority"]))
    rows = []
    for setting, block in robustness.groupby("setting", sort=True):
        for _, row in block.iterrows():
            out = {"setting": setting, "attack": row["attack"]}
            for scheme in schemes:
                mark, (theirs, agrees) = row[scheme], paper.get((setting, row["attack"], scheme), (None, True))
                out[scheme] = f"{mark} ({theirs})" if pd.isna(agrees) else mark if agrees else f"**{mark}** ({theirs})"
            rows.append({**out, "agreement": agreement.get((setting, row["attack"]), ""),
                         "agreement_majority": majority.get((setting, row["attack"]), "")})
        rows.append({"setting": setting, "attack": TOTAL, **dict.fromkeys(schemes, ""),
                     "agreement": agreement.get((setting, TOTAL), ""),
                     "agreement_majority": majority.get((setting, TOTAL), "")})
    return pd.DataFrame(rows, columns=["setting", "attack", *schemes, "agreement", "agreement_majority"])


def agreement_line(cells: pd.DataFrame) -> str:
    """`agreement <k>/<n> cells`: k of the n cells decided in both tables carry the same mark."""
    decided = cells["agrees"].dropna()
    return f"agreement {int(decided.sum())}/{len(decided)} cells"


def no_comparable_cell(robustness: pd.DataFrame, name: str, setting: str, dataset: str) -> str:
    """The line for a setting of which no cell is in reference `name`, with the reason: no attack or no scheme
    of the setting is a Table V row or column of the reference (and the setting's dataset, when it is another
    dataset than the reference's)."""
    marks = table5(name)
    attacks = sorted(set(robustness["attack"]) - {"marked wm acc (mean)"})
    schemes = [c for c in robustness.columns if c not in ("setting", "category", "attack", "seeds", "seeds_agree",
                                                          "runs_present", "runs_expected")]
    if not set(attacks) & set(marks["attack"]):
        reason = f"no Table V row run (its attacks {', '.join(attacks) or 'none'} are no row of {name})"
    elif not set(schemes) & set(marks["scheme"]):
        reason = f"none of its schemes ({', '.join(schemes) or 'none'}) is a column of {name}"
    else:
        reason = f"none of its (attack, scheme) cells is a cell of {name}"
    other = f"; it is another dataset's setting ({dataset}, {name} is {REFERENCES[name]})" \
        if dataset != REFERENCES[name] else ""
    return f"reference {name}: no comparable cell in setting {setting}: {reason}{other}"
