"""Options generated from config dataclasses: one declaration per field, no CLI edits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import click
import pytest
from click.testing import CliRunner

from lprcausal.cli.options import config_options
from lprcausal.config import DataConfig, ModelConfig, PruneConfig, TrainConfig, option
from lprcausal.errors import LprError


@dataclass(frozen=True)
class Toy:
    kind: str = option("a", "Kind.", choices=("a", "b"))
    rate: float = option(0.5, "Rate.")
    steps: int | None = option(None, "Steps.")
    tags: tuple[str, ...] = option((), "Tag (repeatable).", flag="--tag")
    widths: tuple[int, ...] | None = option(None, "Widths.", comma=True)
    dense: bool = option(False, "Dense.", off_flag="--sparse")
    hidden: int = 3  # no help: not an option


def given(*args: str) -> tuple[int, object]:
    seen = {}

    @click.command()
    @config_options(Toy, "toy")
    def command(toy):
        seen.update(toy)

    result = CliRunner().invoke(command, list(args))
    return result.exit_code, seen if result.exit_code == 0 else result.output


def test_only_the_options_typed_are_collected_with_their_field_types():
    assert given() == (0, {})
    code, values = given("--kind", "b", "--rate", "2", "--steps", "7", "--tag", "x", "--tag",
                         "y", "--widths", "300,100", "--sparse")
    assert code == 0
    assert values == {"kind": "b", "rate": 2.0, "steps": 7, "tags": ["x", "y"],
                      "widths": [300, 100], "dense": False}
    assert given("--dense") == (0, {"dense": True})


def test_choices_come_from_the_field_and_bad_values_are_user_errors():
    code, out = given("--kind", "c")
    assert code == 2 and "'c' is not one of 'a', 'b'" in out
    code, out = given("--hidden", "1")
    assert code == 2 and "No such option '--hidden'" in out
    with pytest.raises(LprError, match="--widths = '3,x' is not valid"):
        CliRunner().invoke(click.command()(config_options(Toy, "t")(lambda t: None)),
                           ["--widths", "3,x"], catch_exceptions=False)


@pytest.mark.parametrize("cls", [TrainConfig, DataConfig, ModelConfig, PruneConfig])
def test_every_field_of_the_run_configs_has_help_for_its_option(cls):
    # fields marked cli=False are not typed in as such (user code identity, --model-arg)
    assert [f.name for f in dataclasses.fields(cls)
            if not f.metadata.get("help") and f.metadata.get("cli", True)] == []
