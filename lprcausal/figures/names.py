"""The names the command line offers (figures, formats, styles, widths), without matplotlib.

Kept apart so ``lprcausal --help`` and the other commands do not import matplotlib.
"""

from __future__ import annotations

# In the order they are drawn; each is a file name stem too.
FIGURE_NAMES = (
    "accuracy_vs_sparsity",
    "find_vs_eval",
    "heatmap",
    "layer_lpr",
    "transplant_interaction",
    "transplant_effects",
    "dose_response",
    "controls",
)
# Formats matplotlib writes with its own renderers (pgf needs a LaTeX install).
FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")
STYLES = ("paper", "talk")
WIDTHS = {"single": 3.3, "double": 6.9}  # inches: one column / full page width
