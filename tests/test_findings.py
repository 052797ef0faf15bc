"""The committed MNIST-1D findings (studies/findings/) regenerate from their netCDF files.

No training: ``lprcausal stats`` on each committed results folder must print exactly the
committed markdown table, the MDE tables must follow from the committed stats.nc, and
every study file must still expand into the design its results hold.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from lprcausal.results.io import load_dataset
from lprcausal.study import build_graph, load_spec

FINDINGS = Path(__file__).resolve().parents[1] / "studies" / "findings"
SPECS = sorted(FINDINGS.glob("*.toml"))
NAMES = [load_spec(p).name for p in SPECS] if SPECS else []


def test_every_findings_study_has_committed_results_and_tables():
    assert len(SPECS) == 7
    for name in NAMES:
        assert (FINDINGS / "results" / name / "decoupled.nc").is_file(), name
        assert (FINDINGS / "tables" / f"{name}.md").is_file(), name


@pytest.mark.parametrize("name", NAMES)
def test_stats_on_the_committed_results_print_the_committed_table(name, tmp_path, capsys):
    results = tmp_path / name
    shutil.copytree(FINDINGS / "results" / name, results)
    out = run_cli(capsys, "stats", str(results), "--format", "markdown", "--no-write")
    assert out == (FINDINGS / "tables" / f"{name}.md").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_the_mde_table_follows_from_the_committed_stats(name, capsys):
    loader = importlib.util.spec_from_file_location("mde", FINDINGS / "mde.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    module.main(str(FINDINGS / "results" / name))
    assert capsys.readouterr().out == (FINDINGS / "tables" / f"{name}_mde.md").read_text()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_the_study_file_matches_its_committed_results(path):
    spec = load_spec(path)
    graph = build_graph(spec)
    ds = load_dataset(FINDINGS / "results" / spec.name / "decoupled.nc")
    assert [str(v) for v in ds["h_find"].values] == [p.label for p in spec.h_find]
    assert [int(v) for v in ds["seed"].values] == list(spec.seeds)
    ids = {str(v) for v in ds["find_run"].values.ravel()}
    assert ids == set(graph.finds)


def test_the_readme_quotes_the_generated_tables_verbatim():
    loader = importlib.util.spec_from_file_location("readme_tables", FINDINGS / "readme_tables.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    readme = (FINDINGS / "README.md").read_text()
    assert module.MARK.search(readme), "the README quotes no table"
    assert module.filled(readme) == readme


def test_recomputing_stats_rewrites_byte_identical_files(tmp_path, capsys):
    # no timestamp in the records: regenerating the findings leaves git clean
    results = tmp_path / "m"
    shutil.copytree(FINDINGS / "results" / "findings_mediation", results)
    written = {}
    for attempt in range(2):
        run_cli(capsys, "stats", str(results), "--format", "markdown")
        written[attempt] = {p.name: p.read_bytes() for p in results.glob("*.nc")
                            if p.name in ("stats.nc", "anova.nc", "dose_fit.nc")}
    assert set(written[0]) == {"stats.nc", "anova.nc", "dose_fit.nc"}
    assert written[0] == written[1]
    for name in written[0]:
        history = load_dataset(results / name).attrs.get("history", "")
        assert not re.search(r"\d{4}-\d\d-\d\d", history), (name, history)
