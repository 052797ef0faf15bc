"""Defaults of ``lprcausal stats`` that the command line needs before any analysis runs.

Kept apart from the analyses (scipy, statsmodels) so that a command's options can be
built without importing them.
"""

DEFAULT_LEVEL = 0.95
# One accuracy point: direct effects inside +-1 point count as "no effect" (TOST).
DEFAULT_TOST_MARGIN = 0.01
# How ``lprcausal stats`` prints its records.
FORMATS = ("table", "csv", "json", "latex", "markdown")
