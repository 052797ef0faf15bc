"""Transplant pairs chosen by a rule (``[transplant] pairs_from``) from decoupled results."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import tomli_w
from stats_synthetic import decoupled_ds
from test_study_spec import BASE

from lprcausal.errors import LprError
from lprcausal.results.io import save_dataset
from lprcausal.study import Study, load_spec

FINDS = ("base", "lr=0.01", "lr=0.1", "batch_size=25", "batch_size=100")
EVALS = ("coupled", "base")
# per-H_find eval accuracy with the fixed H_eval 'base' (sparsity 0.5, 0.8), seed 0
MEANS = {
    "base": (0.70, 0.60),
    "lr=0.01": (0.66, 0.58),   # vs base: -0.03
    "lr=0.1": (0.75, 0.65),    # vs base: +0.05; vs lr=0.01: +0.08 (the largest of lr)
    "batch_size=25": (0.72, 0.60),  # vs base: +0.01
    "batch_size=100": (0.68, 0.56),  # vs base: -0.03; vs bs=25: -0.04 (the largest)
}


def spec_with(tmp_path, pairs_from: dict, sparsities=(0.5, 0.8)) -> dict:
    spec = copy.deepcopy(BASE)
    spec["prune"] = {"sparsities": [0.5, 0.8]}
    spec["find"] = {
        "lr": 0.03, "batch_size": 50, "iterations": 10,
        "points": [{"label": "base"}, {"lr": 0.01}, {"lr": 0.1},
                   {"batch_size": 25}, {"batch_size": 100}],
    }
    spec["eval"] = {"coupled": True, "label": "base", "train": {"lr": 0.03}}
    spec["transplant"] = {"pairs_from": pairs_from, "sparsities": list(sparsities)}
    spec["stats"] = {"reference_h_find": "base", "reference_h_eval": "base"}
    return spec


def write_results(tmp_path, n_seeds: int = 3, nan_seed: int | None = None,
                  val: bool = True) -> None:
    """MEANS as validation accuracy; test accuracy ordered the other way round, so a rule
    that looked at test accuracy would pick other pairs."""
    acc = np.full((len(FINDS), len(EVALS), n_seeds, 2), np.nan)
    for i, f in enumerate(FINDS):
        for s in range(n_seeds):
            acc[i, 1, s, :] = np.array(MEANS[f]) + 0.001 * s  # the same shift for every H_find
    if nan_seed is not None:
        acc[FINDS.index("lr=0.1"), 1, nan_seed, 0] = np.nan
    test = 1.4 - acc  # every test gap is the validation gap with its sign flipped,
    test[FINDS.index("lr=0.01")] = test[FINDS.index("base")]  # and lr=0.01 ties with base
    ds = decoupled_ds(test, FINDS, EVALS, sparsities=(0.5, 0.8), configs=False,
                      attrs={"reference_h_find": "base", "reference_h_eval": "base"})
    if val:
        ds["val_acc"] = (ds["acc"].dims, acc)
    save_dataset(ds, tmp_path / "results" / "first" / "decoupled.nc")


RULE = {"decoupled": "results/first/decoupled.nc", "rule": "largest_decoupling",
        "per": "hyperparameter"}


def load(tmp_path, spec: dict):
    path = tmp_path / "second.toml"
    path.write_text(tomli_w.dumps(spec))
    return load_spec(path)


def test_the_rule_picks_the_largest_difference_per_hyperparameter(tmp_path):
    write_results(tmp_path)
    spec = load(tmp_path, spec_with(tmp_path, RULE))
    # lr: lr=0.01 -> lr=0.1 (+0.08 beats +0.05 and 0.03); batch: 100 -> 25 (+0.04);
    # a is the lower-accuracy arm, so the total effect b - a is positive
    assert spec.transplant.pairs == (("lr=0.01", "lr=0.1"), ("batch_size=100", "batch_size=25"))
    picked = spec.transplant.picked
    assert [p.group for p in picked] == ["lr", "batch_size"]
    assert picked[0].effect == pytest.approx(0.08)
    assert picked[1].effect == pytest.approx(0.04)
    assert [p.n_seeds for p in picked] == [3, 3]
    assert [p.candidates for p in picked] == [3, 3]


def test_the_effect_averages_only_the_transplant_sparsities(tmp_path):
    write_results(tmp_path)
    spec = load(tmp_path, spec_with(tmp_path, RULE, sparsities=(0.8,)))
    # at 0.8 alone: lr=0.01 -> lr=0.1 is +0.07, batch 100 -> 25 is +0.04
    assert [p.effect for p in spec.transplant.picked] == pytest.approx([0.07, 0.04])


def test_a_seed_with_a_diverged_run_is_left_out_of_that_pair_only(tmp_path):
    write_results(tmp_path, nan_seed=1)
    spec = load(tmp_path, spec_with(tmp_path, RULE))
    assert [p.n_seeds for p in spec.transplant.picked] == [2, 3]


def test_the_plan_prints_the_chosen_pairs(tmp_path):
    write_results(tmp_path)
    spec = load(tmp_path, spec_with(tmp_path, RULE))
    text = str(Study(spec, store=tmp_path / "runs").plan())
    assert "lr: lr=0.01 -> lr=0.1, decoupled eval validation accuracy +0.0800 over 3 seeds" in text
    assert "batch_size: batch_size=100 -> batch_size=25" in text


def test_pairs_are_chosen_on_validation_accuracy_never_on_test(tmp_path):
    write_results(tmp_path)
    spec = load(tmp_path, spec_with(tmp_path, RULE))
    # on test accuracy lr=0.01 ties with base and the sign of every gap flips, so a rule
    # reading test accuracy would pick lr=0.1 -> base (+0.05 on test) and batch 25 -> 100
    assert spec.transplant.pairs == (("lr=0.01", "lr=0.1"), ("batch_size=100", "batch_size=25"))


def test_decoupled_results_without_validation_accuracy_are_refused(tmp_path):
    write_results(tmp_path, val=False)
    with pytest.raises(LprError, match="no validation accuracy .* never on test accuracy"):
        load(tmp_path, spec_with(tmp_path, RULE))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rule": "best"}, "transplant.pairs_from.rule = 'best' is not valid"),
        ({"per": "pair"}, "transplant.pairs_from.per = 'pair' is not valid"),
        ({"decoupled": "results/none.nc"}, "does not exist: run the study that writes it first"),
        ({"extra": 1}, "unknown key 'transplant.pairs_from.extra'"),
    ],
)
def test_bad_pairs_from_is_refused_clearly(tmp_path, change, message):
    write_results(tmp_path)
    with pytest.raises(LprError, match=message):
        load(tmp_path, spec_with(tmp_path, RULE | change))


def test_pairs_and_pairs_from_together_are_refused(tmp_path):
    write_results(tmp_path)
    spec = spec_with(tmp_path, RULE)
    spec["transplant"]["pairs"] = [["base", "lr=0.1"]]
    with pytest.raises(LprError, match="exactly one of pairs"):
        load(tmp_path, spec)


def test_a_point_changing_two_fields_has_no_hyperparameter(tmp_path):
    write_results(tmp_path)
    spec = spec_with(tmp_path, RULE)
    spec["find"]["points"][2] = {"lr": 0.1, "batch_size": 64, "label": "lr=0.1"}
    with pytest.raises(LprError, match="differs from the reference 'base' in lr, batch_size"):
        load(tmp_path, spec)


def test_points_missing_from_the_earlier_results_are_named(tmp_path):
    write_results(tmp_path)
    spec = spec_with(tmp_path, RULE)
    spec["find"]["points"].append({"lr": 0.3})
    with pytest.raises(LprError, match="H_find lr=0.3 of this study are not in decoupled.nc"):
        load(tmp_path, spec)
