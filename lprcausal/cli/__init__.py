"""The ``lprcausal`` command line: the group (:mod:`~lprcausal.cli.app`), then the
modules whose commands attach to it (each imports the group; the group imports none)."""

from lprcausal.cli import (  # noqa: F401  (commands attach to cli)
    figures_command,
    find_eval,
    lpr,
    masks,
    runs,
    stats_command,
    study,
    transplant,
)
from lprcausal.cli.app import cli, main

__all__ = ["cli", "main"]
