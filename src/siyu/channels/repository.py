"""Every query of the channels module; all filtered by ``merchant_id``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.channels.adapters import Sent
from siyu.channels.models import ChannelConfig, ChannelDelivery
from siyu.kit.ids import IdKind, new_id
from siyu.kit.pagination import PageRequest, paginate


def get_config(session: Session, merchant_id: str, channel: str) -> ChannelConfig | None:
    return session.get(ChannelConfig, (merchant_id, channel))


def configs_of(session: Session, merchant_id: str) -> list[ChannelConfig]:
    return list(
        session.execute(
            select(ChannelConfig)
            .where(ChannelConfig.merchant_id == merchant_id)
            .order_by(ChannelConfig.channel)
        ).scalars()
    )


def delete_config(session: Session, merchant_id: str, channel: str) -> bool:
    result = session.execute(
        delete(ChannelConfig).where(
            ChannelConfig.merchant_id == merchant_id, ChannelConfig.channel == channel
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def log_delivery(
    session: Session,
    merchant_id: str,
    *,
    key: str,
    channel: str,
    member_id: str | None,
    sent: Sent,
    at: datetime,
) -> str:
    row = ChannelDelivery(
        merchant_id=merchant_id,
        id=new_id(IdKind.CHANNEL_DELIVERY),
        key=key[:255],
        channel=channel[:32],
        member_id=member_id,
        attempted_at=at,
        ok=sent.result.ok,
        permanent=sent.result.permanent,
        recorded_only=sent.recorded_only,
        status_code=sent.status_code,
        provider_code=_cut(sent.provider_code, 128),
        provider_ref=_cut(sent.result.provider_ref, 128),
        detail=sent.result.detail[:500],
    )
    session.add(row)
    return row.id


def _cut(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def deliveries(
    session: Session, merchant_id: str, *, channel: str | None, key: str | None, page: PageRequest
) -> list[ChannelDelivery]:
    statement = select(ChannelDelivery).where(ChannelDelivery.merchant_id == merchant_id)
    if channel is not None:
        statement = statement.where(ChannelDelivery.channel == channel)
    if key is not None:
        statement = statement.where(ChannelDelivery.key == key)
    return list(session.execute(paginate(statement, ChannelDelivery.id, page)).scalars())
