"""Read run JSON files (docs/run_json.md) into one pandas DataFrame, one row per run."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import pandas as pd

SCHEMA_VERSION = 1
ANALYSIS_DIRNAME = "analysis"

# Fields an "ok" run must carry, with the check each value must pass.
_IS_STR = (lambda v: isinstance(v, str), "a string")
_IS_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
_IS_NUM = (lambda v: isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v), "a finite number")
_IS_FRACTION = (lambda v: _IS_NUM[0](v) and 0.0 <= v <= 1.0, "a fraction in [0, 1]")
_IS_DICT = (lambda v: isinstance(v, dict), "an object")
_IS_BOOL = (lambda v: isinstance(v, bool), "true or false")
_IS_OPT_NUM = (lambda v: v is None or _IS_NUM[0](v), "a number or null")
_IS_OPT_INT = (lambda v: v is None or _IS_INT[0](v), "an integer or null")

REQUIRED_OK_FIELDS = {
    "run_name": _IS_STR,
    "dataset": _IS_STR,
    "model": _IS_STR,
    "seed": _IS_INT,
    "role": (lambda v: v in ("marked", "null"), '"marked" or "null"'),
    "scheme.name": _IS_STR,
    "scheme.params": _IS_DICT,
    "scheme.bits": _IS_BOOL,
    "scheme.key_size": _IS_OPT_INT,
    "attack.name": _IS_STR,
    "attack.category": _IS_STR,
    "attack.params": _IS_DICT,
    "source.test_acc": _IS_FRACTION,
    "marked.test_acc": _IS_FRACTION,
    "marked.wm_acc": _IS_FRACTION,
    "surrogate.test_acc": _IS_FRACTION,
    "surrogate.wm_acc": _IS_FRACTION,
    "embedding_loss": _IS_NUM,
    "stealing_loss": _IS_NUM,
    "attack_time_ratio": _IS_OPT_NUM,
}
# Fields newer run JSONs carry; older files lack them, but when present they must pass the check.
OPTIONAL_FIELDS = {
    "num_classes": (lambda v: v is None or (_IS_INT[0](v) and v >= 2), "an integer ≥ 2 or null"),
    "attack.data.fraction": (lambda v: _IS_FRACTION[0](v) and v > 0, "a fraction in (0, 1]"),
    "attack.data.count": (lambda v: v is None or (_IS_INT[0](v) and v >= 1), "an integer ≥ 1 or null"),
    "attack.data.images": _IS_OPT_INT,
    # the forging attack's claim (wrt.analysis.forgery)
    **{f"attack.result.{k}": _IS_BOOL for k in ("applicable", "false_claim")},
    **{f"attack.result.{k}": _IS_INT for k in ("attempts", "key_size", "verified")},
    **{f"attack.result.{k}": _IS_FRACTION for k in ("claim_level", "best_wm_acc", "mean_wm_acc")},
}
DATA_FIELDS = ["attack.data.fraction", "attack.data.count", "attack.data.labels", "attack.data.domain"]

# Columns every DataFrame row has, so failed runs that stopped early still fit the table.
BASE_COLUMNS = [
    "path", "run_name", "status", "error", "failed_stage", "dataset", "model", "budget", "seed", "role",
    "scheme.name", "scheme.bits", "scheme.key_size", "attack.name", "attack.category",
    "marked.cached", "marked.embed_time_s", "source.train_time_s", "timing_s.embed", "scheme_label", "attack_label",
    "num_classes", *DATA_FIELDS, "attack.data.images",
]


class ResultsDirError(Exception):
    """The results directory is missing or holds no usable run."""


@dataclass
class LoadedRuns:
    runs: pd.DataFrame
    skipped: list[tuple[Path, str]]


def _get(record: dict, dotted: str):
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(dotted)
        value = value[key]
    return value


def flatten(record: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys (`scheme.params.lambda`); lists and scalars are kept as values."""
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def config_label(name: str, params: dict | None, ablated: list | None = None) -> str:
    """Readable config label such as `uchida(lambda=1)`; a combined attack lists its steps joined
    by `+`. With `ablated` (the parameters the paper varies), only those are shown."""
    params = params or {}
    if isinstance(params.get("steps"), list):
        steps = [config_label(step.get("name", "?"), step.get("params"), step.get("ablated"))
                 for step in params["steps"] if isinstance(step, dict)]
        return f"{name}({'+'.join(steps)})"
    if isinstance(ablated, list):
        params = {k: v for k, v in params.items() if k in ablated}
    flat = flatten(params)
    if not flat:
        return name
    return f"{name}({','.join(f'{k}={_format_value(v)}' for k, v in sorted(flat.items()))})"


def validate(record) -> str | None:
    """Return why `record` is not a usable run, or None when it is."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version is {record.get('schema_version')!r}, expected {SCHEMA_VERSION}"
    status = record.get("status")
    if status not in ("ok", "failed"):
        return f'status is {status!r}, expected "ok" or "failed"'
    if status == "failed":
        return None if isinstance(record.get("run_name"), str) else "failed run without a run_name"
    for field, (check, expected) in {**REQUIRED_OK_FIELDS, **OPTIONAL_FIELDS}.items():
        try:
            value = _get(record, field)
        except KeyError:
            if field in OPTIONAL_FIELDS:
                continue
            return f"incomplete: missing {field}"
        if not check(value):
            return f"wrong type: {field} is {value!r}, expected {expected}"
    return None


def add_varied_params(runs: pd.DataFrame) -> pd.DataFrame:
    """A label shows only the parameters the paper ablates; configs that share a label but set some other
    parameter differently (`attack.epochs=25` on the command line) get those parameters in their label too,
    `transfer_learning(epochs=25,milestones=[15, 20])`, so that they are never averaged like seeds. A
    parameter that a run does not record (an older file) does not count as different."""
    for kind in ("scheme", "attack"):
        label_column, prefix = f"{kind}_label", f"{kind}.params."
        params = [c for c in runs.columns if c.startswith(prefix)]
        for label, group in runs.groupby(label_column):
            varied = [c for c in params if group[c].dropna().map(repr).nunique() > 1]
            if varied:
                runs.loc[group.index, label_column] = [
                    _with_params(label, {c[len(prefix):]: row[c] for c in varied if _is_set(row[c])})
                    for _, row in group.iterrows()]
    return runs


def _is_set(value) -> bool:
    return isinstance(value, (list, dict)) or pd.notna(value)


def _with_params(label: str, params: dict) -> str:
    """`label` with `params` added inside its parentheses."""
    if not params:
        return label
    text = ",".join(f"{k}={_format_value(v)}" for k, v in sorted(params.items()))
    return f"{label[:-1]},{text})" if label.endswith(")") else f"{label}({text})"


DEFAULT_DATA = {"attack.data.fraction": 1.0, "attack.data.labels": "protocol", "attack.data.domain": "in"}


def _budget_text(row: pd.Series, varied: list[str]) -> str:
    """`data=10%` (or `data=500` images), plus the label source and domain when those vary."""
    count = row["attack.data.count"]
    parts = [f"data={int(count)}" if pd.notna(count) else f"data={100 * row['attack.data.fraction']:g}%"]
    parts += [f"{f.rsplit('.', 1)[1]}={row[f]}" for f in ("attack.data.labels", "attack.data.domain") if f in varied]
    return ",".join(parts)


def add_data_budgets(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs without `attack.data` (older files) had the default budget: the whole data, images unknown.
    An attack config whose runs differ in the attacker's data budget gets it in its label,
    `transfer_learning(epochs=5)@data=10%`, so different budgets are never averaged like seeds;
    `attack_base_label` keeps the label without it."""
    runs = runs.fillna(DEFAULT_DATA)
    runs["attack_base_label"] = runs["attack_label"]
    for label, group in runs.groupby("attack_label"):
        varied = [f for f in DATA_FIELDS if group[f].nunique(dropna=False) > 1]
        if varied:
            runs.loc[group.index, "attack_label"] = [f"{label}@{_budget_text(row, varied)}"
                                                     for _, row in group.iterrows()]
    return runs


def _row(path: Path, record: dict) -> dict:
    """The flattened record without `config`; a run that failed before recording `attack.data` takes its
    budget from the config's `attacker_data`."""
    config = record.get("config")
    record = {k: v for k, v in record.items() if k != "config"}
    row = dict.fromkeys(BASE_COLUMNS)
    if isinstance(config, dict) and isinstance(config.get("attacker_data"), dict):
        row.update(flatten({"attack": {"data": config["attacker_data"]}}))
    row.update(flatten(record))
    row["path"] = str(path)
    scheme, attack = record.get("scheme") or {}, record.get("attack") or {}
    if isinstance(scheme, dict) and isinstance(scheme.get("name"), str):
        row["scheme_label"] = config_label(scheme["name"], scheme.get("params"), scheme.get("ablated"))
    if isinstance(attack, dict) and isinstance(attack.get("name"), str):
        row["attack_label"] = config_label(attack["name"], attack.get("params"), attack.get("ablated"))
    return row


def run_files(results_dir: Path) -> list[Path]:
    """Every `*.json` below results_dir, except the analyzer's own `analysis/` output."""
    analysis_dir = results_dir / ANALYSIS_DIRNAME
    return sorted(p for p in results_dir.rglob("*.json") if analysis_dir not in p.parents and p.is_file())


def load_runs(results_dir: str | Path, warn=lambda line: print(line, file=sys.stderr)) -> LoadedRuns:
    """Read every run JSON below results_dir (the `config` field is left out: it repeats the params).

    An unreadable, corrupt, half-written, incomplete or wrong-typed file is skipped with exactly one
    warning line, followed by one count line when any were skipped.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultsDirError(f"results_dir {results_dir} does not exist or is not a directory")
    rows, skipped = [], []
    for path in run_files(results_dir):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            reason = f"unreadable ({type(exc).__name__})"
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON, corrupt or half-written ({exc.msg}: line {exc.lineno} column {exc.colno})"
        else:
            reason = validate(record)
        if reason is None:
            rows.append(_row(path, record))
        else:
            skipped.append((path, reason))
            warn(f"warning: skipped {path}: {reason}")
    if skipped:
        warn(f"warning: skipped {len(skipped)} of {len(skipped) + len(rows)} JSON files under {results_dir}")
    if not rows:
        raise ResultsDirError(f"no usable run JSON under {results_dir}")
    return LoadedRuns(runs=add_data_budgets(add_varied_params(pd.DataFrame(rows))), skipped=skipped)
