"""Entry point: the click group and error handling (user errors: message, no traceback)."""

from __future__ import annotations

import sys

import click

from lprcausal import __version__
from lprcausal.errors import LprError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lprcausal")
def cli() -> None:
    """Causal-intervention analysis of neural-network pruning.

    Find masks with one set of hyperparameters (H_find), evaluate them with another
    (H_eval), read their layerwise pruning ratios (LPR) and transplant LPR between runs.
    Every run is stored under a hash of its configuration in --store (default ./runs),
    so asking for the same run twice reuses it.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a user error prints one paragraph and exits with status 2."""
    try:
        cli.main(args=argv, prog_name="lprcausal", standalone_mode=False)
    except LprError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
