"""The outbox handler of ``webhook.event``: a generic signed webhook to the merchant's own system.

Any module notifies the merchant's system by enqueueing, in the transaction of the change::

    outbox.enqueue(session, merchant_id, "webhook.event", {"event": "coupon.issued", "data": {...}},
                   key="coupon-issued:cpn_…", now=now)

The body POSTed is ``{"id": key, "event": …, "merchant_id": …, "created_at": …, "data": …}`` (the
same bytes on every retry), signed as docs/webhooks.md describes, with ``Idempotency-Key: key``.
"""

from __future__ import annotations

from siyu.channels import service
from siyu.channels.facade import WEBHOOK_EVENT, raise_for_result
from siyu.db import Database
from siyu.kit.clock import utcnow
from siyu.outbox.facade import OutboxItemView, Permanent, Retry, handles


@handles(WEBHOOK_EVENT)
def deliver_webhook_event(db: Database, item: OutboxItemView) -> None:
    event = item.payload.get("event")
    if not isinstance(event, str) or not event or len(event) > 128:
        raise Permanent("a webhook.event payload needs an event name (1–128 characters)")
    sent = service.send_event(
        db,
        item.merchant_id,
        key=item.key,
        event=event,
        data=item.payload.get("data"),
        created_at=item.created_at,
        now=utcnow(),
    )
    if sent.retry_after is not None and not sent.result.ok:
        raise Retry(sent.result.detail, after=sent.retry_after)
    raise_for_result(sent.result)
