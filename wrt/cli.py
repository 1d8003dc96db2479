"""Console entry point `wrt-run` (a Hydra app): one run, or a sweep with `-m`."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
FAILED_RUNS: list[str] = []


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> str:
    from wrt.pipeline import run  # imported here so `--help` and config errors stay fast

    result, path = run(cfg)
    if result["status"] != "ok":
        print(f"run failed in stage {result['failed_stage']}: {result['error']}", file=sys.stderr)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            print(path, flush=True)
            sys.exit(1)
        FAILED_RUNS.append(str(path))
    print(path, flush=True)
    return result["status"]


def run_main() -> None:
    hydra_main()
    if FAILED_RUNS:
        print(f"{len(FAILED_RUNS)} run(s) failed: " + " ".join(FAILED_RUNS), file=sys.stderr)
        sys.exit(1)
