"""What a run or sweep will do, before it starts: its runs, which finished runs and stored models it
reuses, what it still computes, and a time estimate in core-hours and wall hours. Nothing is trained here.

The estimate adds up, for every run still to compute, the seconds of its stages (docs/sweeps.md):

- a stage that earlier finished runs in the results folder timed (`wrt.analysis.load`, as
  scripts/sweep_cost.py reads them) costs their median: the attack stage per (attack, dataset, model,
  budget), the evaluations per (scheme, ...) of marked runs, a key draw per (scheme, ...) of null runs;
- otherwise it counts trained images and divides them by this machine's training throughput, measured
  with the job's thread count by `wrt.hardware.timed_rates` (the probe of scripts/bench_train.py: after a
  warm-up, the median of several timings of real training steps of the sweep's model): source trainings,
  embeddings, an attack's epochs on the attacker's images, Neural Cleanse's trigger reverse-engineering,
  transfer learning's glyph pre-training and frozen phase, a retraining from scratch for extraction attacks;
  the test-set evaluations count as forward passes (a third of a step): the surrogate's, and the source's
  and marked model's where the store does not hold them;
- key generation, the run's own key where it is not stored and a null run's further key draws, costs
  the earlier runs' seconds per draw, else one keygen and extraction timed on the stored source model
  (an untrained one where none is stored; a keygen that fails there is left out, and the plan says so).

Both probes are kept in the store (`probes/`, by CPU, numerics, torch version and what they timed) and reused
for `PROBE_MAX_AGE_S`, so that consecutive plans on one machine agree and a plan costs no probe; `force=true`
measures again.

The sum is for one job; a launcher with n_jobs parallel jobs divides the wall time by n_jobs, and
core-hours are seconds × the job's threads.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from wrt.config import as_dict, build
from wrt.hardware import cpu_model, timed_rates
from wrt.pipeline import (Run, check_run_config, completed_result, load_data, numerics, resolve_device, role_of,
                          run_path, source_spec)
from wrt.schemes.base import KeyMismatch
from wrt.store import atomic_write_json, error_summary, load_state, load_tensors, spec_digest
from wrt.validation import InvalidParameter

PROBE_STEPS = 2  # training steps per timed call of the throughput probe
PROBE_MAX_S = 3  # timing stops after this (a slow model: a GPU model planned on a CPU machine)
STAGES = ("data", "source", "embed", "keygen", "attack", "evaluate")


@dataclass
class Setting:
    """What the estimate needs to know about one dataset × model × budget × device."""
    load_s: float
    defender: int
    attacker: int
    test: int
    num_classes: int
    images_per_s: float


@dataclass
class History:
    """Seconds of earlier finished runs (status ok) under a results folder, by what they ran (their stages'
    CPU seconds per thread where recorded, else wall seconds: `wrt.analysis.load.stage_seconds`)."""
    attack: dict[tuple, list[float]] = field(default_factory=dict)    # attack stage, by (attack, *setting)
    evaluate: dict[tuple, list[float]] = field(default_factory=dict)  # evaluate stage of marked runs, by (scheme, *setting)
    key_draw: dict[tuple, list[float]] = field(default_factory=dict)  # keygen + extraction per null key draw, by (scheme, *setting)

    @classmethod
    def read(cls, results_dir: Path) -> History:
        from wrt.analysis.load import read_run, run_files, stage_seconds

        history = cls()
        for path in run_files(results_dir) if results_dir.is_dir() else []:
            run = read_run(path)
            if isinstance(run, str) or run["status"] != "ok":
                continue
            setting = (run["dataset"], run["model"], run["budget"])
            timing, scheme = stage_seconds(run)[0], run["scheme"]["name"]
            if (run.get("attack") or {}).get("name") and timing.get("attack") is not None:
                history.attack.setdefault((run["attack"]["name"], *setting), []).append(timing["attack"])
            if run["role"] == "marked" and timing.get("evaluate") is not None:
                history.evaluate.setdefault((scheme, *setting), []).append(timing["evaluate"])
            null = run.get("null") or {}
            if null.get("keys", 0) > 1 and null.get("keygen_time_s") is not None:
                seconds = null["keygen_time_s"] + (null.get("extract_time_s") or 0.0)
                history.key_draw.setdefault((scheme, *setting), []).append(seconds / (null["keys"] - 1))
        return history

    @staticmethod
    def median(table: dict[tuple, list[float]], key: tuple) -> float | None:
        return statistics.median(table[key]) if key in table else None


@dataclass
class Plan:
    runs: int = 0
    reused: int = 0
    invalid: list[str] = field(default_factory=list)
    sources: int = 0            # to train
    sources_stored: int = 0
    embeddings: int = 0         # to compute
    embeddings_stored: int = 0
    key_draws: int = 0          # keys to generate: the runs' own (not stored) and null runs' further draws
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    throughput: dict[str, float] = field(default_factory=dict)  # setting label → images/s
    from_history: int = 0       # stage estimates taken from earlier runs
    untimed: dict[str, str] = field(default_factory=dict)  # scheme → why its keygen could not be timed
    probes_reused: int = 0      # timing probes taken from the store (`cached_probe`)
    threads: int = 1            # torch threads per job
    n_jobs: int = 1             # jobs the launcher runs side by side

    @property
    def to_run(self) -> int:
        return self.runs - self.reused - len(self.invalid)

    @property
    def estimate_s(self) -> float:
        """Seconds of all runs still to compute, one after another in one job."""
        return sum(self.stage_s.values())

    @property
    def core_hours(self) -> float:
        return self.estimate_s * self.threads / 3600

    @property
    def wall_s(self) -> float:
        return self.estimate_s / max(1, min(self.n_jobs, self.to_run))

    def lines(self) -> list[str]:
        lines = [f"{self.runs} run(s): {self.reused} finished earlier (reused), {self.to_run} to run"
                 + (f", {len(self.invalid)} with an invalid config" if self.invalid else "")]
        lines += [f"  invalid: {error}" for error in self.invalid]
        if self.to_run:
            lines.append(f"to compute: {self.sources} source training(s) ({self.sources_stored} reused from the "
                         f"store), {self.embeddings} embedding(s) ({self.embeddings_stored} reused), "
                         f"{self.key_draws} key draw(s), {self.to_run} attack(s) and evaluation(s)")
            speeds = ", ".join(f"{label} {speed:,.0f} images/s" for label, speed in self.throughput.items())
            stages = ", ".join(f"{stage} {duration(s)}" for stage, s in self.stage_s.items() if s >= 0.5)
            lines.append(f"estimate: about {duration(self.wall_s)} wall time ({self.wall_s:.0f} s), "
                         f"{self.core_hours:.2f} core-hours, with {self.n_jobs} job(s) of {self.threads} thread(s) on "
                         f"this machine ({stages}; measured {speeds}; {self.from_history} stage estimate(s) from earlier "
                         f"runs; {self.probes_reused} probe(s) reused from the store; docs/sweeps.md)")
            lines += [f"  not counted: the key draws of {scheme}, whose keygen fails on an untrained model and no "
                      f"earlier null run timed ({reason})" for scheme, reason in self.untimed.items()]
        return lines


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


PROBE_MAX_AGE_S = 24 * 3600


def cached_probe(run: Run, plan: Plan, what: dict, measure) -> float | str:
    """`measure()` (seconds or images/s; a str says why it failed, and is not kept), or the value it gave on
    this machine within `PROBE_MAX_AGE_S`, kept in the store under `probes/` by the CPU, the run's numerics,
    torch's version and `what` was timed."""
    spec = {"cpu": cpu_model(), "numerics": numerics(run.cfg), "torch": torch.__version__, **what}
    path = run.store.root / "probes" / f"{spec_digest(spec)}.json"
    try:
        kept = json.loads(path.read_text())
        if not run.cfg.force and time.time() - kept["measured"] < PROBE_MAX_AGE_S:
            plan.probes_reused += 1
            return float(kept["value"])
    except (OSError, ValueError, KeyError, TypeError):  # none kept, or unreadable: measure again
        pass
    value = measure()
    if not isinstance(value, str):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"value": value, "measured": time.time(), "spec": spec})
    return value


def measure_throughput(run: Run) -> float:
    """Training images per second of the run's model with its source trainer on real images: the median
    of `timed_rates`' timings, each of `PROBE_STEPS` steps (`Trainer.fit`), after a warm-up."""
    trainer = build(run.cfg.budget.source_trainer, device=run.device, precision=run.cfg.precision,
                    progress=False, seed=0)
    images, labels = run.data.defender()
    n = min(len(images), trainer.batch_size * PROBE_STEPS)
    model = run.new_model(0)

    def steps():
        trainer.fit(model, images[:n], labels[:n], epochs=1, scale_epochs=False)

    return statistics.median(timed_rates(steps, n, warmup=1, repeats=5, min_s=0.0, max_s=PROBE_MAX_S,
                                         device=run.device))


def keygen_seconds(run: Run) -> float | str:
    """One key generation and extraction of the run's scheme (no earlier run timed a key draw of it), on
    the stored source model where there is one, else on an untrained model; why not, where the keygen
    fails on that model (an untrained model has, e.g., no adversarial examples to find)."""
    model = run.new_model(run.cfg.seed)
    stored = run.store.path("source", source_spec(run.cfg, run.cfg.seed))
    try:
        if stored.exists():
            load_state(model, load_tensors(stored)[0], stored)
        start = time.perf_counter()
        key = run.scheme.keygen(model, run.data, torch.Generator().manual_seed(run.cfg.seed))
        try:
            run.scheme.extract(model, key, run.finetune_trainer)
        except KeyMismatch:
            pass
    except Exception as e:  # advisory: the plan goes on without this cost, and says so
        return error_summary(e)
    return time.perf_counter() - start


def attack_images(run: Run, s: Setting, seen: set) -> float:
    """Images an attack trains on, from its config (no earlier run timed it): its epochs on the attacker's
    images; Neural Cleanse's (and Neural Laundering's) trigger reverse-engineering, one trigger per class;
    transfer learning's glyph pre-training (stored: once per seed here) and frozen phase; a retraining from
    scratch for an extraction attack without epochs."""
    cfg, attack, trainer = run.cfg.attack, run.attack, run.attack_trainer
    images = 0.0
    if "epochs" in cfg:
        images += s.attacker * trainer.scaled_epochs(cfg.epochs)
    elif attack.category == "model_extraction":
        images += (s.defender + s.attacker) * run.cfg.budget.source_trainer.epochs
    if "reverse_epochs" in cfg:
        images += s.num_classes * min(cfg.get("reverse_samples", s.attacker), s.attacker) \
            * trainer.scaled_epochs(cfg.reverse_epochs)
    if "freeze_batches" in cfg:
        images += max(1, round(cfg.freeze_batches * trainer.epoch_scale)) * trainer.batch_size
    if cfg.get("pretrain_epochs") and (pretrain := (cfg.name, str(cfg), run.cfg.seed)) not in seen:
        seen.add(pretrain)
        images += attack.pretrain_classes * cfg.pretrain_per_class * trainer.scaled_epochs(cfg.pretrain_epochs)
    return images


def make_plan(cfgs: list[DictConfig], n_jobs: int = 1) -> Plan:
    """The plan of the runs with these (composed) configs, for `n_jobs` parallel jobs with torch's current
    thread count each."""
    plan = Plan(runs=len(cfgs), threads=torch.get_num_threads(), n_jobs=n_jobs)
    settings, datasets, seen, histories, keygens = {}, {}, set(), {}, {}
    for cfg in cfgs:
        try:
            check_run_config(cfg)
        except InvalidParameter as e:
            plan.invalid.append(str(e))
            continue
        if not cfg.force and completed_result(run_path(cfg)) is not None:
            plan.reused += 1
            continue
        scheme, attack = build(cfg.scheme), build(cfg.attack)
        label = (f"{cfg.model.name} on {cfg.dataset.name}, budget {cfg.budget.name}, "
                 f"{resolve_device(cfg.device).type}")
        if label not in settings:
            start = time.perf_counter()
            data = datasets[label] = load_data(cfg)
            load_s = time.perf_counter() - start
            probe = Run(cfg, data, scheme, attack)
            images_per_s = cached_probe(probe, plan, {"throughput": as_dict(cfg.model), "dataset": cfg.dataset.name,
                                                      "trainer": as_dict(cfg.budget.source_trainer)},
                                        lambda: measure_throughput(probe))
            settings[label] = Setting(load_s, len(data.defender()[0]), len(data.attacker()[0]), len(data.test_y),
                                      data.num_classes, images_per_s)
            plan.throughput[label] = settings[label].images_per_s
        run, s = Run(cfg, datasets[label], scheme, attack), settings[label]
        results_dir = Path(cfg.results_dir)
        if results_dir not in histories:
            histories[results_dir] = History.read(results_dir)
        history, setting = histories[results_dir], (cfg.dataset.name, cfg.model.name, cfg.budget.name)
        stage = plan.stage_s
        stage["data"] += s.load_s

        source_epochs = cfg.budget.source_trainer.epochs
        images = {"source": 0.0, "embed": 0.0, "attack": 0.0}  # trained, by stage
        for kind, spec in run.artifacts():
            path = run.store.path(kind, spec)
            if path in seen:
                continue
            seen.add(path)
            stored = path.exists() and not cfg.force
            if kind == "source":
                plan.sources_stored += stored
                plan.sources += not stored
                images["source"] += 0 if stored else s.defender * source_epochs
            elif kind == "extracted":  # retraining on the whole training set (an active scheme's white-box rows)
                images["attack"] += 0 if stored else (s.defender + s.attacker) * source_epochs
            else:
                plan.embeddings_stored += stored
                plan.embeddings += not stored
                if not stored:
                    images["embed"] += s.defender * (source_epochs if scheme.while_training else
                                                     run.finetune_trainer.embedding_epochs(cfg.scheme.get("epochs", 1)))

        key_path = run.store.path("key", run.key_spec())
        draws = int(key_path not in seen and not (key_path.exists() and not cfg.force))
        seen.add(key_path)
        if role_of(cfg) == "null":
            draws += min(cfg.null_keys, scheme.max_null_keys) - 1
        if draws:
            plan.key_draws += draws
            per_draw = history.median(history.key_draw, (cfg.scheme.name, *setting))
            if per_draw is None:
                if (cfg.scheme.name, label) not in keygens:
                    stored = run.store.path("source", source_spec(cfg, cfg.seed)).exists()
                    keygens[cfg.scheme.name, label] = cached_probe(
                        run, plan, {"keygen": as_dict(cfg.scheme), "model": as_dict(cfg.model), "dataset": cfg.dataset.name,
                                    "trained_source": stored}, lambda: keygen_seconds(run))
                per_draw = keygens[cfg.scheme.name, label]
                if isinstance(per_draw, str):
                    plan.untimed[cfg.scheme.name] = per_draw
                    per_draw = 0.0
            else:
                plan.from_history += 1
            stage["keygen"] += draws * per_draw

        earlier = history.median(history.attack, (cfg.attack.name, *setting))
        if earlier is not None:
            plan.from_history += 1
            stage["attack"] += earlier
        else:
            images["attack"] += attack_images(run, s, seen)

        evaluations = 1 if role_of(cfg) == "marked" else 2  # the surrogate's (and a null run's unmarked model's)
        for spec in run.evaluation_specs().values():  # those that runs share, once each unless stored
            path = run.store.path("evaluation", spec)
            if path not in seen:
                seen.add(path)
                evaluations += not (path.exists() and not cfg.force)
        earlier = history.median(history.evaluate, (cfg.scheme.name, *setting))
        if earlier is not None and role_of(cfg) == "marked":
            plan.from_history += 1
            stage["evaluate"] += earlier
        else:  # test-set evaluations, a forward pass ≈ 1/3 of a training step
            stage["evaluate"] += evaluations * s.test / (3 * s.images_per_s)
        for name, count in images.items():
            stage[name] += count / s.images_per_s
    return plan


def launcher_jobs(hydra_cfg: DictConfig) -> int:
    """How many jobs the sweep's launcher runs side by side on this machine (joblib's n_jobs; -1: one
    per core); 1 for the others."""
    n_jobs = hydra_cfg.launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    from wrt.hardware import cores

    return cores() if n_jobs < 0 else n_jobs


def sweep_jobs(hydra_cfg: DictConfig) -> list[list[str]]:
    """The override lists of a sweep's jobs, as Hydra's basic sweeper expands them: the sweeper's
    `params` (e.g. from an experiment) and the command line's task overrides, as a product."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (hydra_cfg.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *hydra_cfg.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def search_configs(config_name: str, hydra_cfg: DictConfig) -> list[DictConfig]:
    """An Optuna search's trials (wrt/search.py): `n_trials` runs of the job's config. The search draws their
    parameters as it goes, so each is planned at the attack config's own values, and a rerun's reused trials
    are not known beforehand."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (hydra_cfg.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *hydra_cfg.overrides.task])
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    return [compose(config_name, overrides=fixed)] * int(hydra_cfg.sweeper.n_trials)


def sweep_configs(config_name: str, hydra_cfg: DictConfig) -> list[DictConfig]:
    """Every job's composed config, composed once per job's group choices (`job_composer`: composing is the
    slow part); with the ablation sweeper (wrt/sweeper.py) one per configuration of its grids, derived from
    the job's config; with the Optuna sweeper its trials (`search_configs`)."""
    from hydra import compose

    from wrt.search import OPTUNA_SWEEPER
    from wrt.sweeper import Options, apply_overrides, expand, hydra_value, job_composer

    if hydra_cfg.sweeper.get("_target_") == OPTUNA_SWEEPER:
        return search_configs(config_name, hydra_cfg)
    jobs, options = sweep_jobs(hydra_cfg), Options.from_sweeper(hydra_cfg.sweeper)
    # the jobs' overrides leave out Hydra's own: the user's config folders (hydra.searchpath) go with each
    search = [f"hydra.searchpath={hydra_value(list(hydra_cfg.searchpath))}"] if hydra_cfg.get("searchpath") else []
    compose_job = job_composer(lambda job: compose(config_name, overrides=[*search, *job]))
    if options is None:
        return [compose_job(job) for job in jobs]
    return [apply_overrides(cfg, extra) if extra else cfg for _, cfg, extra in expand(jobs, compose_job, options)]


def sweep_plan(config_name: str, hydra_cfg: DictConfig) -> Plan:
    """Compose every job of the sweep and plan them with the thread count each job will have (it is
    part of run names and store keys, and sets the measured throughput)."""
    from wrt.cli import threads_per_job
    from wrt.hardware import torch_threads

    with torch_threads(threads_per_job(hydra_cfg)):
        return make_plan(sweep_configs(config_name, hydra_cfg), n_jobs=launcher_jobs(hydra_cfg))
