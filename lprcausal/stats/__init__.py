"""Statistical building blocks for per-seed paired designs.

Each test returns a :class:`TestRecord`; :func:`records_to_dataset` stacks records
into an xarray Dataset. Defaults follow the design notes: paired t with t CIs, an
exact sign-flip test as robustness check, a within-seed (repeated-measures) ANOVA, TOST
before claiming no effect, Page's test and per-seed slopes for dose-response,
Holm within pre-registered families and Benjamini-Hochberg across exploratory grids.
"""

from __future__ import annotations

from lprcausal.lazy import lazy_exports

# name -> the module that defines it. Loaded on first use (PEP 562), so that importing a
# light submodule (``lprcausal.stats.defaults``, for the command line's options) does not
# load scipy and statsmodels.
_WHERE = {
    "CONTRASTS": "lprcausal.results.schema",
    "PRIMARY": "lprcausal.stats.mediation",
    "TestRecord": "lprcausal.stats.records",
    "adjust": "lprcausal.stats.multiple",
    "adjust_records": "lprcausal.stats.multiple",
    "factorial_anova": "lprcausal.stats.anova",
    "fieller_interval": "lprcausal.stats.mediation",
    "isotonic_fit": "lprcausal.stats.trend",
    "mean_nie": "lprcausal.stats.mediation",
    "mediation_tests": "lprcausal.stats.mediation",
    "nie_test": "lprcausal.stats.mediation",
    "min_sign_flip_p": "lprcausal.stats.paired",
    "page_trend": "lprcausal.stats.trend",
    "paired_t": "lprcausal.stats.paired",
    "per_seed_slopes": "lprcausal.stats.trend",
    "proportion_mediated": "lprcausal.stats.mediation",
    "rank_agreement": "lprcausal.stats.ranking",
    "records_to_dataset": "lprcausal.stats.records",
    "sign_flip_test": "lprcausal.stats.paired",
    "slope_test": "lprcausal.stats.trend",
    "tost_paired": "lprcausal.stats.paired",
    "transplant_contrasts": "lprcausal.stats.mediation",
    "within_seed_anova": "lprcausal.stats.anova",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
