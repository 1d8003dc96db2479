"""Which runs count, and which runs each cell expects (docs/analysis.md, "One run counts once" and "Complete or
incomplete").

* One run counts once: per (setting, scheme config, attack config, seed, role) the analysis uses one ok run
  (`one_run_each`); every further one is reported with one warning naming both files.
* A cell expects the runs that the sweeps' manifests (`manifests/*.json`, written by the ablation sweeper,
  `wrt.sweeper.write_manifests`) plan for its (setting, scheme, attack); without a manifest, the product of
  the scheme and attack configs that appear in the cell × the setting's seeds (`expected_slots`). Runs tagged
  `attack.searched` (an adaptive attacker's search) are never grid runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from wrt.analysis.load import ANALYSIS_DIRNAME, MAX_FILE_BYTES, VERSIONS_DIRNAME, config_label

MANIFESTS_DIRNAME = "manifests"
IDENTITY = ["setting", "scheme_label", "attack_label", "seed", "role"]
SLOT = ["setting", "scheme", "attack", "scheme_config", "attack_config", "seed"]
OK, FAILED, MISSING = "ok", "failed", "missing"  # a slot's state: an ok run, only failed runs, no run
MEASURED = ["marked.test_acc", "marked.wm_acc", "surrogate.test_acc", "surrogate.wm_acc"]


def _grid(runs: pd.DataFrame) -> pd.Series:
    return ~runs["searched"].fillna(False).astype(bool) if "searched" in runs else pd.Series(True, runs.index)


def _why(kept: pd.Series, other: pd.Series) -> str:
    """How a second run of one identity differs from the kept one."""
    if not _same(kept.get("numerics"), other.get("numerics")):
        return f"other numerics: {other.get('numerics') or 'unknown'}, kept {kept.get('numerics') or 'unknown'}"
    keys = [1 if pd.isna(r.get("null.keys")) else int(r.get("null.keys")) for r in (kept, other)]
    if keys[0] != keys[1]:
        return f"{keys[1]} key draws, kept the one with {keys[0]}"
    same = all(_same(kept.get(c), other.get(c)) for c in MEASURED)
    return "a copy under another name" if same else "same run, other results"


def _same(a, b) -> bool:
    """Equal, or both missing (None or NaN)."""
    return bool(pd.isna(a) and pd.isna(b)) if pd.isna(a) or pd.isna(b) else a == b


def one_run_each(runs: pd.DataFrame, warn: Callable[[str], None]) -> pd.DataFrame:
    """`runs` with one ok run per (setting, scheme config, attack config, seed, role) (`IDENTITY`): the one with
    the most null key draws (`null.keys`; a null run's further draws only add scores), then the earliest
    `created`, then the first path. Every other ok run of that identity — a renamed copy, a rerun with other
    numerics merged by `merge_numerics`, a null run with fewer key draws — is dropped with one warning naming
    both files. Failed runs and searched runs are kept as they are (they never count as grid runs)."""
    ok = runs[(runs["status"] == "ok") & _grid(runs)]
    ranked = ok.assign(_keys=ok["null.keys"].fillna(1).astype(float), _created=ok["created"].fillna("~").astype(str),
                       _path=ok["path"].astype(str))
    drop = []
    for _, group in ranked.groupby(IDENTITY, sort=True, dropna=False):
        if len(group) < 2:
            continue
        group = group.sort_values(["_keys", "_created", "_path"], ascending=[False, True, True])
        kept = group.iloc[0]
        for index, other in group.iloc[1:].iterrows():
            warn(f"warning: {other['path']} repeats {kept['path']} ({kept['scheme_label']} vs "
                 f"{kept['attack_label']}, seed {kept['seed']}, role {kept['role']}, setting {kept['setting']}): "
                 f"{_why(kept, other)}; counted once")
            drop.append(index)
    return runs.drop(index=drop)


def _entry_problem(entry) -> str | None:
    if not isinstance(entry, dict):
        return "an entry is not an object"
    for key in ("run_name", "dataset", "model", "budget", "role"):
        if not isinstance(entry.get(key), str):
            return f"an entry's {key} is {entry.get(key)!r}, expected a string"
    if not isinstance(entry.get("seed"), int) or isinstance(entry.get("seed"), bool):
        return f"an entry's seed is {entry.get('seed')!r}, expected an integer"
    for group in ("scheme", "attack"):
        node = entry.get(group)
        if not (isinstance(node, dict) and isinstance(node.get("name"), str)
                and isinstance(node.get("params", {}), dict)):
            return f"an entry's {group} is {node!r}, expected an object with a name and params"
    return None


def manifest_files(results_dir: Path) -> list[Path]:
    """Every `manifests/*.json` at or below results_dir, none inside an analysis output."""
    return [p for p in sorted(Path(results_dir).rglob(f"{MANIFESTS_DIRNAME}/*.json"))
            if not {ANALYSIS_DIRNAME, VERSIONS_DIRNAME} & set(p.relative_to(results_dir).parts[:-1]) and p.is_file()]


def read_manifests(results_dir: Path, warn: Callable[[str], None]) -> list[dict]:
    """The planned runs of every sweep manifest under results_dir (`{"runs": [{run_name, dataset, model, budget,
    seed, role, scheme: {name, params, ablated}, attack: {name, category, params, ablated}}, ...]}`); a file
    that is not such a manifest is skipped with one warning."""
    entries = []
    for path in manifest_files(results_dir):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES // 2**20} MiB")
            data = json.loads(path.read_text(encoding="utf-8"))
            runs = data.get("runs") if isinstance(data, dict) else None
            if not isinstance(runs, list):
                raise ValueError("no list of runs")
            problem = next(filter(None, map(_entry_problem, runs)), None)
            if problem:
                raise ValueError(problem)
        except (OSError, ValueError, RecursionError) as exc:
            warn(f"warning: skipped manifest {path}: {exc}")
            continue
        entries += runs
    return entries


def _state(states: pd.Series) -> str:
    return OK if (states == OK).any() else FAILED if (states == FAILED).any() else MISSING


def expected_slots(runs: pd.DataFrame, manifests: list[dict], ok_names: set[str]) -> pd.DataFrame:
    """One row per expected marked run (`SLOT`, plus `category` and `state`: ok, failed or missing).

    `runs`: the loaded runs with settings and labels (one ok run per identity); `ok_names`: the run names of
    every loaded ok run (a manifest's run counts as present when any file holds it ok). A cell (setting,
    scheme, attack) that a manifest plans expects the manifests' runs (plus any other run of it that is
    present); any other cell expects the product of the scheme and attack configs that appear in its ok or
    failed runs × the seeds of the setting's ok marked runs."""
    marked = runs[(runs["role"] == "marked") & _grid(runs) & runs["status"].isin([OK, FAILED])]
    marked = marked.rename(columns={"scheme.name": "scheme", "attack.name": "attack", "scheme_label": "scheme_config",
                                    "attack_label": "attack_config", "attack.category": "category"})
    present = marked[SLOT + ["category", "run_name", "status"]].rename(columns={"status": "state"})
    categories = present.dropna(subset=["category"]).groupby("attack")["category"].first()
    settings = marked.groupby(["dataset", "model", "budget"])["setting"].unique()
    by_name = present.drop_duplicates("run_name").set_index("run_name")
    planned, names = [], set()
    for entry in manifests:
        name = entry["run_name"]
        names.add(name)
        if entry["role"] != "marked":
            continue
        if name in by_name.index:
            row = by_name.loc[name]
            planned.append({**{k: row[k] for k in SLOT}, "category": row["category"], "state": row["state"]})
            continue
        scheme, attack = entry["scheme"], entry["attack"]
        for setting in settings.get((entry["dataset"], entry["model"], entry["budget"]), []):
            planned.append({"setting": setting, "scheme": scheme["name"], "attack": attack["name"],
                            "scheme_config": config_label(scheme["name"], scheme.get("params"), scheme.get("ablated")),
                            "attack_config": config_label(attack["name"], attack.get("params"), attack.get("ablated")),
                            "seed": entry["seed"], "category": attack.get("category") or categories.get(attack["name"]),
                            "state": OK if name in ok_names else MISSING})
    planned = pd.DataFrame(planned, columns=SLOT + ["category", "state"])
    covered = set(zip(planned["setting"], planned["scheme"], planned["attack"]))
    in_covered = pd.Series([key in covered for key in zip(present["setting"], present["scheme"], present["attack"])],
                           index=present.index, dtype=bool)
    extra = present[in_covered & ~present["run_name"].isin(names)]  # present, though no manifest plans it
    seeds = marked[marked["status"] == OK].groupby("setting")["seed"].unique()
    product = []
    for (setting, scheme, attack), cell in present[~in_covered].groupby(
            ["setting", "scheme", "attack"], sort=True):
        states = cell.groupby(["scheme_config", "attack_config", "seed"])["state"].agg(_state)
        category = cell["category"].dropna().iloc[0] if cell["category"].notna().any() else None
        for s in sorted(cell["scheme_config"].unique()):
            for a in sorted(cell["attack_config"].unique()):
                for seed in sorted(seeds.get(setting, [])):
                    product.append({"setting": setting, "scheme": scheme, "attack": attack, "scheme_config": s,
                                    "attack_config": a, "seed": seed, "category": category,
                                    "state": states.get((s, a, seed), MISSING)})
    slots = pd.concat([planned, extra[SLOT + ["category", "state"]],
                       pd.DataFrame(product, columns=SLOT + ["category", "state"])], ignore_index=True)
    if slots.empty:
        return slots
    return slots.groupby(SLOT, as_index=False, sort=True).agg(category=("category", "first"),
                                                              state=("state", _state))


def counts(slots: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per `keys`: runs_present (slots with an ok run) and runs_expected (all slots)."""
    if slots.empty:
        return pd.DataFrame(columns=[*keys, "runs_present", "runs_expected"])
    return (slots.assign(ok=slots["state"] == OK).groupby(keys, as_index=False, sort=True)
            .agg(runs_present=("ok", "sum"), runs_expected=("state", "size"))
            .astype({"runs_present": int, "runs_expected": int}))


def add_counts(cells: pd.DataFrame, slots: pd.DataFrame) -> pd.DataFrame:
    """The outcomes with runs_present and runs_expected per (setting, scheme config, attack config)."""
    keys = ["setting", "scheme_config", "attack_config"]
    merged = cells.merge(counts(slots, keys), on=keys, how="left")
    return merged.fillna({"runs_present": 0, "runs_expected": 0}).astype(
        {"runs_present": int, "runs_expected": int}).set_axis(cells.index)

