"""wrt — the Watermark-Robustness Toolbox (after Lukas et al., S&P 2022)."""

__version__ = "0.1.0"
