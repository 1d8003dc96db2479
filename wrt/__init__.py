"""wrt — the Watermark-Robustness Toolbox (after Lukas et al., S&P 2022)."""

from pathlib import Path

__version__ = "0.1.0"

# The config groups ship inside the package (package data), so an installed wheel finds them; wrt-run,
# wrt-analyze, the tests and the scripts all compose from here (user folders join via hydra.searchpath).
CONFIG_DIR = str(Path(__file__).resolve().parent / "configs")
