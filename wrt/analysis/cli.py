"""`wrt-analyze results_dir=...`: the Hydra entry point of the analyzer (configs/analyze.yaml)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from wrt.analysis.report import Options, main_with

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="analyze")
def _hydra_main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(Options)})
    if unknown:
        print(f"wrt-analyze: error: unknown option(s) {', '.join(unknown)}; see configs/analyze.yaml",
              file=sys.stderr)
        sys.exit(2)
    status = main_with(Options(**values))
    if status:
        sys.exit(status)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
