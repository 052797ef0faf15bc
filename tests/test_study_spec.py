"""Study specs: grid expansion, labels, H_eval arms, transplants, and every bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import tomli_w

from lprcausal.config import TrainConfig
from lprcausal.errors import LprError
from lprcausal.study import Study, build_graph, load_spec, parse_spec
from lprcausal.study.spec import COUPLED

STUDIES = Path(__file__).resolve().parents[1] / "studies"

BASE = {
    "study": {"name": "t", "seeds": 2},
    "data": {"name": "mnist1d", "n_samples": 600},
    "model": {"name": "mlp", "widths": [8]},
    "prune": {"sparsities": [0.5, 0.8]},
    "find": {"lr": 0.1, "batch_size": 50, "iterations": 10, "grid": {"lr": [0.03, 0.1]}},
    "eval": {"coupled": True, "train": {"lr": 0.05}},
    "transplant": {"pairs": [["lr=0.1", "lr=0.03"]], "alphas": [0.0, 1.0]},
}


def spec_dict(**changes) -> dict:
    """BASE with top-level tables replaced (None drops the table)."""
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def write(tmp_path: Path, spec: dict, name: str = "my_study.toml") -> Path:
    path = tmp_path / name
    path.write_text(tomli_w.dumps(spec))
    return path


def labels(points) -> list[str]:
    return [p.label for p in points]


# ---------------------------------------------------------------------------- grids, labels
def test_grid_is_the_cartesian_product_in_spec_order():
    find = {"lr": 0.1, "iterations": 10, "grid": {"lr": [0.1, 0.01], "batch_size": [32, 64]}}
    spec = parse_spec(spec_dict(find=find, transplant=None))
    assert labels(spec.h_find) == [
        "lr=0.1,batch_size=32",
        "lr=0.1,batch_size=64",
        "lr=0.01,batch_size=32",
        "lr=0.01,batch_size=64",
    ]
    assert [(p.train.lr, p.train.batch_size) for p in spec.h_find] == [
        (0.1, 32),
        (0.1, 64),
        (0.01, 32),
        (0.01, 64),
    ]


def test_grid_points_keep_the_base_fields():
    spec = parse_spec(spec_dict())
    assert spec.h_find[0].train == TrainConfig(lr=0.03, batch_size=50, epochs=None, iterations=10)


def test_float_labels_use_the_shortest_exact_text():
    spec = parse_spec(
        spec_dict(find={"iterations": 10, "grid": {"lr": [1e-05, 0.3, 2]}}, transplant=None)
    )
    assert labels(spec.h_find) == ["lr=1e-05", "lr=0.3", "lr=2.0"]


def test_giving_iterations_in_a_grid_replaces_epochs():
    spec = parse_spec(
        spec_dict(find={"epochs": 3, "grid": {"iterations": [5, 7]}}, transplant=None)
    )
    assert [(p.train.epochs, p.train.iterations) for p in spec.h_find] == [(None, 5), (None, 7)]


def test_listed_points_take_their_labels_or_their_fields():
    find = {
        "iterations": 10,
        "points": [{"lr": 0.1, "batch_size": 32, "label": "small"}, {"lr": 0.4, "batch_size": 128}],
    }
    spec = parse_spec(spec_dict(find=find, transplant=None))
    assert labels(spec.h_find) == ["small", "lr=0.4,batch_size=128"]


def test_no_grid_gives_one_base_point():
    spec = parse_spec(spec_dict(find={"lr": 0.1, "iterations": 10}, transplant=None))
    assert labels(spec.h_find) == ["base"]


def test_seeds_given_as_a_count_are_zero_based():
    assert parse_spec(spec_dict(study={"seeds": 3})).seeds == (0, 1, 2)
    assert parse_spec(spec_dict(study={"seeds": [4, 1]})).seeds == (4, 1)


def test_name_defaults_to_the_file_stem(tmp_path):
    path = write(tmp_path, spec_dict(study={"seeds": 1}), "lr_sweep.toml")
    assert load_spec(path).name == "lr_sweep"


# ---------------------------------------------------------------------------- H_eval arms
def test_coupled_comes_first_then_the_fixed_h_labelled_by_the_find_grid_field():
    spec = parse_spec(spec_dict())
    assert labels(spec.h_eval) == [COUPLED, "lr=0.05"]
    assert spec.h_eval[0].train is None
    assert spec.h_eval[1].train.lr == 0.05 and spec.h_eval[1].train.iterations == 10


def test_eval_grid_extends_the_fixed_h():
    evals = {"coupled": False, "train": {"momentum": 0.5}, "grid": {"lr": [0.01, 0.02]}}
    spec = parse_spec(spec_dict(eval=evals, transplant=None))
    assert labels(spec.h_eval) == ["lr=0.01", "lr=0.02"]
    assert [p.train.momentum for p in spec.h_eval] == [0.5, 0.5]


def test_a_grid_point_may_leave_the_step_schedule_of_its_base():
    find = {"iterations": 10, "schedule": "step", "milestones": ["5it"], "gamma": 0.5,
            "grid": {"schedule": ["step", "cosine"]}}
    spec = parse_spec(spec_dict(find=find, transplant=None,
                                eval={"train": {"schedule": "constant"}}))
    assert [p.train.schedule for p in spec.h_find] == ["step", "cosine"]
    assert [p.train.schedule for p in spec.h_eval] == ["constant"]


def test_without_an_eval_table_h_eval_is_coupled():
    spec = parse_spec(spec_dict(eval=None, transplant=None))
    assert labels(spec.h_eval) == [COUPLED]


# ---------------------------------------------------------------------------- transplants
def test_reference_pairs_it_with_every_other_label():
    find = {"iterations": 10, "grid": {"lr": [0.01, 0.1, 1.0]}}
    spec = parse_spec(spec_dict(find=find, transplant={"reference": "lr=0.1"}))
    assert spec.transplant.pairs == (("lr=0.1", "lr=0.01"), ("lr=0.1", "lr=1.0"))


def test_stats_table_declares_the_reference_arms():
    spec = parse_spec(spec_dict(stats={"reference_h_find": "lr=0.1", "reference_h_eval": "lr=0.05"}))
    assert (spec.reference_h_find, spec.reference_h_eval) == ("lr=0.1", "lr=0.05")
    plain = parse_spec(spec_dict())
    assert (plain.reference_h_find, plain.reference_h_eval) == (None, None)


def test_transplant_uses_the_single_fixed_h_eval_and_all_target_sparsities():
    tp = parse_spec(spec_dict()).transplant
    assert (tp.h_eval, tp.sparsities, tp.alphas) == ("lr=0.05", (0.5, 0.8), (0.0, 1.0))


# ---------------------------------------------------------------------------- bad input
BAD = {
    "unknown_top_key": (
        {"trasplant": {}},
        ["my_study.toml", "'trasplant'", "Did you mean 'transplant'?"],
    ),
    "unknown_h_find_key": (
        {"find": {"lrr": 0.1, "iterations": 10}},
        ["my_study.toml", "find.lrr", "Did you mean 'lr'?"],
    ),
    "unknown_grid_field": (
        {"find": {"iterations": 10, "grid": {"weight_decai": [0.1]}}},
        ["find.grid.weight_decai", "Did you mean 'weight_decay'?"],
    ),
    "wrong_type": (
        {"find": {"iterations": 10, "grid": {"lr": ["fast"]}}},
        ["find.grid", "'fast'", "expected float"],
    ),
    "grid_value_not_a_list": (
        {"find": {"iterations": 10, "grid": {"lr": 0.1}}},
        ["find.grid.lr = 0.1", "expected a list"],
    ),
    "empty_grid_list": (
        {"find": {"iterations": 10, "grid": {"lr": []}}},
        ["find.grid.lr = []", "empty"],
    ),
    "empty_grid_table": (
        {"find": {"iterations": 10, "grid": {}}},
        ["find.grid is empty", "lr = [0.01, 0.1]"],
    ),
    "invalid_grid_value": (
        {"find": {"iterations": 10, "grid": {"lr": [0.1, -1.0]}}},
        ["find.grid at point lr=-1.0", "positive learning rate"],
    ),
    "duplicate_labels": (
        {"find": {"iterations": 10, "grid": {"lr": [0.1, 0.1]}}},
        ["find", "same label 'lr=0.1'", "distinct"],
    ),
    "transplant_label_not_in_grid": (
        {"transplant": {"pairs": [["lr=0.1", "lr=0.3"]]}},
        ["transplant.pairs[0][1] = 'lr=0.3'", "Did you mean 'lr=0.03'?", "'lr=0.1'"],
    ),
    "transplant_pair_with_itself": (
        {"transplant": {"pairs": [["lr=0.1", "lr=0.1"]]}},
        ["transplant.pairs[0]", "itself"],
    ),
    "transplant_sparsity_not_a_target": (
        {"transplant": {"pairs": [["lr=0.1", "lr=0.03"]], "sparsities": [0.9]}},
        ["transplant.sparsities[0] = 0.9", "prune.sparsities"],
    ),
    "transplant_without_fixed_h_eval": (
        {"eval": {"coupled": True}},
        ["[transplant]", "fixed H_eval", "[eval.train]"],
    ),
    "unknown_control": (
        {"transplant": {"pairs": [["lr=0.1", "lr=0.03"]], "controls": ["shufle"]}},
        ["transplant.controls[0] = 'shufle'", "shuffle"],
    ),
    "no_h_eval": ({"eval": {"coupled": False}, "transplant": None}, ["[eval] defines no H_eval"]),
    "unknown_stats_key": (
        {"stats": {"reference": "lr=0.1"}},
        ["stats.reference", "reference_h_find, reference_h_eval"],
    ),
    "stats_reference_not_a_label": (
        {"stats": {"reference_h_find": "lr=0.3"}},
        ["stats.reference_h_find = 'lr=0.3'", "Did you mean 'lr=0.03'?", "'lr=0.1'"],
    ),
    "stats_reference_eval_is_coupled": (
        {"stats": {"reference_h_eval": "coupled"}},
        ["stats.reference_h_eval = 'coupled'", "a fixed H_eval", "'lr=0.05'"],
    ),
    # "coupled" names the arm whose H_eval is each row's H_find: results and stats read a
    # fixed H_eval of that label as coupled (every cell is_coupled, no reference)
    "fixed_h_eval_labelled_coupled": (
        {"eval": {"coupled": False, "train": {"lr": 0.05}, "label": "coupled"},
         "transplant": None},
        ["eval.label = 'coupled'", "coupled arm", "another label"],
    ),
    "eval_point_labelled_coupled": (
        {"eval": {"points": [{"lr": 0.05, "label": "coupled"}, {"lr": 0.1}]},
         "transplant": None},
        ["eval.points[0].label = 'coupled'", "coupled arm", "another label"],
    ),
    # milestones and gamma shape only the step schedule: without it they were ignored
    "milestones_without_step_schedule": (
        {"find": {"iterations": 10, "milestones": ["5it"], "grid": {"lr": [0.03, 0.1]}}},
        ["find.milestones = ['5it']", "schedule = 'constant'", "schedule = 'step'"],
    ),
    "gamma_without_step_schedule": (
        {"eval": {"train": {"lr": 0.05, "schedule": "cosine", "gamma": 0.5}}},
        ["eval.train.gamma = 0.5", "schedule = 'cosine'", "schedule = 'step'"],
    ),
    "grid_milestones_without_step_schedule": (
        {"find": {"iterations": 10, "grid": {"lr": [0.03, 0.1], "milestones": [["5it"]]}}},
        ["find.grid", "milestones = ['5it']", "schedule = 'step'"],
    ),
    # a forgotten method = "imp" trained one-shot, the rate ignored
    "imp_rate_with_oneshot": (
        {"prune": {"sparsities": [0.5, 0.8], "rate": 0.5}},
        ["prune.rate = 0.5", "method = 'oneshot'", "method = 'imp'"],
    ),
    "bad_seeds": ({"study": {"seeds": 0}}, ["study.seeds = 0", "replicates"]),
    "missing_find_table": ({"find": None}, ["[find] is missing"]),
    "unknown_eval_mode": (
        {"eval": {"coupled": True, "mode": "rewnd"}, "transplant": None},
        ["eval.mode = 'rewnd'", "rewind"],
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_spec_names_file_key_and_expected_form(tmp_path, case):
    changes, expected = BAD[case]
    path = write(tmp_path, spec_dict(**changes))
    with pytest.raises(LprError) as err:
        Study.from_toml(path, store=tmp_path / "store")
    text = str(err.value)
    assert text.startswith(f"In {path}: ")
    for piece in expected:
        assert piece in text
    assert not (tmp_path / "store").exists()


def test_bad_toml_syntax_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[find\nlr = 0.1\n")
    with pytest.raises(LprError, match="broken.toml.*not valid TOML"):
        load_spec(path)


# ---------------------------------------------------------------------------- bundled studies
@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_bundled_study_is_valid(path):
    spec = load_spec(path)
    graph = build_graph(spec)
    assert len(graph.finds) == len(spec.h_find) * len(spec.seeds)
    assert graph.evals


def test_bundled_python_study_builds_its_grid_in_code(tmp_path):
    import importlib.util

    loader = importlib.util.spec_from_file_location("lr_sweep", STUDIES / "lr_sweep.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    study = module.build(store=str(tmp_path / "store"), results=str(tmp_path / "results"))
    assert labels(study.spec.h_find) == [
        "lr=0.003",
        "lr=0.00754",
        "lr=0.0189",
        "lr=0.0475",
        "lr=0.119",
        "lr=0.3",
    ]
    assert (len(study.graph.finds), len(study.graph.evals)) == (6 * 3, 6 * 2 * 3 * 2)
