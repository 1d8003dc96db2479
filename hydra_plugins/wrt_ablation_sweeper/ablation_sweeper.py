"""`hydra/sweeper=ablation` (wrt/configs/hydra/sweeper/ablation.yaml): Hydra's basic sweeper whose every job
becomes one job per configuration of its scheme's and attack's `ablation:` grids (wrt/sweeper.py)."""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from wrt.sweeper import GROUPS, Options, apply_overrides, expand, write_manifests


class AblationSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict | None = None, ablate=GROUPS,
                 defaults_only=(), select=None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.options = Options.of(ablate, defaults_only, select)

    def split_arguments(self, overrides, max_batch_size):  # BasicSweeper.sweep calls it on the instance
        """The expanded jobs; first writes their manifest (`wrt.sweeper.write_manifests`)."""
        from wrt.cli import threads_per_job

        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        loader, master = self.hydra_context.config_loader, self.config
        planned = expand(jobs, lambda job: loader.load_sweep_config(master, job), self.options)
        write_manifests([apply_overrides(cfg, extra) if extra else cfg for _, cfg, extra in planned],
                        threads_per_job(master.hydra))
        return list(BasicSweeper.split_overrides_to_chunks([job + extra for job, _, extra in planned],
                                                           max_batch_size))
