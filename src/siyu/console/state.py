"""Where console pages find the instance's database and settings.

NiceGUI pages are registered globally (one NiceGUI app per process), while Siyu's FastAPI app is
built by a factory; :func:`siyu.console.mount_console` (or a test) fills this holder before any
page runs, and pages read it through :func:`database`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from siyu.db import Database
from siyu.kit.pii import IdentifierVault


@dataclass
class ConsoleState:
    db: Database | None = None
    vault: IdentifierVault | None = None
    """Decrypts identifiers for a member's PIPL export (the app's own vault)."""
    analytics_dir: Path | None = None
    """The analytics mirror's root; ``None``: dashboards read the state store only."""


STATE = ConsoleState()


def database() -> Database:
    if STATE.db is None:  # pragma: no cover - mount_console always sets it
        raise RuntimeError("the console is not mounted: no database")
    return STATE.db


def vault() -> IdentifierVault:
    if STATE.vault is None:  # pragma: no cover - mount_console always sets it
        raise RuntimeError("the console is not mounted: no identifier vault")
    return STATE.vault
