"""Console entry point `wrt-run` (a Hydra app): one run, or a sweep with `-m`.

One run prints its JSON's path as the last line and exits non-zero when it failed. A sweep first
prints its plan (runs, what is reused, what is computed, a time estimate; `dry_run=true` prints
only that), then `run k/n` after each run and a summary at the end, all on stderr. A failed run
does not stop the others: each is recorded in `<sweep dir>/failed_runs.txt`, and a sweep with
failures exits 1. Every invocation gets its own sweep folder (its time and process id).

Ctrl-C (SIGINT) ends a run or a whole sweep with one line, `interrupted; rerun to resume`, and exit
status 130. Checkpoints stay (a rerun resumes the source training from its last epoch, and reuses
the runs that finished). The joblib launcher's workers ignore SIGINT: the sweep's process stops them.
"""

from __future__ import annotations

import difflib
import fcntl
import os
import re
import signal
import sys
import time
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from wrt import CONFIG_DIR

FAILED_LIST = "failed_runs.txt"
PROGRESS = "progress.txt"  # in the sweep folder: "runs N", then one "<outcome> <run>" line per run
MAIN_PID = "WRT_RUN_PID"  # the wrt-run process's id, inherited by launcher workers
INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT), as shells report it

OmegaConf.register_new_resolver("wrt_pid", os.getpid, use_cache=True, replace=True)
# wrt/configs/hydra/launcher/{submitit_local,ray}.yaml carry the launcher plugins' names on purpose
# (`hydra/launcher=ray`); Hydra checks them against the plugins' schemas and warns that it does
warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/(submitit_local|ray)' is validated against ConfigStore schema")


def say(*lines: str, file=None) -> None:
    """Each line prefixed `wrt-run: `, to `file` (default: the current sys.stderr)."""
    for line in lines:
        print(f"wrt-run: {line}", file=file or sys.stderr, flush=True)


def append_line(path: Path, line: str) -> int:
    """Append `line` under an exclusive lock (jobs of a sweep may run in parallel); returns the
    number of lines now in the file."""
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(line + "\n")
        f.flush()
        f.seek(0)
        return len(f.read().splitlines())


def outcome_counts(progress: Path) -> dict[str, int]:
    lines = progress.read_text().splitlines()[1:] if progress.exists() else []
    return {o: sum(line.split(" ")[0] == o for line in lines) for o in ("computed", "reused", "failed")}


def record_outcome(progress: Path, outcome: str, run: str, where: str) -> None:
    """Append a run's outcome to the sweep's progress file and say its `run k/n` line (`where`: which job)."""
    header = progress.read_text().splitlines()[0] if progress.exists() else "runs ?"
    k = append_line(progress, f"{outcome} {run}") - 1
    say(f"run {k}/{header.split()[1]} {outcome} ({where}; "
        + ", ".join(f"{n} {o}" for o, n in outcome_counts(progress).items()) + " so far)")


def report_reused(sweep_dir: Path, paths: list[Path]) -> None:
    """The `run k/n reused` line (and the JSON path on stdout) of each run that the sweeper found finished
    and does not launch, as its job would have reported it."""
    progress = sweep_dir / PROGRESS
    if not progress.exists():  # no SweepReport (its plan exits a dry run first)
        return
    for path in paths:
        print(path, flush=True)
        record_outcome(progress, "reused", path.stem, "finished earlier, not launched")


class Objective(float):
    """A search trial's return value (`study=`): the attacker's objective for the Optuna sweeper, carrying
    the run's outcome (computed or reused) for the `run k/n` lines."""

    def __new__(cls, value: float, outcome: str):
        objective = super().__new__(cls, value)
        objective.outcome = outcome
        return objective

    def __reduce__(self):  # launchers that run jobs in other processes pickle it
        return Objective, (float(self), self.outcome)


class TrialFailed(RuntimeError):
    """A search trial's run failed: the Optuna sweeper records the trial as failed (not as a value)."""


def check_search(config: DictConfig) -> str | None:
    """Before a sweep: with `hydra/sweeper=optuna` a study name, a valid job config and an attack with a
    `search:` block; for a search (`study=`), θ (wrt/search.py). Returns the plan's line about the search;
    raises InvalidParameter."""
    from wrt.search import OPTUNA_SWEEPER, dimensions, threshold
    from wrt.validation import InvalidParameter

    optuna = config.hydra.sweeper.get("_target_") == OPTUNA_SWEEPER
    if optuna and config.get("study") is None:
        raise InvalidParameter("hydra/sweeper=optuna searches an attack's parameters: set study=<name> "
                               "(experiment=best_response does; docs/attacks.md)")
    if config.get("study") is None:
        return None
    from wrt.hardware import torch_threads
    from wrt.pipeline import check_run_config
    from wrt.sweeper import job_config

    with torch_threads(threads_per_job(config.hydra)):  # the jobs' numerics: their null runs give θ
        if optuna:  # a config every trial shares fails here once, not in each trial
            check_run_config(job_config(config))
        theta = threshold(config)
    if optuna:
        names = ", ".join(f"attack.{d.name}" for d in dimensions(config.attack))
    else:
        names = "none (no Optuna sweeper: the runs are tagged searched, nothing is drawn)"
    return f"search {config.study}: {names}; θ = {theta:.4f}"


class SweepReport(Callback):
    """The sweep's plan before it starts, `run k/n` after each run, a summary at the end; exits 1
    when runs failed. `on_job_end` runs in the job's process, whichever launcher started it."""

    def on_multirun_start(self, config: DictConfig, config_name: str | None = None, **kwargs) -> None:
        from wrt.plan import sweep_plan
        from wrt.store import error_summary
        from wrt.validation import InvalidParameter

        self.start = time.perf_counter()
        self.estimate = None
        try:
            search = check_search(config)
        except InvalidParameter as e:
            if not config.dry_run:
                say(f"error: {e}")
                sys.exit(2)
            search = f"no search: {e}"
        try:
            plan = sweep_plan(config_name, config.hydra)
        except Exception as e:  # advisory only: Hydra reports a bad sweep itself when it starts
            say(f"no sweep plan ({error_summary(e)})")
            plan = None
        if plan is not None:
            self.estimate = plan.estimate_s
            say(*(["sweep plan:"] + [f"  {line}" for line in plan.lines() + ([search] if search else [])]),
                file=sys.stdout if config.dry_run else sys.stderr)
        if config.dry_run:
            sys.exit(0 if plan is not None and not plan.invalid else 2)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PROGRESS).write_text(f"runs {plan.runs if plan else '?'}\n")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        hydra_cfg = config.hydra
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        progress = Path(hydra_cfg.sweep.dir) / PROGRESS
        value = job_return.return_value if job_return.status == JobStatus.COMPLETED else "failed"
        outcome = getattr(value, "outcome", value)  # a search trial's Objective carries it
        record_outcome(progress, outcome, str(hydra_cfg.job.num), f"job #{hydra_cfg.job.num}")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from wrt.plan import duration

        sweep_dir = Path(config.hydra.sweep.dir)
        count = outcome_counts(sweep_dir / PROGRESS)
        estimate = "" if self.estimate is None else f" (estimated {duration(self.estimate)})"
        say(f"sweep done in {duration(time.perf_counter() - self.start)}{estimate}: {sum(count.values())} run(s), "
            f"{count['computed']} computed, {count['reused']} reused, {count['failed']} failed; {sweep_dir}")
        failed_list = sweep_dir / FAILED_LIST
        failed = failed_list.read_text().split() if failed_list.exists() else []
        if failed:
            print(f"{len(failed)} run(s) failed (see {failed_list}):", *failed, sep="\n  ", file=sys.stderr)
            sys.exit(1)


def threads_per_job(hydra_cfg) -> int | None:
    """torch threads for one job of a sweep whose launcher runs `n_jobs` jobs side by side on this
    machine (joblib): about cores / n_jobs each, so that parallel jobs do not oversubscribe the
    cores. None (torch's default) for single runs and launchers that run one job per machine."""
    n_jobs = hydra_cfg.launcher.get("n_jobs") if hydra_cfg.mode == RunMode.MULTIRUN else None
    if not isinstance(n_jobs, int) or n_jobs == 1:
        return None
    from wrt.hardware import cores

    return max(1, cores() // n_jobs) if n_jobs > 0 else 1  # joblib's -1: one job per core


class CheckOutput(Callback):
    """Before Hydra creates its output folders: `results_dir` and `store_dir` must be writable
    folders, else one line and exit status 2 (a bad location would otherwise surface as a
    traceback, or only after the training when the JSON is written)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self.check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.check(config)

    @staticmethod
    def check(config: DictConfig) -> None:
        from wrt.validation import InvalidParameter, check_output_dirs

        try:
            check_output_dirs(config)
        except InvalidParameter as e:
            say(f"error: {e}")
            sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> str | Objective:
    """One run; returns its outcome for the sweep report: computed, reused or failed. A search trial
    (`study=`) returns the attacker's objective (`wrt.analysis.game.attacker_objective`) as an
    `Objective`, which carries the outcome; its failed run raises `TrialFailed` under the Optuna sweeper
    (a failed trial, not a value)."""
    import torch

    from wrt.pipeline import check_run_config, run_or_reuse  # imported here so `--help` stays fast
    from wrt.search import OPTUNA_SWEEPER, threshold
    from wrt.validation import InvalidParameter

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    optuna = multirun and hydra_cfg.sweeper.get("_target_") == OPTUNA_SWEEPER  # a failed trial raises
    if os.environ.get(MAIN_PID, str(os.getpid())) != str(os.getpid()):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a launcher worker: Ctrl-C is the main process's to report
    if (threads := threads_per_job(hydra_cfg)) is not None:
        torch.set_num_threads(threads)  # before run names: the thread count is part of them
    searched = cfg.study is not None
    try:
        check_run_config(cfg)
        theta = threshold(cfg) if searched and not cfg.dry_run else None  # before any training
    except InvalidParameter as e:
        say(f"error: stage config: {e}")
        if not multirun:
            sys.exit(2)
        append_line(Path(hydra_cfg.sweep.dir) / FAILED_LIST,
                    f"invalid-config:{hydra_cfg.job.override_dirname or hydra_cfg.job.num}")
        if optuna:
            raise TrialFailed(f"invalid config: {e}")
        return "failed"
    if cfg.dry_run:  # one run (a sweep's plan is printed by SweepReport)
        from wrt.plan import make_plan

        say(*(["plan:"] + [f"  {line}" for line in make_plan([cfg]).lines()]), file=sys.stdout)
        return "planned"
    result, path, reused = run_or_reuse(cfg)
    if reused and not multirun:
        say(f"reused the finished run {path} (force=true reruns it)")
    if result["status"] != "ok":
        print(f"run failed in stage {result['failed_stage']}: {result['error']}", file=sys.stderr)
        if not multirun:
            print(path, flush=True)
            sys.exit(1)
        append_line(Path(hydra_cfg.sweep.dir) / FAILED_LIST, str(path))
        if optuna:
            print(path, flush=True)
            raise TrialFailed(f"run failed: {path}")
    print(path, flush=True)
    outcome = "failed" if result["status"] != "ok" else "reused" if reused else "computed"
    if not searched or outcome == "failed":
        return outcome
    from wrt.analysis.game import attacker_objective
    from wrt.analysis.report import Options

    options = Options()  # the analyzer's defaults: θ', the stealing-loss rule
    value = attacker_objective(result["surrogate"]["wm_acc"], theta, result["stealing_loss"],
                               result["surrogate"]["test_acc"], options.theta_prime, options.max_stealing_loss)
    say(f"objective {value:.4f} (θ = {theta:.4f}; study {cfg.study}): {path.name}")
    return Objective(value, outcome)


def search_path(args: list[str]):
    """Hydra's config search path for these arguments: wrt's own groups (`wrt.CONFIG_DIR`), then the folders
    of a `hydra.searchpath=[...]` argument (else of the primary config's `hydra.searchpath`), as Hydra
    composes them."""
    from hydra._internal.utils import create_config_search_path
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    folders = OmegaConf.load(Path(CONFIG_DIR) / "config.yaml").get("hydra", {}).get("searchpath") or []
    for arg in args:
        if arg.startswith("hydra.searchpath="):
            try:
                folders = OverridesParser.create().parse_override(arg).value()
            except HydraException:  # a malformed override: Hydra reports it itself
                folders = []
    path = create_config_search_path(CONFIG_DIR)
    schema = path.get_path().pop(-1)  # Hydra keeps its structured configs last
    for folder in folders if isinstance(folders, list) else []:
        path.append("hydra.searchpath", str(folder))
    path.append(schema.provider, schema.path)
    return path


def suggest_options(args: list[str]) -> None:
    """For each `group=option` argument whose option is in no config folder of the search path (wrt's and
    `hydra.searchpath`'s), one line with the closest option (Hydra's full list follows)."""
    from hydra._internal.config_repository import ConfigRepository

    picks = [(key.lstrip("+~"), value) for key, sep, value in (arg.partition("=") for arg in args)
             if sep and re.fullmatch(r"\w+", key.lstrip("+~"))]
    if not picks:
        return
    repository = ConfigRepository(config_search_path=search_path(args))
    for group, value in picks:
        if not repository.group_exists(group):
            continue
        options = repository.get_group_options(group)
        for name in value.split(","):
            if re.fullmatch(r"\w+", name) and name not in options and name != "null":
                close = difflib.get_close_matches(name, options, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                say(f"error: no {group} '{name}' in wrt/configs/{group}/ or hydra.searchpath{hint}")


def run_main() -> None:
    suggest_options(sys.argv[1:])
    os.environ[MAIN_PID] = str(os.getpid())
    try:
        hydra_main()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not interrupt the message
        say("interrupted; rerun to resume")
        sys.exit(INTERRUPTED)


if __name__ == "__main__":
    run_main()
