"""Models by import path: identity of their code in the run id, one code path with the
built-ins, the user's own network on the CLI, and clear errors for every bad input."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
import torch
from conftest import TINY_DATA, TINY_MODEL, tiny_find, tiny_train
from conftest import run_cli as run
from user_code import PLUGIN_MODEL

from lprcausal.config import (
    EvalSpec,
    FindSpec,
    Kwargs,
    ModelConfig,
    PruneConfig,
    hash_payload,
    spec_from_record,
    spec_hash,
)
from lprcausal.errors import LprError
from lprcausal.pipeline import EvalRun, FindRun, ensure_evals, ensure_finds
from lprcausal.usercode import resolve_find, resolve_model


def listing(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if ".locks" not in p.parts)


def test_new_fields_at_their_defaults_leave_builtin_hashes_unchanged():
    spec = FindSpec()
    assert spec_hash(spec) == "0beb469c7a3363b2"  # pinned in test_config too
    assert hash_payload(spec) == {"kind": "find"}
    # a user model enters the hash by name, kwargs and code identity, never its location
    user = FindSpec(model=ModelConfig(name="nets.py:build", kwargs=Kwargs.of({"b": 2, "a": [1]})))
    assert hash_payload(user) == {"kind": "find", "model": {
        "name": "nets.py:build", "kwargs": {"a": [1], "b": 2}}}


def test_editing_one_character_of_the_model_file_changes_the_run_id(tmp_path):
    (tmp_path / "nets.py").write_text(PLUGIN_MODEL)
    (tmp_path / "other.py").write_text("X = 1\n")
    spec = tiny_find(model=ModelConfig(name="nets.py:build"))
    first = resolve_find(spec, tmp_path)
    assert first.model.code.file == str((tmp_path / "nets.py").resolve())
    (tmp_path / "other.py").write_text("X = 2\n")
    assert spec_hash(resolve_find(spec, tmp_path)) == spec_hash(first)
    (tmp_path / "nets.py").write_text(PLUGIN_MODEL.replace("dim=8", "dim=9"))
    second = resolve_find(spec, tmp_path)
    assert second.model.code.sha256 != first.model.code.sha256
    assert spec_hash(second) != spec_hash(first)
    # the location is stored with the run but is not part of its identity
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "nets.py").write_text(PLUGIN_MODEL.replace("dim=8", "dim=9"))
    assert spec_hash(resolve_find(spec, moved)) == spec_hash(second)
    assert spec_from_record({"kind": "find", "spec": second.to_dict()}) == second


INSTALLED = (metadata.packages_distributions().get("lprcausal") or [None])[0]


def test_builtin_mlp_by_import_path_gives_the_same_masks_and_accuracies(ctx):
    by_path = ModelConfig(name="lprcausal.models.factories:mlp",
                          kwargs=Kwargs.of({"widths": list(TINY_MODEL.widths)}))
    specs = [tiny_find(model=m, seed=s) for m in (TINY_MODEL, by_path) for s in (0, 1)]
    ids = ensure_finds(ctx, specs)
    assert len(set(ids)) == 4
    builtin, plugin = [FindRun(ctx.store, i) for i in ids[:2]], [FindRun(ctx.store, i) for i in ids[2:]]
    for a, b in zip(builtin, plugin, strict=True):
        # the installed distribution's name; None when lprcausal runs from a source tree
        assert b.spec.model.code.package == INSTALLED
        assert a.prunable == b.prunable == ["hidden.0.weight", "hidden.1.weight", "fc.weight"]
        assert a.metrics["find_acc"] == b.metrics["find_acc"]
        assert a.metrics["pruned_acc"] == b.metrics["pruned_acc"]
        for s in a.levels:
            for name, m in a.mask(s).items():
                assert torch.equal(m, b.mask(s)[name])
    evals = ensure_evals(ctx, [EvalSpec(find=r.id, sparsity=0.8, train=tiny_train())
                               for r in (*builtin, *plugin)])
    accs = [EvalRun(ctx.store, i).metrics["test_acc"] for i in evals]
    assert accs[:2] == accs[2:]


def test_a_changed_model_file_is_refused_when_building_a_stored_run(ctx, tmp_path):
    (tmp_path / "nets.py").write_text(PLUGIN_MODEL)
    spec = resolve_find(tiny_find(model=ModelConfig(name="nets.py:build")), tmp_path)
    [find_id] = ensure_finds(ctx, [spec])
    (tmp_path / "nets.py").write_text(PLUGIN_MODEL + "\n# edited\n")
    with pytest.raises(LprError, match="has changed since this run was described"):
        ensure_evals(ctx, [EvalSpec(find=find_id, sparsity=0.5, train=tiny_train())])


def test_cli_find_eval_lpr_and_runs_show_on_a_model_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(PLUGIN_MODEL)
    store = str(tmp_path / "runs")
    out = run(capsys, "find", "--model", "nets.py:build", "--model-arg", "dim=4",
              "--n-samples", "600", "--batch-size", "32", "--iterations", "6",
              "--sparsity", "0.5", "--exclude", "head.*", "--no-progress",
              "--store", store, "--name", "mine")
    assert "nets.py:build on mnist1d" in out
    show = run(capsys, "runs", "show", "mine", "--store", store)
    assert "model code: nets.py:build, kwargs {\"dim\": 4}, sha256 " in show
    payload = json.loads(show.split("(non-default fields; user code by file hash)\n")[1]
                         .split("\n")[0])
    assert payload["model"]["kwargs"] == {"dim": 4}
    assert payload["prune"]["exclude"] == ["head.*"]
    assert "file" not in payload["model"]["code"]
    prunable = ("embed.weight, attn.in_proj_weight, attn.out_proj.weight, mlp.0.weight, "
                "mlp.3.weight")
    assert f"prunable set (5 tensors): {prunable}" in show
    lpr = run(capsys, "lpr", "mine", "--store", store)
    assert f"prunable set (exclude head.*): 5 tensors: {prunable}" in lpr
    out = run(capsys, "eval", "mine", "--iterations", "6", "--batch-size", "32",
              "--no-progress", "--store", store)
    assert "attn.in_proj_weight" in out


BROKEN = {
    "raises.py": "def build(in_shape, n_classes):\n    raise ValueError('depth must be even')\n",
    "notmodule.py": "def build(in_shape, n_classes):\n    return 42\n",
    "shape.py": ("import torch\n\ndef build(in_shape, n_classes):\n"
                 "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 3))\n"),
    "noweights.py": ("import torch\n\nclass Net(torch.nn.Module):\n"
                     "    def __init__(self, n):\n        super().__init__()\n"
                     "        self.scale = torch.nn.Parameter(torch.ones(n))\n"
                     "    def forward(self, x):\n        return x.flatten(1)[:, :10] * self.scale\n"
                     "\ndef build(in_shape, n_classes):\n    return Net(n_classes)\n"),
    "syntax.py": "def build(:\n",
}

BAD = [
    (["--model", "nosuchpkg.nets:build"], "the module 'nosuchpkg.nets' is not found"),
    (["--model", "missing.py:build"], "the file 'missing.py' does not exist"),
    (["--model", "raises.py:make"], "the module has no attribute 'make'"),
    (["--model", "raises.py:build"], "the factory raised ValueError: depth must be even"),
    (["--model", "notmodule.py:build"], "returned a int, not a torch.nn.Module"),
    (["--model", "shape.py:build"], "to (2, 3): expected logits of shape (2, 10)"),
    (["--model", "noweights.py:build"], "no parameter is prunable by default"),
    (["--model", "raises.py:build", "--model-arg", "3"], "--model-arg = '3' is not valid"),
    (["--model", "syntax.py:build"], "running the file"),
    (["--model", "mlp", "--prunable", "conv*"], "include = 'conv*' matches no parameter"),
    (["--model", "mlp", "--exclude", "head.*"], "exclude = 'head.*' matches no parameter"),
    (["--model", "mlp", "--model-arg", "depth=2"], "keyword arguments go to models given by"),
    (["--model", "nets:"], "is not a valid import path"),
    (["--model", "torchvision.models:resnet18", "--model-arg", "weights=IMAGENET1K_V1"],
     "weights = 'IMAGENET1K_V1' is not supported"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_user_model_is_one_paragraph_without_traceback(capsys, tmp_path, monkeypatch,
                                                          args, message):
    monkeypatch.chdir(tmp_path)
    for name, text in BROKEN.items():
        (tmp_path / name).write_text(text)
    before = listing(tmp_path)
    err = run(capsys, "find", *args, "--n-samples", "600", "--iterations", "2",
              "--no-progress", "--store", str(tmp_path / "runs"), code=2)
    assert message in err
    assert "Traceback" not in err and err.startswith("Error: ") and err.count("\n") == 1
    assert listing(tmp_path) == before


def test_errors_for_bad_globs_list_the_parameter_names(capsys, tmp_path):
    err = run(capsys, "find", "--prunable", "conv*", "--n-samples", "600", "--widths", "8",
              "--no-progress", "--store", str(tmp_path / "runs"), code=2)
    assert "hidden.0.weight (8, 40), hidden.0.bias (8,), fc.weight (10, 8), fc.bias (10,)" in err


def test_model_resolves_next_to_a_base_folder_before_the_working_directory(tmp_path,
                                                                           monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "nets.py").write_text(PLUGIN_MODEL)
    (tmp_path / "nets.py").write_text(PLUGIN_MODEL + "\n")
    monkeypatch.chdir(tmp_path)
    here = resolve_model(ModelConfig(name="nets.py:build"))
    there = resolve_model(ModelConfig(name="nets.py:build"), tmp_path / "a")
    assert here.code.file == str(tmp_path / "nets.py")
    assert there.code.file == str(tmp_path / "a" / "nets.py")
    assert here.code.sha256 != there.code.sha256


def test_prune_globs_are_part_of_the_spec_and_validated():
    assert PruneConfig(include=("blocks.*",)).include == ("blocks.*",)
    with pytest.raises(LprError, match="include = '' is not valid"):
        PruneConfig(include=("",))
    assert TINY_DATA.code is None


class _OneWorker:
    """A stand-in for a Dask client: ``run`` calls the function here, as one worker would."""

    def run(self, func, *args):
        return {"tcp://worker:1": func(*args)}


def test_dask_workers_get_the_model_file_shipped_or_a_clear_error(tmp_path, monkeypatch):
    from lprcausal import usercode
    from lprcausal.study.executor import _load_code, check_workers, runtime_for
    from lprcausal.study.graph import build_graph
    from lprcausal.study.spec import parse_spec

    study = tmp_path / "study"
    study.mkdir()
    (study / "nets.py").write_text(PLUGIN_MODEL)
    raw = {"data": {"name": "mnist1d", "n_samples": 600}, "model": {"name": "nets.py:build"},
           "find": {"iterations": 2, "batch_size": 32}}
    (study / "s.toml").write_text("")  # parse_spec resolves next to an existing study file
    spec = parse_spec(raw, source=str(study / "s.toml"))
    graph = build_graph(spec)
    ctx = type("C", (), {"store": type("S", (), {"root": tmp_path / "runs"})(),
                         "data_root": None, "download": False, "cache_dir": None,
                         "engine": None})()
    rt = runtime_for(ctx, graph)
    [(sha, text)] = rt.sources
    assert sha == spec.model.code.sha256 and text == PLUGIN_MODEL
    # a worker that cannot see the file loads the shipped text instead
    (study / "nets.py").unlink()
    monkeypatch.setattr(usercode, "_MODULES", {})
    monkeypatch.setattr(usercode, "_SHIPPED", {})
    refs = [("model", spec.model.name, spec.model.code)]
    assert _load_code((), refs)[0].startswith("model = 'nets.py:build': the file ")
    assert _load_code(rt.sources, refs) == []
    check_workers(_OneWorker(), rt, graph)
    # a module the workers cannot import fails before anything trains
    missing = ModelConfig(name="nosuchpkg.nets:build", code=spec.model.code)
    graph.finds = {k: v.replace(model=missing) for k, v in graph.finds.items()}
    with pytest.raises(LprError, match=r"Dask worker tcp://worker:1 cannot load the study's "
                                       r"code: .*install the package on the workers"):
        check_workers(_OneWorker(), rt, graph)
