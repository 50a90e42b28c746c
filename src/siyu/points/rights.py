"""PIPL hooks of points: what an export contains, what an erasure removes.

Export: the balance, the lots, every ledger entry, mall exchanges and goods vouchers.
Erasure: the member's ledger, lots, account and exchange counters are deleted (their reasons may
hold free text about the person, and the points die with the membership); mall exchanges and
vouchers stay as the merchant's records of goods given, linked to a member id that now belongs
to no one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from siyu.kit.clock import iso_or_none
from siyu.members.rights import on_erase, on_export
from siyu.points import repository as repo


def _export(session: Session, merchant_id: str, member_id: str) -> dict[str, Any]:
    return {
        "points": {
            "balance": repo.balance_of(session, merchant_id, member_id),
            "lots": [
                {
                    "id": lot.id,
                    "points": lot.points,
                    "remaining": lot.remaining,
                    "earned_at": iso_or_none(lot.earned_at),
                    "expires_at": iso_or_none(lot.expires_at),
                }
                for lot in repo.lots_of(session, merchant_id, member_id)
            ],
            "entries": [
                {
                    "id": e.id,
                    "kind": e.kind,
                    "points": e.points,
                    "balance_after": e.balance_after,
                    "shortfall": e.shortfall,
                    "reason": e.reason,
                    "order_id": e.order_id,
                    "at": iso_or_none(e.at),
                }
                for e in repo.all_entries(session, merchant_id, member_id)
            ],
            "mall_exchanges": [
                {
                    "id": x.id,
                    "item_id": x.item_id,
                    "points": x.points,
                    "coupon_code": x.coupon_code,
                    "voucher_code": x.voucher_code,
                    "at": iso_or_none(x.at),
                }
                for x in repo.exchanges_of(session, merchant_id, member_id)
            ],
            "goods_vouchers": [
                {
                    "code": v.code,
                    "item_name": v.item_name,
                    "status": v.status,
                    "issued_at": iso_or_none(v.issued_at),
                }
                for v in repo.all_vouchers(session, merchant_id, member_id)
            ],
        }
    }


def _erase(session: Session, merchant_id: str, member_id: str) -> None:
    repo.delete_member_rows(session, merchant_id, member_id)
    session.flush()


on_export(_export)
on_erase(_erase)
