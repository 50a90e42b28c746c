"""The web console (NiceGUI), mounted on the API's FastAPI app at ``/console``."""

from __future__ import annotations

from fastapi import FastAPI

from siyu.config import Settings
from siyu.db import Database


def mount_console(app: FastAPI, *, settings: Settings, db: Database) -> None:
    """Mount the console pages on ``app`` (filled in by the console shell)."""
    raise NotImplementedError("the console shell is being built")
