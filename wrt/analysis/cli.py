"""`wrt-analyze results_dir=...`: the Hydra entry point of the analyzer (configs/analyze.yaml)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from wrt.analysis.report import Options, main_with

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="analyze")
def _hydra_main(cfg: DictConfig) -> None:
    options = Options(**OmegaConf.to_container(cfg, resolve=True))
    status = main_with(options)
    if status:
        sys.exit(status)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
