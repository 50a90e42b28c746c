"""`siyu tiers …`: parse, call the tiers facade, show progress."""

from __future__ import annotations

import typer

tiers_app = typer.Typer(help="Tiers.", no_args_is_help=True)
