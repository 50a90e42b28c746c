"""How current the mirror is, per merchant: watermark, files, rows, bytes, and the lag behind
the state store (``siyu analytics status`` and ``GET /api/v1/analytics/mirror``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from siyu.events.models import Event


@dataclass(frozen=True)
class MirrorStatus:
    merchant_id: str
    watermark: datetime | None
    """``received_at`` of the newest mirrored event."""
    synced_at: datetime | None
    files: int
    bytes: int
    events: int
    members: int
    """Rows of the latest member snapshot."""
    snapshot_days: int
    transitions: int
    pending_events: int
    """Events in the state store received after the watermark (not mirrored yet)."""
    lag_seconds: float
    """How far the watermark is behind the newest event received (0: caught up)."""
    facts: int = 0
    """Rows of ``member_months`` (:mod:`siyu.analytics.mirror_facts`; 0: the merchant has none)."""
    facts_through: datetime | None = None
    """The facts cover events received up to here."""


def mirror_status(session: Session, root: Path, merchant_id: str) -> MirrorStatus:
    """One merchant's status (a merchant not mirrored yet: zeros and ``None``)."""
    from siyu.analytics import mirror_store as store  # pyarrow: imported when first asked

    try:
        ms = store.load_state(root).merchants.get(merchant_id)
    except store.LayoutOutdated:  # an older layout: not usable until the next sync rebuilds it
        ms = None
    watermark = datetime.fromisoformat(ms.events_watermark) if ms and ms.events_watermark else None
    newer = select(func.count(), func.max(Event.received_at)).where(Event.merchant_id == merchant_id)
    if watermark is not None:
        newer = newer.where(Event.received_at > watermark)
    pending, newest = session.execute(newer).one()
    lag = (newest - watermark).total_seconds() if newest is not None and watermark is not None else 0.0
    if ms is None:
        return MirrorStatus(merchant_id, None, None, 0, 0, 0, 0, 0, 0, int(pending), lag)
    snapshots = sorted(ms.files["members"])
    latest = max(snapshots, key=lambda p: p.split("snapshot_date=")[1]) if snapshots else None
    return MirrorStatus(
        merchant_id=merchant_id,
        watermark=watermark,
        synced_at=datetime.fromisoformat(ms.synced_at) if ms.synced_at else None,
        files=sum(len(ms.files[t]) for t in store.TABLES),
        bytes=sum(ms.bytes(t) for t in store.TABLES),
        events=ms.rows("events"),
        members=int(ms.files["members"][latest]["rows"]) if latest else 0,
        snapshot_days=len(snapshots),
        transitions=ms.rows("stage_transitions"),
        pending_events=int(pending),
        lag_seconds=max(lag, 0.0),
        facts=ms.rows("member_months"),
        facts_through=datetime.fromisoformat(ms.facts_through) if ms.facts_through else None,
    )
