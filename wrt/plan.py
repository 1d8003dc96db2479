"""What a run or sweep will do, before it starts: its runs, which finished runs and stored models it
reuses, what it still computes, and a rough time estimate. Nothing is trained here.

The estimate counts training images and divides by this machine's throughput, measured by a
few timed training steps of the sweep's model (`Trainer.fit` on real images, after one untimed
step). A source training is `defender images × source epochs`; an embedding fine-tunes on the
defender images for its cap, the scheme's `epochs` (at most the budget's `embed_max_epochs`; a
scheme that embeds while training costs a source training); an attack costs the median of its earlier computed runs in the
same results folder (same attack, dataset, model and budget), else its `epochs` on the attacker's
images, or one source training on the whole training set for an extraction attack without
`epochs`, else nothing; each run adds the data loading (timed) and its evaluations. Key
generation and a scheme's early stopping are not counted: the figure is for one process, serially.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from wrt.config import build
from wrt.pipeline import Run, check_run_config, completed_result, load_data, resolve_device, run_path
from wrt.train import Callback
from wrt.validation import InvalidParameter

TIMED_STEPS = 6  # after a first, untimed one
MAX_TIMED_S = 3  # fewer steps for a slow model (a GPU model planned on a CPU machine)


@dataclass
class Setting:
    """What the estimate needs to know about one dataset × model × budget × device."""
    load_s: float
    defender: int
    attacker: int
    test: int
    images_per_s: float


@dataclass
class Plan:
    runs: int = 0
    reused: int = 0
    invalid: list[str] = field(default_factory=list)
    sources: int = 0            # to train
    sources_stored: int = 0
    embeddings: int = 0         # to compute
    embeddings_stored: int = 0
    estimate_s: float = 0.0
    throughput: dict[str, float] = field(default_factory=dict)  # setting label → images/s
    attacks_from_history: int = 0

    @property
    def to_run(self) -> int:
        return self.runs - self.reused - len(self.invalid)

    def lines(self) -> list[str]:
        lines = [f"{self.runs} run(s): {self.reused} finished earlier (reused), {self.to_run} to run"
                 + (f", {len(self.invalid)} with an invalid config" if self.invalid else "")]
        lines += [f"  invalid: {error}" for error in self.invalid]
        if self.to_run:
            lines.append(f"to compute: {self.sources} source training(s) ({self.sources_stored} reused from the "
                         f"store), {self.embeddings} embedding(s) ({self.embeddings_stored} reused), "
                         f"{self.to_run} attack(s) and evaluation(s)")
            speeds = ", ".join(f"{label} {speed:,.0f} images/s" for label, speed in self.throughput.items())
            lines.append(f"estimate: about {duration(self.estimate_s)} in one process on this machine "
                         f"(measured {speeds}; {self.attacks_from_history} of {self.to_run} attack(s) "
                         f"timed by earlier runs; docs/sweeps.md)")
        return lines


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class StepClock(Callback):
    """Stamps the end of every training step; stops after `MAX_TIMED_S`."""

    def __init__(self, device: torch.device):
        self.device, self.stamps = device, []

    def should_stop(self, model, steps: int) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        return self.stamps[-1] - self.stamps[0] > MAX_TIMED_S


def measure_throughput(run: Run) -> float:
    """Images per second of real training steps of the run's model with its source trainer: the
    time between the end of the first step and the end of the last (setup excluded)."""
    trainer = build(run.cfg.budget.source_trainer, device=run.device, progress=False, seed=0)
    images, labels = run.data.defender()
    n = min(len(images), trainer.batch_size * (1 + TIMED_STEPS))
    clock = StepClock(run.device)
    trainer.fit(run.new_model(0), images[:n], labels[:n], epochs=1, scale_epochs=False, callbacks=[clock])
    return trainer.batch_size * (len(clock.stamps) - 1) / max(clock.stamps[-1] - clock.stamps[0], 1e-6)


def attack_history(results_dir: Path) -> dict[tuple, float]:
    """Median attack-stage seconds of the finished, computed runs under `results_dir/runs`."""
    times: dict[tuple, list[float]] = {}
    for path in (results_dir / "runs").glob("*.json"):
        try:
            r = json.loads(path.read_text())
            key = (r["attack"]["name"], r["dataset"], r["model"], r["budget"])
            seconds = float(r["timing_s"]["attack"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if r.get("status") == "ok":
            times.setdefault(key, []).append(seconds)
    return {key: statistics.median(values) for key, values in times.items()}


def make_plan(cfgs: list[DictConfig]) -> Plan:
    """The plan of the runs with these (composed) configs."""
    plan, settings, datasets, seen, histories = Plan(runs=len(cfgs)), {}, {}, set(), {}
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
            settings[label] = Setting(load_s, len(data.defender()[0]), len(data.attacker()[0]), len(data.test_y),
                                      measure_throughput(Run(cfg, data, scheme, attack)))
            plan.throughput[label] = settings[label].images_per_s
        run = Run(cfg, datasets[label], scheme, attack)
        s = settings[label]
        source_epochs = cfg.budget.source_trainer.epochs
        finetune = build(cfg.budget.trainer, progress=False)
        seconds = s.load_s + s.test / s.images_per_s  # 3 evaluations, a forward pass ≈ 1/3 of a step
        images = 0  # trained
        for kind, spec in run.artifacts():
            path = run.store.path(kind, spec)
            if path in seen:
                continue
            seen.add(path)
            stored = path.exists() and not cfg.force
            if kind == "source":
                plan.sources_stored += stored
                plan.sources += not stored
                images += 0 if stored else s.defender * source_epochs
            elif kind == "extracted":  # retraining on the whole training set (an active scheme's white-box rows)
                images += 0 if stored else (s.defender + s.attacker) * source_epochs
            else:
                plan.embeddings_stored += stored
                plan.embeddings += not stored
                if not stored:
                    images += s.defender * (source_epochs if scheme.while_training else
                                            finetune.embedding_epochs(cfg.scheme.get("epochs", 1)))
        results_dir = Path(cfg.results_dir)
        if results_dir not in histories:
            histories[results_dir] = attack_history(results_dir)
        earlier = histories[results_dir].get((cfg.attack.name, cfg.dataset.name, cfg.model.name, cfg.budget.name))
        if earlier is not None:
            plan.attacks_from_history += 1
            seconds += earlier
        elif "epochs" in cfg.attack:
            images += s.attacker * finetune.scaled_epochs(cfg.attack.epochs)
        elif attack.category == "model_extraction":
            images += (s.defender + s.attacker) * source_epochs
        plan.estimate_s += seconds + images / s.images_per_s
    return plan


def sweep_jobs(hydra_cfg: DictConfig) -> list[list[str]]:
    """The override lists of a sweep's jobs, as Hydra's basic sweeper expands them: the sweeper's
    `params` (e.g. from an experiment) and the command line's task overrides, as a product."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (hydra_cfg.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *hydra_cfg.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def sweep_configs(config_name: str, hydra_cfg: DictConfig) -> list[DictConfig]:
    """Every job's composed config; with the ablation sweeper (wrt/sweeper.py) one per configuration of its
    grids, derived from the job's config rather than composed again (composing is the slow part)."""
    from hydra import compose

    from wrt.sweeper import Options, apply_overrides, expand

    jobs, options = sweep_jobs(hydra_cfg), Options.from_sweeper(hydra_cfg.sweeper)
    compose_job = lambda job: compose(config_name, overrides=job)  # noqa: E731
    if options is None:
        return [compose_job(job) for job in jobs]
    return [apply_overrides(cfg, extra) if extra else cfg for _, cfg, extra in expand(jobs, compose_job, options)]


def sweep_plan(config_name: str, hydra_cfg: DictConfig) -> Plan:
    """Compose every job of the sweep and plan them with the thread count each job will have (it is
    part of run names and store keys, and sets the measured throughput)."""
    import torch

    from wrt.cli import threads_per_job

    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_job(hydra_cfg) or threads)
    try:
        return make_plan(sweep_configs(config_name, hydra_cfg))
    finally:
        torch.set_num_threads(threads)
