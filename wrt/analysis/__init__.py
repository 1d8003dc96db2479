"""The analyzer (`wrt-analyze`): decision thresholds, payoff matrix, Nash equilibria, the SoK's tables and
plots, and report.html — computed from run JSON files only (docs/analysis.md)."""
