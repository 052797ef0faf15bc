"""The ``lprcausal`` command line."""

from lprcausal.cli.app import cli, main

__all__ = ["cli", "main"]
