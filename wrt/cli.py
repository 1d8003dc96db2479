"""Console entry point `wrt-run` (a Hydra app): one run, or a sweep with `-m`.

One run prints its JSON's path as the last line and exits non-zero when it failed. In a sweep a
failed run does not stop the others: each is recorded in `<sweep dir>/failed_runs.txt`, and when
the sweep ends `FailureSummary` reports how many failed and exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
FAILED_LIST = "failed_runs.txt"


class FailureSummary(Callback):
    """At the end of a sweep: report the failed runs and exit with status 1 if there are any."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        failed_list = Path(config.hydra.sweep.dir) / FAILED_LIST
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
            print(f"wrt-run: error: {e}", file=sys.stderr)
            sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> str:
    import torch

    from wrt.pipeline import check_run_config, run  # imported here so `--help` stays fast
    from wrt.validation import InvalidParameter

    hydra_cfg = HydraConfig.get()
    if (threads := threads_per_job(hydra_cfg)) is not None:
        torch.set_num_threads(threads)
    try:
        check_run_config(cfg)
    except InvalidParameter as e:
        print(f"wrt-run: error: {e}", file=sys.stderr)
        if hydra_cfg.mode != RunMode.MULTIRUN:
            sys.exit(2)
        with open(Path(hydra_cfg.sweep.dir) / FAILED_LIST, "a") as failed_list:
            failed_list.write(f"invalid-config:{hydra_cfg.job.override_dirname or hydra_cfg.job.num}\n")
        return "failed"
    result, path = run(cfg)
    if result["status"] != "ok":
        print(f"run failed in stage {result['failed_stage']}: {result['error']}", file=sys.stderr)
        if hydra_cfg.mode != RunMode.MULTIRUN:
            print(path, flush=True)
            sys.exit(1)
        with open(Path(hydra_cfg.sweep.dir) / FAILED_LIST, "a") as failed_list:  # one short append per run
            failed_list.write(f"{path}\n")
    print(path, flush=True)
    return result["status"]


def run_main() -> None:
    hydra_main()


if __name__ == "__main__":
    run_main()
