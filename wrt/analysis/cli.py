"""`wrt-analyze results_dir=...`: the Hydra entry point of the analyzer (wrt/configs/analyze.yaml)."""

from __future__ import annotations

import dataclasses
import difflib
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from wrt import CONFIG_DIR
from wrt.analysis.report import Options, main_with

OPTIONS = [f.name for f in dataclasses.fields(Options)]


def unknown_option(args: list[str]) -> str | None:
    """The error line for the first `key=value` argument whose key is no option (Hydra's own `hydra.*` and
    flags such as --help pass), with the closest option."""
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        if key not in OPTIONS and not key.startswith("hydra"):
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            return f"wrt-analyze: error: unknown option {key}; {hint}options: {', '.join(OPTIONS)}"
    return None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="analyze")
def _hydra_main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    unknown = sorted(set(values) - set(OPTIONS))
    if unknown:
        print(f"wrt-analyze: error: unknown option(s) {', '.join(unknown)}; see wrt/configs/analyze.yaml",
              file=sys.stderr)
        sys.exit(2)
    status = main_with(Options(**values))
    if status:
        sys.exit(status)


def main() -> None:
    error = unknown_option(sys.argv[1:])
    if error:
        print(error, file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
