"""The configuration game's sweep (SoK §VII-B, Eq. 6): `hydra/sweeper=ablation` expands every job of the
usual cartesian sweep into one job per configuration of its scheme's and its attack's `ablation:` grid, so
that the analyzer can play the defender's configurations against the attacker's.

The sweeper class is a Hydra plugin, `hydra_plugins/wrt_ablation_sweeper/` (Hydra loads plugins from that
namespace only); this module holds what it does, which the sweep plan (wrt/plan.py) shares.

A config's `ablation:` declares its grid in one of two forms:

* a mapping of lists, `{lam: [0.1, 1, 10]}`: the product of the listed values;
* a list of mappings, `[{kernel: median}, {kernel: gaussian, sigma: 0.1}, ...]`: exactly these
  configurations, for grids where a parameter matters for some values of another only.

A configuration sets the listed parameters and keeps the config's other values. Grids are read from each
job's composed config (so an experiment's or the command line's overrides apply); a parameter that the
job's own overrides set (`scheme.lam=5`) is not ablated. A configuration equal to the job's config runs as
the job itself, without overrides, and configurations that come out the same run once. Options
(wrt/configs/hydra/sweeper/ablation.yaml): `ablate` (the groups to expand), `defaults_only` (config names run at
their default config only) and `select` (config name → the values a configuration must have).

Before the first job starts, the sweeper writes a manifest of the runs it plans into each results folder,
`<results_dir>/manifests/<digest>.json` (`write_manifests`; atomically, one file per distinct plan, so that
several sweeps into one folder each add their own): the analyzer then knows which runs a Table V cell expects,
which the run files alone cannot tell (`select` and `defaults_only` are not in them; docs/analysis.md).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

from wrt.validation import InvalidParameter, require

GROUPS = ("scheme", "attack")
SWEEPER = "hydra_plugins.wrt_ablation_sweeper.ablation_sweeper.AblationSweeper"  # Hydra plugins live there


def configurations(ablation, where: str = "ablation") -> list[dict]:
    """The grid's configurations, each a mapping parameter → value; one empty configuration (the config
    itself) for no grid. `where` names the grid in errors."""
    if OmegaConf.is_config(ablation):
        ablation = OmegaConf.to_container(ablation)
    if not ablation:
        return [{}]
    if isinstance(ablation, Mapping):
        for key, values in ablation.items():
            require(isinstance(values, list) and len(values) > 0, f"{where}.{key}", values,
                    "a non-empty list of values")
        return [dict(zip(ablation, point)) for point in itertools.product(*ablation.values())]
    require(isinstance(ablation, list) and all(isinstance(c, Mapping) for c in ablation), where, ablation,
            "a mapping of lists ({param: [values]}) or a list of mappings ([{param: value, ...}, ...])")
    return [dict(c) for c in ablation]


def ablated_params(ablation) -> list[str]:
    """The parameters a grid varies (either form), sorted: they label a configuration (run JSON `ablated`)."""
    return sorted({key for point in configurations(ablation) for key in point})


def same(a, b) -> bool:
    """Equal as config values: 1 and 1.0 are the same, True and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def hydra_value(value) -> str:
    """`value` written as a Hydra override value that parses back to it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z_][\w-]*", value) and value.lower() not in ("null", "true", "false",
                                                                                  "inf", "nan")
        return value if plain else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise InvalidParameter(f"ablation value {value!r} is not allowed: must be a number, string, bool, null, "
                           f"list or mapping")


@dataclass(frozen=True)
class Options:
    """Which grids the sweep expands (wrt/configs/hydra/sweeper/ablation.yaml)."""
    ablate: tuple[str, ...] = GROUPS
    defaults_only: tuple[str, ...] = ()
    select: dict = field(default_factory=dict)  # config name → {param: value or [values]}

    @classmethod
    def of(cls, ablate=GROUPS, defaults_only=(), select=None) -> Options:
        def names(key, value):
            value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            require(isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value),
                    f"hydra.sweeper.{key}", value, "a list of names")
            return tuple(value)

        ablate, defaults_only = names("ablate", ablate), names("defaults_only", defaults_only)
        for group in ablate:
            require(group in GROUPS, "hydra.sweeper.ablate", list(ablate), f"a list of {' and '.join(GROUPS)}")
        select = OmegaConf.to_container(select) if OmegaConf.is_config(select) else dict(select or {})
        for name, wanted in select.items():
            require(isinstance(wanted, Mapping), f"hydra.sweeper.select.{name}", wanted,
                    "a mapping param → value or list of values")
        return cls(ablate, defaults_only, select)

    @classmethod
    def from_sweeper(cls, sweeper: DictConfig) -> Options | None:
        """The options of an AblationSweeper's config; None for any other sweeper."""
        if sweeper.get("_target_") != SWEEPER:
            return None
        return cls.of(sweeper.get("ablate", GROUPS), sweeper.get("defaults_only", ()), sweeper.get("select"))

    def grid(self, node, group: str, fixed: set[str]) -> list[dict]:
        """The configurations of one group config (`scheme` or `attack` of a composed job) as the parameters
        whose values differ from the config's; `fixed`: parameters the job's overrides set."""
        if group not in self.ablate or node is None:
            return [{}]
        name, current = node.get("name"), OmegaConf.to_container(node, resolve=True)
        points = configurations(node.get("ablation"), f"{group}.{name}.ablation")
        for point in points:
            for key in point:
                require(key in current and key not in ("name", "ablation") and not key.startswith("_"),
                        f"{group}.{name}.ablation", key, f"a parameter of {group} {name}")
        if name in self.select:
            wanted = {k: v if isinstance(v, list) else [v] for k, v in self.select[name].items()}
            points = [p for p in points if all(any(same({**current, **p}.get(k), v) for v in values)
                                               for k, values in wanted.items())]
            require(bool(points), f"hydra.sweeper.select.{name}", self.select[name],
                    f"values that some configuration of {group} {name}'s ablation grid has")
        distinct = []
        for point in points:
            change = {k: v for k, v in point.items() if k not in fixed and not same(current[k], v)}
            if not any(same(sorted(change.items()), sorted(d.items())) for d in distinct):
                distinct.append(change)
        return distinct


def set_keys(job: Sequence[str], group: str) -> set[str]:
    """The parameters of `group` that a job's overrides set (`scheme.lam=5` → lam)."""
    keys = {override.split("=", 1)[0].lstrip("+~") for override in job}
    return {key[len(group) + 1:] for key in keys if key.startswith(f"{group}.")}


def configuration_overrides(cfg: DictConfig, job: Sequence[str], options: Options) -> list[list[str]]:
    """One list of extra overrides (`scheme.lam=1`, ...) per configuration of the job's scheme × attack; one
    empty list for a job whose scheme or attack is in `defaults_only`."""
    if any(cfg.get(group) is not None and cfg[group].get("name") in options.defaults_only for group in GROUPS):
        return [[]]
    grids = [[[f"{group}.{k}={hydra_value(v)}" for k, v in change.items()]
              for change in options.grid(cfg.get(group), group, set_keys(job, group))] for group in GROUPS]
    return [scheme + attack for scheme, attack in itertools.product(*grids)]


def expand(jobs: Sequence[Sequence[str]], compose: Callable[[list[str]], DictConfig],
           options: Options) -> list[tuple[list[str], DictConfig, list[str]]]:
    """Every job's configurations: (job, its composed config, the configuration's extra overrides)."""
    expanded = []
    for job in jobs:
        cfg = compose(list(job))
        expanded += [(list(job), cfg, extra) for extra in configuration_overrides(cfg, job, options)]
    return expanded


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """A copy of a composed config with value overrides applied as Hydra parses them (for the sweep plan,
    which then need not compose every configuration again)."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))  # no resolution: interpolations stay
    with open_dict(cfg):
        for override in OverridesParser.create().parse_overrides(list(overrides)):
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
    return cfg


_ABSENT = object()


def job_composer(compose: Callable[[list[str]], DictConfig]) -> Callable[[Sequence[str]], DictConfig]:
    """`compose` for the jobs of one sweep, composing once per job's structural overrides: the overrides that
    only set a value (`attack.rate=0.5`, `seed=1`: a key whose value in the composed config is no config node)
    are applied to a copy of that composition (`apply_overrides`), as Hydra applies them after the defaults.
    Group choices, `+`/`~`, packages, `hydra.*` and keys that a job's composition lacks are composed."""
    composed: dict[tuple[str, ...], DictConfig] = {}
    parser = OverridesParser.create()

    def cached(overrides: list[str]) -> DictConfig:
        if tuple(overrides) not in composed:
            composed[tuple(overrides)] = compose(overrides)
        return composed[tuple(overrides)]

    def is_value(cfg: DictConfig, key: str) -> bool:
        node = OmegaConf.select(cfg, key, default=_ABSENT)
        return node is not _ABSENT and not OmegaConf.is_config(node)

    def compose_job(job: Sequence[str]) -> DictConfig:
        job = list(job)
        reference = next(iter(composed.values())) if composed else cached(job)  # which keys hold values
        values = {o.input_line: o.key_or_group for o in parser.parse_overrides(job)
                  if o.type == OverrideType.CHANGE and o.package is None and "/" not in o.key_or_group
                  and not o.key_or_group.startswith("hydra") and is_value(reference, o.key_or_group)}
        base = cached([line for line in job if line not in values])
        if values and all(is_value(base, key) for key in values.values()):
            return apply_overrides(base, list(values))
        return cached(job)
    return compose_job


MANIFESTS_DIRNAME = "manifests"  # wrt.analysis.grid reads them


def job_config(cfg: DictConfig) -> DictConfig:
    """A sweeper's job config as the job itself sees it: without Hydra's node."""
    return OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]) if "hydra" in cfg else cfg


def manifest_entry(cfg: DictConfig) -> dict:
    """A planned run in the analyzer's terms: its run name, setting (dataset, model, budget), seed, role and
    the scheme's and attack's name, category, params and ablated parameters as its run JSON records them."""
    from hydra.utils import get_class

    from wrt.config import ablated_of, params_of
    from wrt.pipeline import role_of, run_name

    def group(node, category: bool) -> dict:
        entry = {"name": node.name, "params": params_of(node), "ablated": ablated_of(node)}
        if category:
            entry["category"] = getattr(get_class(node._target_), "category", None)
        return entry

    cfg = job_config(cfg)
    return {"run_name": run_name(cfg), "dataset": cfg.dataset.name, "model": cfg.model.name,
            "budget": cfg.budget.name, "seed": int(cfg.seed), "role": role_of(cfg),
            "scheme": group(cfg.scheme, False), "attack": group(cfg.attack, True)}


def finished_runs(cfgs: Sequence[DictConfig], threads: int | None = None) -> list[Path | None]:
    """For each planned config, the path of its finished run JSON when its job would only reuse it
    (`wrt.pipeline.run_or_reuse`: valid, status ok, no `force`), else None; `threads` as in `write_manifests`.
    A config whose run name cannot be made is None: its job reports the error."""
    from wrt.hardware import torch_threads
    from wrt.pipeline import completed_result, run_path

    def finished(cfg: DictConfig) -> Path | None:
        cfg = job_config(cfg)
        try:
            path = run_path(cfg)
        except Exception:  # noqa: BLE001 - a bad config fails in its own job, with its own line
            return None
        return path if not cfg.get("force") and completed_result(path) is not None else None

    with torch_threads(threads):
        return [finished(cfg) for cfg in cfgs]


def write_manifests(cfgs: Sequence[DictConfig], threads: int | None = None) -> list[Path]:
    """Write the manifest of these planned runs into each of their results folders; `threads`: torch's thread
    count in each job (part of run names). A config whose run name cannot be made (wrt-run will reject it) is
    left out, with one line for all of them. Returns the manifests' paths."""
    from wrt.hardware import torch_threads
    from wrt.store import atomic_write_json

    planned: dict[Path, dict[str, dict]] = {}
    left_out = []
    with torch_threads(threads):
        for cfg in cfgs:
            try:
                entry = manifest_entry(cfg)
            except Exception as exc:  # noqa: BLE001 - a bad config fails in its own job, with its own line
                left_out.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
                continue
            planned.setdefault(Path(cfg.results_dir), {})[entry["run_name"]] = entry
    if left_out:
        print(f"wrt sweep: {len(left_out)} planned run(s) not in the manifest ({left_out[0]})", file=sys.stderr)
    paths = []
    for results_dir, entries in planned.items():
        runs = [entries[name] for name in sorted(entries)]
        digest = hashlib.sha256(json.dumps(runs, sort_keys=True).encode()).hexdigest()[:16]
        path = results_dir / MANIFESTS_DIRNAME / f"{digest}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"runs": runs})
        paths.append(path)
    return paths
