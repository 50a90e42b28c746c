"""The payment-page view, put on the member's timeline after the decision.

The decision resolves the payer with the ingestion path's identity resolver (the same
:func:`siyu.members.service.resolve_batch` events use) and writes an outbox item in its own
transaction; this handler then ingests the ``payment_page_view`` event (idempotent by its
``event_id``), so the stage, loyalty and trigger listeners that ingestion runs are off the
page's hot path. The payer's identities travel sealed (encrypted with the merchant's key
derivation), never in clear in the outbox.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.db import Database
from siyu.events import service as events
from siyu.kit.clock import utcnow
from siyu.kit.pii import IdentifierVault
from siyu.outbox import facade as outbox

PAGE_VIEW = "decisions.page_view"
_lock = threading.Lock()
_vault: IdentifierVault | None = None


def use_vault(vault: IdentifierVault) -> None:
    """The key the app seals payers' identities with (unset: derived from the settings, as
    ``siyu worker`` does)."""
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


def enqueue_page_view(
    session: Session,
    vault: IdentifierVault,
    merchant_id: str,
    event: Mapping[str, Any],
    identities: Mapping[str, str],
    *,
    now: datetime,
) -> None:
    sealed = vault.seal(merchant_id, PAGE_VIEW, json.dumps(dict(identities), sort_keys=True))
    payload = {**event, "identities": sealed}
    outbox.enqueue(session, merchant_id, PAGE_VIEW, payload, key=f"page_view:{event['event_id']}", now=now)


@outbox.handles(PAGE_VIEW)
def record_page_view(db: Database, item: outbox.OutboxItemView) -> None:
    vault = current_vault()
    payload = dict(item.payload)
    payload["identities"] = json.loads(vault.unseal(item.merchant_id, PAGE_VIEW, payload["identities"]))
    with db.unit_of_work() as session:
        (verdict,) = events.ingest(session, vault, item.merchant_id, [payload], now=utcnow())
    if verdict.status == "rejected":
        raise outbox.Permanent(verdict.reason or "rejected")
