"""The web console (NiceGUI), mounted on the API's FastAPI app at ``/console``.

Pages call facades only (never repositories), each in one unit of work. NiceGUI keeps one page
registry per process, so :func:`mount_console` registers the pages once and points them at this
instance's database through :mod:`siyu.console.state`.
"""

from __future__ import annotations

from fastapi import FastAPI

from siyu.config import Settings
from siyu.db import Database
from siyu.kit.pii import IdentifierVault

MOUNT_PATH = "/console"
_mounted = False


def mount_console(app: FastAPI, *, settings: Settings, db: Database) -> None:
    """Serve the console under ``/console`` of ``app`` (once per process)."""
    global _mounted
    from nicegui import ui

    from siyu.console.pages import register_pages
    from siyu.console.state import STATE

    STATE.db = db
    STATE.analytics_dir = settings.resolved_analytics_dir
    vault = getattr(app.state, "vault", None)  # the app's own, which create_app made first
    STATE.vault = (
        vault if isinstance(vault, IdentifierVault) else IdentifierVault(settings.resolved_secret_key())
    )
    if _mounted:
        return
    register_pages()
    ui.run_with(
        app,
        mount_path=MOUNT_PATH,
        storage_secret=settings.resolved_secret_key(),
        title="Siyu 私域",
        language="zh-CN",
        show_welcome_message=False,
        favicon="🏪",
    )
    _mounted = True
