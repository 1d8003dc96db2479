"""Read run JSON files (docs/run_json.md) into one pandas DataFrame, one row per run.

The run record's schema is `SCHEMA` below, derived from the record's dataclasses (`wrt.record`): every field
is checked when a file is loaded, so that a bad file is skipped with one warning instead of breaking a table
later. What an attack reports (`attack.result`) is only an object here; an analysis that reads it checks its
own fields (`checks` of `load_runs`, e.g. `wrt.analysis.forgery.check_claim`)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import pandas as pd

from wrt.record import FLOAT32_SLACK, SCHEMA_VERSION, RunRecord

ANALYSIS_DIRNAME = "analysis"
VERSIONS_DIRNAME = "analysis.versions"  # the analyses behind the `analysis` link (wrt.analysis.report.publish)
RUNS_DIRNAME = "runs"
MAX_FILE_BYTES = 16 * 2**20   # a run JSON is a few kB; its `config` is the largest part
MAX_DEPTH = 32                # nesting levels of a record
MAX_PARAMS_CHARS = 10_000     # a scheme's or attack's params as JSON (they make the config labels)

_NAME = re.compile(r"[A-Za-z0-9_.+=-]{1,100}")


def _num(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _optional(check):
    return lambda v: v is None or check(v)


def _small(v) -> bool:
    return isinstance(v, dict) and len(json.dumps(v)) <= MAX_PARAMS_CHARS


FORMS = {  # `wrt.record.entry(form=...)`: named formats of strings and objects
    "name": (lambda v: isinstance(v, str) and _NAME.fullmatch(v) is not None,
             "a config name (1–100 letters, digits, _ . + = -)"),
    "file_name": (lambda v: isinstance(v, str) and 0 < len(v) <= 255 and "/" not in v,
                  "a file name (1–255 characters, no /)"),
    "params": (_small, f"an object of at most {MAX_PARAMS_CHARS} characters"),
}
TYPES = {str: (lambda v: isinstance(v, str), "a string"), bool: (lambda v: isinstance(v, bool), "true or false"),
         dict: (lambda v: isinstance(v, dict), "an object"),
         list[str]: (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings")}


def _bound(value) -> str:
    return f"2**{value.bit_length() - 1}" if _int(value) and value > 2**32 and value & (value - 1) == 0 else f"{value:g}"


def _number(kind: type, meta: dict) -> tuple:
    """The check of an int or float field within the entry's range (a float's closed bounds up to FLOAT32_SLACK),
    with what it must be."""
    low, high, low_open, high_open = meta["low"], meta["high"], meta["low_open"], meta["high_open"]
    is_kind = _int if kind is int else _num
    slack = 0 if kind is int else FLOAT32_SLACK

    def check(v):
        return (is_kind(v) and (low is None or (v > low if low_open else v >= low - slack))
                and (high is None or (v < high if high_open else v <= high + slack)))

    what = meta["what"] or ("an integer" if kind is int else "a number")
    if high is not None:
        text = f"{what} in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    elif low is not None:
        text = f"{what} {'>' if low_open else '≥'} {_bound(low)}"
    else:
        text = what
    return check, text


def _field_check(hint, meta: dict) -> tuple:
    """(check, what it must be) of a record field from its annotation and entry."""
    args = typing.get_args(hint)
    nullable = type(None) in args
    kind = next(a for a in args if a is not type(None)) if nullable else hint
    if dataclasses.is_dataclass(kind):
        check, text = TYPES[dict]
    elif meta["form"]:
        check, text = FORMS[meta["form"]]
    elif meta["choices"]:
        choices = meta["choices"]
        check = lambda v: isinstance(v, str) and v in choices  # noqa: E731
        text = " or ".join(f'"{c}"' for c in choices) if len(choices) == 2 else f"one of {', '.join(choices)}"
    elif kind in (int, float):
        check, text = _number(kind, meta)
    elif kind == list[float]:
        item, text = _number(float, meta)
        check, text = (lambda v: isinstance(v, list) and all(item(x) for x in v)), f"a list, each {text}"
    else:
        check, text = TYPES[kind]
    if not nullable:
        return check, text
    return _optional(check), "true, false or null" if kind is bool else f"{text} or null"


def record_schema(cls=RunRecord, prefix: str = "") -> dict:
    """dotted field -> (check, what it must be, required in an ok run), from the record's dataclasses."""
    schema = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name, hint = f"{prefix}{f.name}", hints[f.name]
        schema[name] = (*_field_check(hint, f.metadata), f.metadata["required"])
        nested = [a for a in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(a)]
        if nested:
            schema.update(record_schema(nested[0], f"{name}."))
    return schema


# dotted field -> (check, what it must be, required in an ok run): the run record's fields (`wrt.record`) and the
# data sizes of the report's header, from the run's config. A failed run needs only `run_name`; every other field
# it has must pass its check (null where the check allows it). A field an older file lacks is not required; when
# present it must pass. `schema_version` and `status` are checked first (`validate`).
SCHEMA = {
    **record_schema(),
    **{f"config.budget.{k}": (_optional(lambda v: _int(v) and v >= 1), "an integer ≥ 1 or null", False)
       for k in ("max_train", "max_test")},
}
CONFIG_FIELDS = ["config.budget.max_train", "config.budget.max_test"]  # the only config fields kept as columns
DATA_FIELDS = ["attack.data.fraction", "attack.data.count", "attack.data.labels", "attack.data.domain"]

# Columns every DataFrame row has, so failed runs that stopped early still fit the table.
BASE_COLUMNS = [
    "path", "run_name", "status", "error", "failed_stage", "dataset", "model", "budget", "seed", "role",
    "scheme.name", "scheme.bits", "scheme.match_rate", "scheme.key_size", "attack.name", "attack.category",
    "marked.cached", "marked.embed_time_s", "source.train_time_s", "timing_s.embed", "scheme_label", "attack_label",
    "num_classes", *DATA_FIELDS, "attack.data.images", "source.test_acc", "marked.test_acc", "marked.wm_acc",
    "created", "versions.wrt", "versions.torch", *CONFIG_FIELDS, "numerics", "searched", "null.keys",
]


class ResultsDirError(Exception):
    """The results directory is missing or holds no usable run."""


@dataclass
class LoadedRuns:
    runs: pd.DataFrame
    skipped: list[tuple[Path, str]]


_MISSING = object()


def _get(record: dict, dotted: str):
    """The value at `dotted`, or _MISSING when a level is absent (or is not an object)."""
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _depth(value) -> int:
    """Nesting depth of a JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level <= MAX_DEPTH + 1:  # deeper than the limit needs no exact count
            children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
            stack.extend((child, level + 1) for child in children)
    return deepest


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


Check = Callable[[dict], "str | None"]  # why a record is not usable, or None


def check_fields(record: dict, schema: dict, status: str) -> str | None:
    """Why `record` fails `schema` (dotted field -> (check, what it must be, required in an ok run)), or None."""
    for field, (check, expected, required) in schema.items():
        value = _get(record, field)
        if value is _MISSING:
            if required and (status == "ok" or field == "run_name"):
                return f"incomplete: missing {field}"
            continue
        if value is None and (status == "failed" or not required):
            continue
        if not check(value):
            return f"wrong type: {field} is {_show(value)}, expected {expected}"
    return None


def validate(record, checks: Sequence[Check] = ()) -> str | None:
    """Return why `record` is not a usable run, or None when it is (`SCHEMA`, then each of `checks`)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version is {_show(record.get('schema_version'))}, expected {SCHEMA_VERSION}"
    status = record.get("status")
    if status not in ("ok", "failed"):
        return f'status is {_show(status)}, expected "ok" or "failed"'
    if _depth({k: v for k, v in record.items() if k != "config"}) > MAX_DEPTH \
            or _depth(record.get("config")) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep"
    return check_fields(record, SCHEMA, status) or next(filter(None, (check(record) for check in checks)), None)


def _show(value) -> str:
    """A value for a warning line: its repr, cut to 60 characters."""
    if isinstance(value, int) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * math.log10(2))} digits"
    return _cut(repr(value))


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


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
    """The flattened record without `config` (but its CONFIG_FIELDS); a run that failed before recording
    `attack.data` takes it from its config's `attacker_data`."""
    config = record.get("config")
    record = {k: v for k, v in record.items() if k != "config"}
    row = dict.fromkeys(BASE_COLUMNS)
    if isinstance(config, dict) and isinstance(config.get("attacker_data"), dict):
        row.update(flatten({"attack": {"data": config["attacker_data"]}}))
    row.update(flatten(record))
    for field in CONFIG_FIELDS:
        value = _get({"config": config}, field)
        row[field] = None if value is _MISSING else value
    row["path"] = str(path)
    row["numerics"] = numerics_label(record)
    row["searched"] = isinstance(record.get("attack"), dict) and record["attack"].get("searched") is True
    scheme, attack = record.get("scheme") or {}, record.get("attack") or {}
    if isinstance(scheme.get("name"), str):
        row["scheme_label"] = config_label(scheme["name"], scheme.get("params"), scheme.get("ablated"))
    if isinstance(attack.get("name"), str):
        row["attack_label"] = config_label(attack["name"], attack.get("params"), attack.get("ablated"))
    return row


def numerics_label(record: dict) -> str | None:
    """What decides a run's floats besides its config (`wrt.pipeline.numerics`: device, precision, CPU threads)
    as one label, `cpu-fp32-2t` (2 threads); None for an older file that records none of them."""
    device, precision, threads = (record.get(k) for k in ("device", "precision", "cpu_threads"))
    if device is None and precision is None and threads is None:
        return None
    return "-".join([str(device or "unknown"), str(precision or "unknown")]
                    + ([f"{threads}t"] if threads is not None else []))


def stage_seconds(run: dict) -> tuple[dict, bool]:
    """A run's seconds per stage as if its threads had the cores to themselves, and whether they come from CPU
    time: a CPU run that records its process CPU seconds (`cpu_s`) gives them divided by its threads (right even
    when other work shared the cores or the run was paused); any other run its wall seconds (`timing_s`)."""
    if run.get("device") == "cpu" and isinstance(run.get("cpu_s"), dict):
        threads = run.get("cpu_threads") or 1
        return {stage: None if s is None else s / threads for stage, s in run["cpu_s"].items()}, True
    return run.get("timing_s") or {}, False


def run_files(results_dir: Path) -> list[Path]:
    """Every `*.json` in a `runs/` folder at or below results_dir (where wrt-run writes them), none inside an
    `analysis/` folder (the analyzer's own outputs, of this or another experiment)."""
    files = []
    for path in sorted(results_dir.rglob("*.json")):
        folders = path.relative_to(results_dir).parts[:-1]
        if (RUNS_DIRNAME in folders or (results_dir.name == RUNS_DIRNAME and not folders)) \
                and ANALYSIS_DIRNAME not in folders and VERSIONS_DIRNAME not in folders and path.is_file():
            files.append(path)
    return files


def read_run(path: Path, checks: Sequence[Check] = ()) -> dict | str:
    """The record in `path`, or why it cannot be used (`validate`)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return f"larger than {MAX_FILE_BYTES // 2**20} MiB"
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable ({type(exc).__name__})"
    except json.JSONDecodeError as exc:
        return f"not valid JSON, corrupt or half-written ({exc.msg}: line {exc.lineno} column {exc.colno})"
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return f"not usable JSON ({str(exc).split(';')[0]})"
    except RecursionError:
        return "not usable JSON (nested too deeply)"
    return validate(record, checks) or record


def _keep(paths_records: list[tuple[Path, dict]], folder: dict[Path, int]) -> int:
    """Which of several files of one run_name to keep: an ok run before a failed one, then a file named after
    its run in a runs/ folder, then the earlier results folder (`folder`: a file's folder's position), then the
    first path."""
    def rank(item):
        path, record = item
        canonical = path.stem == record["run_name"] and path.parent.name == RUNS_DIRNAME
        return (record["status"] != "ok", not canonical, folder[path], str(path))
    return min(range(len(paths_records)), key=lambda i: rank(paths_records[i]))


def load_runs(results_dirs: str | Path | Sequence[str | Path], warn=lambda line: print(line, file=sys.stderr),
              checks: Sequence[Check] = ()) -> LoadedRuns:
    """Read every run JSON below one results folder or several, read as one (`run_files`; the `config` field is
    left out but for the data sizes); `checks`: what the analyses check beyond `SCHEMA` (e.g. the fields of an
    attack's result).

    An unreadable, corrupt, half-written, incomplete, wrong-typed or out-of-range file is skipped with exactly
    one warning line; so is a file on which loading fails unexpectedly. Files that repeat a run_name (a copy)
    count once (`_keep`), with one warning per run_name, except for identical copies in different results
    folders (a baseline's run beside your own copy of it), which count once silently. One count line follows
    when any were skipped. The rows come in run_name order, whatever the folders' layout or listing order.
    """
    dirs = [Path(d) for d in ([results_dirs] if isinstance(results_dirs, (str, Path)) else results_dirs)]
    for results_dir in dirs:
        if not results_dir.is_dir():
            raise ResultsDirError(f"results_dir {results_dir} does not exist or is not a directory")
    where = ", ".join(map(str, dirs))
    folder = {path: k for k, results_dir in enumerate(dirs) for path in run_files(results_dir)}
    files = list(folder)
    good: dict[str, list[tuple[Path, dict]]] = {}
    rows, skipped = [], []
    for path in files:
        try:
            record = read_run(path, checks)
            if isinstance(record, dict):
                rows.append(_row(path, record))
                good.setdefault(record["run_name"], []).append((path, record))
                continue
            reason = record
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the analysis
            reason = f"could not be loaded ({type(exc).__name__}: {_cut(str(exc), 200)})"
        skipped.append((path, reason))
        warn(f"warning: skipped {path}: {reason}")
    for name, copies in good.items():
        if len(copies) > 1:
            kept, record = copies[_keep(copies, folder)]
            dropped = [p for p, _ in copies if p != kept]
            rows = [r for r in rows if r["path"] not in {str(p) for p in dropped}]
            copied = [p for p, r in copies if p != kept and r == record and folder[p] != folder[kept]]
            dropped = [p for p in dropped if p not in copied]
            if dropped:
                skipped += [(p, f"duplicate of run {name} in {kept}") for p in dropped]
                warn(f"warning: run {name} is in {len(copies)} files; kept {kept}, ignored "
                     f"{', '.join(map(str, dropped + copied))}")
    if skipped:
        warn(f"warning: skipped {len(skipped)} of {len(files)} JSON files under {where}")
    if not rows:
        raise ResultsDirError(f"no usable run JSON under {where} (looked for */runs/*.json: "
                              f"{len(files)} found, {len(skipped)} skipped)")
    # one order whatever the folder layout or listing: the tables' row order and bootstrap draws follow it
    rows.sort(key=lambda row: (row["run_name"], row["path"]))
    return LoadedRuns(runs=add_data_budgets(add_varied_params(pd.DataFrame(rows))), skipped=skipped)
