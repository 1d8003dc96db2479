"""Ambiguity (forging) attacks: does a counterfeit ownership claim, made without training data, verify on
the stolen model? Read from the runs' `attack.result` (docs/run_json.md; its fields: `Claim`, checked when
the runs are loaded, `check_claim`); these runs leave the model unchanged and never enter the removal game."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from wrt.analysis.load import check_fields, record_schema
from wrt.analysis.tables import AMBIGUITY
from wrt.record import FRACTION, entry

NOT_APPLICABLE = "not applicable"
KEYS = ["setting", "scheme", "scheme_config", "attack_config"]
MEANS = ["claim_level", "verified", "best_wm_acc", "mean_wm_acc"]  # seed means
FIXED = ["attempts", "key_size"]  # the same on every seed of a config
COLUMNS = [*KEYS, "n_seeds", *FIXED, *MEANS, "false_claim_rate", "false_claim", "reason"]


@dataclass
class Claim:
    """`attack.result` of an ambiguity run, as the forging attack reports it (`wrt.attacks.forging`)."""
    applicable: bool = entry()  # false: the scheme has no counterfeit strategy (`reason`)
    reason: str | None = entry()
    attempts: int = entry(low=0)
    key_size: int = entry(low=0)
    claim_level: float = entry(**FRACTION)
    p: float = entry(low=0.0, high=1.0, low_open=True, high_open=True)  # of a chance match at the claim level
    verified: int = entry(low=0)  # counterfeits that reached the claim level
    best_wm_acc: float = entry(**FRACTION)
    mean_wm_acc: float = entry(**FRACTION)
    false_claim: bool = entry()


CLAIM_SCHEMA = record_schema(Claim, "attack.result.")


def check_claim(record: dict) -> str | None:
    """Why an ambiguity run's `attack.result` is not a `Claim` (a `load_runs` check), or None."""
    if not isinstance(record.get("attack"), dict) or record["attack"].get("category") != AMBIGUITY:
        return None
    return check_fields(record, CLAIM_SCHEMA, record["status"])


def forging_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The ok, role-marked ambiguity runs that recorded `attack.result`."""
    if "attack.result.applicable" not in runs:
        return runs.iloc[:0]
    return runs[(runs["status"] == "ok") & (runs["role"] == "marked") & (runs["attack.category"] == AMBIGUITY)
                & runs["attack.result.applicable"].notna()]


def _field(group: pd.DataFrame, name: str) -> pd.Series:
    """`attack.result.<name>` of the group's runs (empty when none recorded it)."""
    return group.get(f"attack.result.{name}", pd.Series(dtype=object))


def _row(group: pd.DataFrame) -> dict:
    """One config's outcome; not applicable (with the reason) when the scheme has no counterfeit strategy."""
    if not _field(group, "applicable").astype(bool).all():
        return {"false_claim": NOT_APPLICABLE, "reason": next(iter(_field(group, "reason").dropna()), "")}
    claims = _field(group, "false_claim").astype(bool)
    return {**{c: _field(group, c).iloc[0] for c in FIXED},
            **{c: _field(group, c).astype(float).mean() for c in MEANS},
            "false_claim_rate": claims.mean(), "false_claim": "yes" if claims.any() else "no", "reason": ""}


def forgery_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, scheme config, forging config): attempts, counterfeit key size, claim level,
    verified counterfeits and best/mean forged wm acc (means over seeds); false_claim yes when a counterfeit
    verified on some seed (false_claim_rate: the fraction of seeds), or not applicable with the reason."""
    forged = forging_runs(runs).rename(columns={"scheme.name": "scheme", "scheme_label": "scheme_config",
                                                "attack_label": "attack_config"})
    rows = [{**dict(zip(KEYS, key)), "n_seeds": group["seed"].nunique(), **_row(group)}
            for key, group in forged.groupby(KEYS, sort=True)]
    table = pd.DataFrame(rows, columns=COLUMNS).astype({c: "Int64" for c in FIXED})
    if (table["verified"].dropna() % 1 == 0).all():  # one seed, or seeds that agree: a whole count
        table["verified"] = table["verified"].astype("Int64")
    return table


def summary(table: pd.DataFrame) -> str:
    """`forging: false ownership claims succeed against k of n schemes` (a scheme counts when some config
    of it was falsely claimed), plus how many had no counterfeit strategy."""
    outcomes = table.groupby("scheme")["false_claim"].agg(set)
    succeeded = sum("yes" in o for o in outcomes)
    inapplicable = sum(o == {NOT_APPLICABLE} for o in outcomes)
    line = f"forging: false ownership claims succeed against {succeeded} of {len(outcomes)} schemes"
    return line + (f" ({inapplicable} not applicable)" if inapplicable else "")
