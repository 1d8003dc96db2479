"""The adaptive attacker (issue #27; docs/attacks.md, "Searching an attack"): beyond the SoK's grid, the attacker
searches an attack's parameters for its best response to one scheme configuration, with Hydra's Optuna sweeper
(`experiment=best_response`, TPE).

An attack config declares its search space in a `search:` block next to its `ablation:` grid, one entry per
parameter:

    search:
      lr: {low: 0.001, high: 0.01, log: true}                  # a float range, here on a log scale
      bits: {low: 3, high: 5}                                  # integer ends: an integer range
      kernel: {choices: [mean, median, gaussian]}              # one of these values
      sigma: {low: 0.1, high: 0.3, when: {kernel: gaussian}}   # only where the other parameters have these values

`suggest` draws a trial's values (the sweeper's `custom_search_space`); each trial is an ordinary run with
`study=<name>` (its JSON says `attack.searched` and the study) whose task function returns the attacker's
objective (`wrt.analysis.game.attacker_objective`) with θ from `threshold` (`theta=`, or the null runs in the
results folder as the analyzer estimates it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from wrt.sweeper import same, set_keys
from wrt.validation import InvalidParameter, require

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
KEYS = {"low", "high", "log", "choices", "when"}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: a range [low, high] (integer when both ends are; `log`: sampled on a log scale)
    or `choices`; searched only where the attack's other parameters have the values of `when`."""
    name: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple | None = None
    when: tuple = ()  # (parameter, value) pairs

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


def dimensions(attack) -> list[Dimension]:
    """The attack config's `search:` block as dimensions, in order; InvalidParameter (one line) for a malformed
    block or an attack without one."""
    spec = OmegaConf.to_container(attack, resolve=True) if OmegaConf.is_config(attack) else dict(attack)
    name, block = spec.get("name"), spec.get("search")
    where = f"attack.{name}.search"
    require(isinstance(block, dict) and len(block) > 0, where, block,
            "a mapping parameter → {low, high[, log]} or {choices}: this attack has no search space "
            "(docs/attacks.md, \"Searching an attack\")")
    params = {k for k in spec if k not in ("name", "ablation", "search") and not k.startswith("_")}
    found = []
    for key, entry in block.items():
        at = f"{where}.{key}"
        require(key in params, where, key, f"a parameter of attack {name}: {', '.join(sorted(params))}")
        require(isinstance(entry, dict) and set(entry) <= KEYS and (("choices" in entry) != ("low" in entry)),
                at, entry, "{low, high[, log][, when]} or {choices[, when]}")
        when = entry.get("when") or {}
        require(isinstance(when, dict) and set(when) <= params - {key}, f"{at}.when", when,
                "a mapping of the attack's other parameters to values")
        if "choices" in entry:
            choices = entry["choices"]
            require(isinstance(choices, list) and len(choices) > 0
                    and all(c is None or isinstance(c, (str, int, float, bool)) for c in choices), f"{at}.choices",
                    choices, "a non-empty list of numbers, strings, booleans or null")
            found.append(Dimension(key, choices=tuple(choices), when=tuple(when.items())))
            continue
        low, high, log = entry.get("low"), entry.get("high"), entry.get("log", False)
        require(is_number(low) and is_number(high) and low < high, at, entry, "numbers low < high")
        require(isinstance(log, bool), f"{at}.log", log, "true or false")
        require(not log or low > 0, f"{at}.low", low, "a number above 0 on a log scale")
        found.append(Dimension(key, low, high, log, when=tuple(when.items())))
    return found


def suggest(config: DictConfig, trial) -> None:
    """The Optuna sweeper's `custom_search_space` (wrt/configs/experiment/best_response.yaml): draw `trial`'s value
    of each dimension of the sweep's attack (`attack.<param>`, Optuna's define-by-run API), but for the
    parameters the command line sets and those whose `when` the trial's other values do not meet."""
    fixed = set_keys(list(config.hydra.overrides.task), "attack")
    values = OmegaConf.to_container(config.attack, resolve=True)
    for d in dimensions(config.attack):
        if d.name in fixed or not all(same(values.get(k), v) for k, v in d.when):
            continue
        name = f"attack.{d.name}"
        if d.choices is not None:
            values[d.name] = trial.suggest_categorical(name, list(d.choices))
        elif d.integer:
            values[d.name] = trial.suggest_int(name, d.low, d.high, log=d.log)
        else:
            values[d.name] = trial.suggest_float(name, float(d.low), float(d.high), log=d.log)


_THRESHOLDS: dict[tuple, float] = {}  # per process: (results_dir, scheme, setting, numerics) → θ


def threshold(cfg: DictConfig) -> float:
    """θ for a search trial of `cfg`: `theta=` when given, else the analyzer's θ (`wrt.analysis.thresholds`,
    the analyzer's default options) for the run's scheme from the ok null runs in `results_dir` of its
    dataset, model and budget and its numerics (runs without numerics count too, as in the analyzer's
    settings). InvalidParameter, one line, when there is none."""
    if cfg.get("theta") is not None:
        theta = cfg.theta
        require(is_number(theta) and 0 <= theta < 1, "theta", theta, "a number in [0, 1) or null")
        return float(theta)
    from wrt.analysis.load import numerics_label
    from wrt.pipeline import numerics

    label = numerics_label(numerics(cfg))
    key = (str(Path(cfg.results_dir).resolve()), cfg.scheme.name, cfg.dataset.name, cfg.model.name, cfg.budget.name,
           label)
    if key not in _THRESHOLDS:
        _THRESHOLDS[key] = _threshold_from_null_runs(Path(cfg.results_dir), *key[1:])
    return _THRESHOLDS[key]


def _threshold_from_null_runs(results_dir: Path, scheme: str, dataset: str, model: str, budget: str,
                              numerics: str) -> float:
    from wrt.analysis import grid, tables
    from wrt.analysis.load import ResultsDirError, load_runs
    from wrt.analysis.report import Options
    from wrt.analysis.thresholds import ThresholdError, decision_thresholds

    fix = f"pass theta=<θ> or put the null runs (role=null, scheme {scheme}) in results_dir={results_dir}"
    try:
        runs = load_runs(results_dir, warn=lambda line: None).runs
    except ResultsDirError as exc:
        raise InvalidParameter(f"theta=null: no θ for the search: {exc}; {fix}") from None
    runs = tables.removal_runs(grid.one_run_each(tables.add_settings(runs), lambda line: None))
    mine = runs[(runs["scheme.name"] == scheme) & (runs["dataset"] == dataset) & (runs["model"] == model)
                & (runs["budget"] == budget) & (runs["numerics"].isna() | (runs["numerics"] == numerics))]
    nulls = mine[(mine["role"] == "null") & (mine["status"] == "ok")]
    if nulls.empty:
        others = sorted(set(runs.loc[(runs["role"] == "null") & (runs["scheme.name"] == scheme), "numerics"].dropna()))
        seen = f" (its null runs there have numerics {', '.join(others)})" if others else ""
        raise InvalidParameter(f"theta=null: no null run of {scheme} on {dataset}/{model}/{budget} with numerics "
                               f"{numerics} under {results_dir}{seen}; {fix}")
    options = Options()
    try:
        table = decision_thresholds(mine.assign(setting=dataset), options.p, options.threshold_method,
                                    options.min_null_runs)
    except ThresholdError as exc:
        raise InvalidParameter(f"theta=null: {exc}") from None
    return float(table["threshold"].iloc[0])
