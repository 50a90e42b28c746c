"""`siyu coupons …`: parse, call the coupons facade, show progress."""

from __future__ import annotations

import typer

coupons_app = typer.Typer(help="Coupons.", no_args_is_help=True)
