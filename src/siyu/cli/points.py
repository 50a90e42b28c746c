"""`siyu points …`: parse, call the points facade, show progress."""

from __future__ import annotations

import typer

points_app = typer.Typer(help="Points.", no_args_is_help=True)
