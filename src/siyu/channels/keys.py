"""The key that seals channel secrets in this process.

Channel secrets are sealed with :class:`siyu.kit.pii.IdentifierVault` (a key derived from the
instance secret). Outbox handlers receive only the database, so the vault of the process is kept
here: :func:`siyu.app.create_app` and ``siyu worker`` install theirs; anything else (a script)
derives it from the settings (``SIYU_SECRET_KEY`` or ``DATA_DIR/secret_key``) on first use.
"""

from __future__ import annotations

import threading

from siyu.kit.pii import IdentifierVault

_lock = threading.Lock()
_vault: IdentifierVault | None = None


def use_vault(vault: IdentifierVault) -> None:
    global _vault
    with _lock:
        _vault = vault


def current_vault() -> IdentifierVault:
    global _vault
    with _lock:
        if _vault is None:
            from siyu.config import load_settings

            _vault = IdentifierVault(load_settings().resolved_secret_key())
        return _vault
