"""`hydra/sweeper=ablation` (wrt/configs/hydra/sweeper/ablation.yaml): Hydra's basic sweeper whose every job
becomes one job per configuration of its scheme's and attack's `ablation:` grids (wrt/sweeper.py); a job whose
run finished earlier is reported as reused, not launched."""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from wrt.sweeper import GROUPS, Options, apply_overrides, expand, finished_runs, job_composer, write_manifests


class AblationSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict | None = None, ablate=GROUPS,
                 defaults_only=(), select=None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.options = Options.of(ablate, defaults_only, select)

    def split_arguments(self, overrides, max_batch_size):  # BasicSweeper.sweep calls it on the instance
        """The expanded jobs that are still to run; first writes their manifest (`wrt.sweeper.write_manifests`),
        then reports the runs that finished earlier as reused without launching them (a resumed campaign
        would otherwise start a process and compose a config for each)."""
        from pathlib import Path

        from wrt.cli import report_reused, threads_per_job

        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        loader, master = self.hydra_context.config_loader, self.config
        planned = expand(jobs, job_composer(lambda job: loader.load_sweep_config(master, job)), self.options)
        cfgs = [apply_overrides(cfg, extra) if extra else cfg for _, cfg, extra in planned]
        threads = threads_per_job(master.hydra)
        write_manifests(cfgs, threads)
        finished = finished_runs(cfgs, threads)
        report_reused(Path(master.hydra.sweep.dir), [path for path in finished if path is not None])
        missing = [job + extra for (job, _, extra), path in zip(planned, finished) if path is None]
        return list(BasicSweeper.split_overrides_to_chunks(missing, max_batch_size)) if missing else []
