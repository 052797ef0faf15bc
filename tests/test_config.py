"""Hyperparameter configs: validation, TOML round trip and pinned hashes."""

from __future__ import annotations

import pytest

from lprcausal.config import (
    EvalSpec,
    FindSpec,
    MaskSpec,
    PruneConfig,
    TrainConfig,
    derive_seed,
    load_toml,
    point_to_step,
    spec_hash,
    to_toml,
)
from lprcausal.errors import LprError


def test_pinned_hashes_never_drift():
    # Changing one of these means every stored run would be recomputed: only do it on purpose.
    assert spec_hash(FindSpec()) == "0beb469c7a3363b2"
    assert spec_hash(FindSpec(train=TrainConfig(lr=0.05), seed=3)) == spec_hash(
        FindSpec.from_dict({"train": {"lr": 0.05}, "seed": 3})
    )
    assert spec_hash(FindSpec(train=TrainConfig(lr=0.05), seed=3)) == "aa442795235364a0"
    assert spec_hash(EvalSpec(find="0beb469c7a3363b2", sparsity=0.9)) == "bf3bcbe0d1c86053"


def test_defaults_do_not_enter_the_hash():
    explicit = FindSpec(train=TrainConfig(lr=0.1, momentum=0.9))
    assert spec_hash(explicit) == spec_hash(FindSpec())
    assert FindSpec().to_dict(omit_defaults=True) == {}


def test_different_h_gives_different_hash():
    assert spec_hash(FindSpec(train=TrainConfig(lr=0.05))) != spec_hash(FindSpec())
    assert spec_hash(FindSpec(seed=1)) != spec_hash(FindSpec())


def test_toml_round_trip(tmp_path):
    h = TrainConfig(optimizer="adamw", lr=3e-3, weight_decay=0.01, iterations=500, epochs=None,
                    schedule="step", milestones=("100it", "2ep"), warmup="50it", augment=True)
    path = tmp_path / "h.toml"
    path.write_text(to_toml(h))
    assert TrainConfig.from_dict(load_toml(path)) == h


def test_unknown_option_suggests_nearest():
    with pytest.raises(LprError, match=r"Unknown option 'train.lrr'.*Did you mean 'lr'"):
        TrainConfig.from_dict({"lrr": 0.1})


def test_wrong_type_names_field():
    with pytest.raises(LprError, match=r"train.batch_size = 'big' has the wrong type"):
        TrainConfig.from_dict({"batch_size": "big"})


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan")])
def test_non_positive_lr_is_refused(lr):
    with pytest.raises(LprError, match="lr = .* expected a positive learning rate"):
        TrainConfig(lr=lr)


@pytest.mark.parametrize("s", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval_is_refused(s):
    with pytest.raises(LprError, match=r"sparsity = .* 0 <= s < 1"):
        PruneConfig(sparsities=(s,))
    with pytest.raises(LprError, match=r"sparsity"):
        EvalSpec(find="x", sparsity=s)


def test_epochs_and_iterations_are_exclusive():
    with pytest.raises(LprError, match="exactly one"):
        TrainConfig(epochs=3, iterations=10)


def test_lr_schedules():
    n = 100  # 10 steps per epoch at batch 10
    step = TrainConfig(lr=1.0, batch_size=10, epochs=3, schedule="step", milestones=("1ep", "25it"),
                       gamma=0.5)
    f = step.lr_factors(n)
    assert len(f) == 30
    assert f[9] == 1.0 and f[10] == 0.5 and f[24] == 0.5 and f[25] == 0.25
    cos = TrainConfig(batch_size=10, epochs=2, schedule="cosine", warmup="4it").lr_factors(n)
    assert cos[0] == pytest.approx(0.25) and cos[3] == pytest.approx(0.5 * (1 + __import__(
        "math").cos(__import__("math").pi * 3 / 20)))
    assert cos[10] == pytest.approx(0.5)


def test_training_points():
    assert point_to_step("init", 7) == 0
    assert point_to_step("12it", 7) == 12
    assert point_to_step("2ep", 7) == 14
    with pytest.raises(LprError, match="rewind = '2 epochs' is not a training point"):
        point_to_step("2 epochs", 7)


def test_imp_levels_include_targets():
    levels = PruneConfig(method="imp", rate=0.5, sparsities=(0.8,)).levels()
    assert levels == [0.5, 0.75, 0.8]
    assert PruneConfig(sparsities=(0.9, 0.5)).levels() == [0.5, 0.9]


def test_derived_seeds_depend_on_replicate_and_role_only():
    assert derive_seed(0, "init") == derive_seed(0, "init")
    assert derive_seed(0, "init") != derive_seed(1, "init")
    assert derive_seed(0, "init") != derive_seed(0, "find-data")
    assert derive_seed(0, "init") == 488963315696449206


def test_mask_spec_validates_alpha():
    with pytest.raises(LprError, match="alpha = 1.5"):
        MaskSpec(kind="interp", alpha=1.5)
