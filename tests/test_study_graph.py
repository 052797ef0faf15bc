"""The job graph of a study: nodes, dedup, dependencies, chunks and the work estimate."""

from __future__ import annotations

from test_study_spec import spec_dict

from lprcausal.config import (
    DataConfig,
    FindSpec,
    ModelConfig,
    PruneConfig,
    TrainConfig,
    spec_hash,
)
from lprcausal.store import RunStore
from lprcausal.study import build_graph, parse_spec
from lprcausal.study.graph import chunks, make_plan


def graph_of(**changes):
    return build_graph(parse_spec(spec_dict(**changes)))


def test_one_find_run_per_h_find_and_seed():
    g = graph_of()
    assert sorted(g.find_ids) == [("lr=0.03", 0), ("lr=0.03", 1), ("lr=0.1", 0), ("lr=0.1", 1)]
    assert len(g.finds) == 4


def test_find_runs_are_the_runs_of_lprcausal_find():
    # A study node is the run `lprcausal find` would make with the same options, so
    # runs are shared between studies and single commands.
    g = graph_of()
    by_hand = FindSpec(
        data=DataConfig(name="mnist1d", n_samples=600),
        model=ModelConfig("mlp", (8,)),
        train=TrainConfig(lr=0.1, batch_size=50, epochs=None, iterations=10),
        prune=PruneConfig(sparsities=(0.5, 0.8)),
        seed=1,
    )
    assert g.find_ids[("lr=0.1", 1)] == spec_hash(by_hand) == "c3a8272f55a01367"


def test_coupled_and_fixed_arms_of_equal_h_are_one_run():
    # H_eval fixed at lr=0.1 equals the coupled arm of H_find lr=0.1: one run, two cells.
    g = graph_of(eval={"coupled": True, "train": {"lr": 0.1}}, transplant=None)
    same = [
        g.decoupled[("lr=0.1", "coupled", s, sp)] == g.decoupled[("lr=0.1", "lr=0.1", s, sp)]
        for s in (0, 1)
        for sp in (0.5, 0.8)
    ]
    assert all(same)
    # 2 h_find x 2 h_eval x 2 seeds x 2 sparsities = 16 cells, 4 of them shared
    assert len(g.decoupled) == 16 and len(g.evals) == 12


def test_transplant_cells_depend_on_both_find_runs():
    g = graph_of()
    design = g.designs["lr=0.1->lr=0.03"]
    a, b = design.pairs[1]
    assert (a, b) == (g.find_ids[("lr=0.1", 1)], g.find_ids[("lr=0.03", 1)])
    cross = [i for i, s in g.evals.items() if s.find == a and s.mask.lpr_from == b]
    assert cross and all(set(g.needs(i)) == {a, b} for i in cross)


def test_transplant_adds_cells_alphas_per_seed_and_sparsity():
    g = graph_of(eval={"coupled": False, "train": {"lr": 0.05}})
    decoupled = 2 * 1 * 2 * 2
    transplant = 2 * 2 * (4 + 2)  # seeds x sparsities x (2x2 cells + 2 alphas)
    assert len(g.evals) == decoupled + transplant


def test_chunks_follow_fusion_groups_and_are_balanced():
    find = {"iterations": 10, "grid": {"batch_size": [25, 50], "lr": [0.1, 0.2, 0.3]}}
    g = graph_of(find=find, transplant=None, study={"seeds": 3})
    out = chunks(g, list(g.finds), size=4)
    # two batch sizes -> two groups of 9 runs, each split into 3 chunks of 3
    assert sorted(len(c) for c in out) == [3] * 6
    for c in out:
        assert len({g.finds[i].train.batch_size for i in c}) == 1


def test_plan_counts_cached_runs_and_steps(tmp_path):
    g = graph_of(transplant=None)
    store = RunStore(tmp_path)
    cached = g.find_ids[("lr=0.1", 0)]
    # a valid run (its run.json spec hashes to its id; the manifest lists its files) ...
    with store.new_run(cached) as w:
        w.json("run.json", {"id": cached, "kind": "find", "spec": g.finds[cached].to_dict()})
    # ... and one that only looks like one (an empty manifest): damaged, so to train
    damaged = g.find_ids[("lr=0.03", 0)]
    (tmp_path / damaged).mkdir()
    (tmp_path / damaged / "manifest.json").write_text("{}")
    plan = make_plan(g, store, n_train=500, chunk_size=256)
    assert (plan.n_find, plan.missing_find) == (4, 3)
    assert (plan.n_eval, plan.missing_eval) == (16, 16)
    assert plan.steps_find == 3 * 10 and plan.steps_eval == 16 * 10
    assert "to train     19" in str(plan)


def test_imp_find_steps_count_every_round():
    find = {"epochs": 2, "batch_size": 100}
    prune = {"method": "imp", "rate": 0.5, "sparsities": [0.75]}
    g = graph_of(find=find, prune=prune, transplant=None, study={"seeds": 1})
    plan = make_plan(g, RunStore("unused"), n_train=500, chunk_size=256)
    # levels 0.5 and 0.75: dense round + one retrain = 2 rounds of 2 x 5 steps
    assert plan.steps_find == 2 * 10
    assert isinstance(next(iter(g.finds.values())), FindSpec)
