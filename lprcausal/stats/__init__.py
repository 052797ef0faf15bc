"""Statistical building blocks for per-seed paired designs.

Each test returns a :class:`TestRecord`; :func:`records_to_dataset` stacks records
into an xarray Dataset. Defaults follow the design notes: paired t with t CIs, an
exact sign-flip test as robustness check, a within-seed (repeated-measures) ANOVA, TOST
before claiming no effect, Page's test and per-seed slopes for dose-response,
Holm within pre-registered families and Benjamini-Hochberg across exploratory grids.
"""

from lprcausal.results.schema import CONTRASTS
from lprcausal.stats.anova import factorial_anova, within_seed_anova
from lprcausal.stats.mediation import (
    PRIMARY,
    fieller_interval,
    mean_nie,
    mediation_tests,
    nie_test,
    proportion_mediated,
    transplant_contrasts,
)
from lprcausal.stats.multiple import adjust, adjust_records
from lprcausal.stats.paired import min_sign_flip_p, paired_t, sign_flip_test, tost_paired
from lprcausal.stats.ranking import rank_agreement
from lprcausal.stats.records import TestRecord, records_to_dataset
from lprcausal.stats.trend import isotonic_fit, page_trend, per_seed_slopes, slope_test

__all__ = [
    "CONTRASTS",
    "PRIMARY",
    "TestRecord",
    "adjust",
    "adjust_records",
    "factorial_anova",
    "fieller_interval",
    "isotonic_fit",
    "mean_nie",
    "mediation_tests",
    "nie_test",
    "min_sign_flip_p",
    "page_trend",
    "paired_t",
    "per_seed_slopes",
    "proportion_mediated",
    "rank_agreement",
    "records_to_dataset",
    "sign_flip_test",
    "slope_test",
    "tost_paired",
    "transplant_contrasts",
    "within_seed_anova",
]
