"""Studies over a [model.grid]: labels, validation, the cross-architecture transplant
design, and a tiny cross-width study end to end (run, stats, figures)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli
from test_study_spec import spec_dict

from lprcausal.errors import LprError
from lprcausal.results.io import load_dataset
from lprcausal.results.schema import CROSS
from lprcausal.study import Study, build_graph, parse_spec
from lprcausal.train import EngineOptions

MODEL = {"name": "mlp", "grid": {"widths": [[8], [24]]}}
FIND = {"lr": 0.1, "batch_size": 50, "iterations": 10}
TRANSPLANT = {"pairs": [["widths=8", "widths=24"]], "alphas": [0.0, 1.0],
              "controls": ["shuffle"]}


def models_spec(**changes) -> dict:
    return spec_dict(**{"model": MODEL, "find": FIND, "transplant": TRANSPLANT, **changes})


def test_model_grid_gives_one_h_find_per_model():
    spec = parse_spec(models_spec())
    assert [p.label for p in spec.h_find] == ["widths=8", "widths=24"]
    assert [spec.model_of(p).widths for p in spec.h_find] == [(8,), (24,)]


def test_model_grid_times_an_h_grid_labels_model_first():
    spec = parse_spec(models_spec(find={**FIND, "grid": {"lr": [0.1, 0.03]}}, transplant=None))
    assert [p.label for p in spec.h_find] == [
        "widths=8,lr=0.1", "widths=8,lr=0.03", "widths=24,lr=0.1", "widths=24,lr=0.03"]


def test_model_names_grid_is_labelled_model():
    model = {"grid": {"name": ["mlp", "cnn1d"]}}
    spec = parse_spec(models_spec(model=model, transplant=None))
    assert [p.label for p in spec.h_find] == ["model=mlp", "model=cnn1d"]


@pytest.mark.parametrize(
    "model,message",
    [
        ({"name": "mlp", "grid": {"depth": [1, 2]}}, r"unknown key 'model.grid.depth'"),
        ({"name": "mlp", "grid": {"widths": []}}, r"model.grid.widths = \[\] is not valid"),
        ({"name": "mlp", "grid": {"widths": [8, 16]}}, r"model.grid at point widths=8: "),
        ({"name": "mlp", "widths": [8], "grid": {"widths": [[8], [16]]}},
         r"model.widths and model.grid.widths are both given"),
        ({"name": "mlp", "grid": {}}, r"model.grid is empty"),
        ({"name": "mlp", "grid": {"widths": [[8], [8]]}}, r"repeats the point widths=8"),
    ],
)
def test_bad_model_grids_are_clear_errors(model, message):
    with pytest.raises(LprError, match=message):
        parse_spec(models_spec(model=model, transplant=None))


@pytest.mark.parametrize(
    "transplant,message",
    [
        ({**TRANSPLANT, "match": "depth"}, r"transplant.match = 'depth' is not known"),
        ({**TRANSPLANT, "match": "stage", "layer_map": {"fc.weight": 0.5}},
         r"transplant.match = 'stage' and \[transplant.layer_map\] are both given"),
        ({**TRANSPLANT, "layer_map": {"fc.weight": 2}}, r"'fc.weight' = 2 is not valid"),
    ],
)
def test_bad_match_options_are_clear_errors(transplant, message):
    with pytest.raises(LprError, match=message):
        parse_spec(models_spec(transplant=transplant))


@pytest.mark.parametrize("extra", [{"match": "position"}, {"layer_map": {"fc.weight": 0.5}}])
def test_match_options_without_a_pair_of_two_models_are_refused(extra):
    """A pair of one model always matches by name: the option was silently ignored."""
    same = {"pairs": [["lr=0.1", "lr=0.03"]], **extra}
    with pytest.raises(LprError, match=r"no transplant pair trains two different models"):
        parse_spec(spec_dict(transplant=same))
    grid = models_spec(find={**FIND, "grid": {"lr": [0.1, 0.03]}},
                       transplant={"pairs": [["widths=8,lr=0.1", "widths=8,lr=0.03"]], **extra})
    with pytest.raises(LprError, match=r"no transplant pair trains two different models"):
        parse_spec(grid)
    grid["transplant"]["pairs"].append(["widths=8,lr=0.1", "widths=24,lr=0.1"])
    assert parse_spec(grid).transplant.match in ("position", "map")


def test_pair_of_two_models_gets_the_cross_design_with_cells_of_weights_b_only():
    graph = build_graph(parse_spec(models_spec()))
    design = graph.designs["widths=8->widths=24"]
    assert design.cross and design.weights == (1,)
    a_ids = {graph.find_ids[("widths=8", s)] for s in (0, 1)}
    tp = [e for e in graph.evals.values() if e.mask.kind != "own"]
    # per seed and sparsity: 2 cells, 2 alphas, 1 control, all on the weights of b
    assert len(tp) == 2 * 2 * 5
    assert not any(e.find in a_ids for e in tp)


def test_unmatched_layers_fail_before_anything_trains(tmp_path):
    model = {"name": "mlp", "grid": {"widths": [[8], [8, 8]]}}
    transplant = {"pairs": [["widths=8", "widths=8+8"]]}
    study = Study(models_spec(model=model, transplant=transplant), store=tmp_path / "store",
                  results=tmp_path / "results", engine=EngineOptions(progress=False))
    with pytest.raises(LprError, match=r"transplant pair widths=8->widths=8\+8: .*"
                                       r"'hidden.1.weight'\] have no source layer"):
        study.run()
    assert not list((tmp_path / "store").glob("*/run.json"))


def test_tiny_cross_width_study_runs_with_stats_and_figures(tmp_path, capsys):
    study = Study(models_spec(), store=tmp_path / "store", results=tmp_path / "results",
                  engine=EngineOptions(progress=False))
    study.run()
    results = tmp_path / "results" / "t"
    tds = load_dataset(results / "transplant.nc")
    assert list(tds["design"].values) == [CROSS]
    assert np.isnan(tds["acc"].sel(w_src="a").values).all()
    assert np.isfinite(tds["acc"].sel(w_src="b").values).all()
    dec = load_dataset(results / "decoupled.nc")
    assert dec["n_params"].dims == ("h_find", "layer")
    # hidden.0 has 8 x 40 and 24 x 40 weights
    assert dec["n_params"].sel(layer="hidden.0.weight").values.tolist() == [320, 960]
    out = run_cli(capsys, "stats", str(results))
    assert "estimand: NIE_b" in out and "Y(b,a) - shuffle(b)" in out
    out = run_cli(capsys, "figures", str(results), "--out", str(tmp_path / "fig"))
    for name in ("accuracy_vs_sparsity", "layer_lpr", "transplant_interaction",
                 "transplant_effects", "dose_response", "controls"):
        assert (tmp_path / "fig" / f"{name}.png").is_file(), out
