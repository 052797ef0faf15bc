"""Studies: a TOML spec -> a cached job graph of runs -> xarray result Datasets.

``Study.from_toml(path)`` validates a spec; ``.plan()`` sizes its job graph;
``.run(executor="local" | "dask")`` trains what the run store lacks and collects the
results; ``.results()`` returns them as xarray Datasets.
"""

from lprcausal.study.api import RunSummary, Study
from lprcausal.study.graph import JobGraph, Plan, build_graph
from lprcausal.study.spec import StudySpec, load_spec, parse_spec

__all__ = [
    "JobGraph",
    "Plan",
    "RunSummary",
    "Study",
    "StudySpec",
    "build_graph",
    "load_spec",
    "parse_spec",
]
