"""Paper figures from study result Datasets (matplotlib, no display needed).

Each figure is a function of the Datasets that returns a matplotlib Figure; pass
``ax`` (one Axes, or one per panel) to draw into your own figure instead::

    from lprcausal.figures import load_results, accuracy_vs_sparsity, save_figure
    r = load_results("results/quickstart")
    fig = accuracy_vs_sparsity(r.decoupled, looks=r.looks(), width="double")
    save_figure(fig, "acc.pdf", "pdf")

:func:`render_figures` draws all of them for a results directory (what
``lprcausal figures`` runs). Colours follow the H_find order of the study
(:func:`h_find_looks`), Okabe-Ito, the same in every figure.

Names are imported on first use, so ``import lprcausal.figures`` (and the command
line) stays light until a figure is drawn.
"""

from __future__ import annotations

import importlib

from lprcausal.figures.names import FIGURE_NAMES, FORMATS, STYLES, WIDTHS  # noqa: F401 (in __all__)

_WHERE = {
    "accuracy_vs_sparsity": "accuracy",
    "find_vs_eval": "accuracy",
    "heatmap": "heatmap",
    "layer_lpr": "lpr",
    "transplant_interaction": "transplant",
    "transplant_effects": "transplant",
    "dose_response": "dose",
    "controls": "controls",
    "FIGURES": "catalog",
    "Rendered": "catalog",
    "Results": "catalog",
    "load_results": "catalog",
    "parse_formats": "catalog",
    "render_figures": "catalog",
    "OKABE_ITO": "style",
    "Look": "style",
    "figure_style": "style",
    "h_find_looks": "style",
    "save_figure": "style",
}

__all__ = sorted([*_WHERE, "FIGURE_NAMES", "FORMATS", "STYLES", "WIDTHS"])


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"lprcausal.figures.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lprcausal.figures' has no attribute {name!r}")
