"""The ledger writer: entries and lots of one batch for locked accounts, in a handful of statements.

The caller has locked the accounts (:func:`siyu.points.repository.lock_accounts`) and passes
their balances in. Credits add a lot for what is left after paying a negative balance; debits
take from lots first-expiring-first; :meth:`LedgerWriter.apply` writes the balance deltas (one
relative statement), the lot takes (one conditional statement: never below zero), the new lots
and the entries.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from siyu.kit.ids import IdKind, new_id
from siyu.points import repository as repo
from siyu.points.models import EntryKind


class LedgerWriter:
    """Entries and lots of one batch for locked accounts, applied in a handful of statements."""

    def __init__(self, session: Session, merchant_id: str, balances: dict[str, int], now: datetime) -> None:
        self.session = session
        self.merchant_id = merchant_id
        self.start = dict(balances)
        self.balances = balances
        self.now = now
        self.entries: list[dict[str, Any]] = []
        self.lots: list[dict[str, Any]] = []
        self.takes: list[tuple[str, int]] = []
        self._open: dict[str, list[list[Any]]] = {}

    def entry(
        self, member_id: str, kind: EntryKind, points: int, *, key: str, at: datetime, **extra: Any
    ) -> dict[str, Any]:
        self.balances[member_id] = self.balances[member_id] + points
        row = {
            "merchant_id": self.merchant_id,
            "id": new_id(IdKind.POINTS_ENTRY),
            "member_id": member_id,
            "kind": kind.value,
            "points": points,
            "balance_after": self.balances[member_id],
            "shortfall": 0,
            "key": key[:300],
            "reason": "",
            "source": "",
            "order_id": None,
            "amount_fen": None,
            "action_type": None,
            "at": at,
            "recorded_at": self.now,
        }
        row.update(extra)
        row["reason"] = str(row["reason"])[:200]
        row["source"] = str(row["source"])[:200]
        self.entries.append(row)
        return row

    def credit(
        self,
        member_id: str,
        kind: EntryKind,
        points: int,
        *,
        key: str,
        at: datetime,
        expires_at: datetime | None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add points; what is left after paying a negative balance becomes a lot."""
        before = self.balances[member_id]
        row = self.entry(member_id, kind, points, key=key, at=at, **extra)
        into_lot = min(points, max(0, before + points))
        if into_lot > 0:
            lot = {
                "merchant_id": self.merchant_id,
                "id": new_id(IdKind.POINTS_LOT),
                "member_id": member_id,
                "entry_id": row["id"],
                "points": points,
                "remaining": into_lot,
                "earned_at": at,
                "expires_at": expires_at,
            }
            self.lots.append(lot)
            self._open.setdefault(member_id, []).append([lot["id"], into_lot, expires_at, True])
        return row

    def debit(self, member_id: str, wanted: int, *, allow_negative: bool) -> int:
        """Take up to ``wanted`` from the balance and lots; the points really taken."""
        before = self.balances[member_id]
        taken = wanted if allow_negative else min(wanted, max(before, 0))
        self.consume(member_id, min(taken, max(before, 0)))
        return taken

    def consume(self, member_id: str, points: int) -> None:
        if points <= 0:
            return
        if member_id not in self._open:
            self._open[member_id] = [
                [i, r, e, False] for i, r, e in repo.open_lots(self.session, self.merchant_id, member_id)
            ]
        lots = sorted(self._open[member_id], key=lambda lot: (lot[2] is None, lot[2] or self.now, lot[0]))
        left = points
        for lot in lots:
            if left == 0:
                break
            n = min(lot[1], left)
            if n <= 0:
                continue
            lot[1] -= n
            left -= n
            if lot[3]:  # a lot of this batch, not inserted yet
                next(x for x in self.lots if x["id"] == lot[0])["remaining"] -= n
            else:
                self.takes.append((lot[0], n))
        if left:
            raise AssertionError(f"lots of {member_id} hold {points - left} points, the balance says more")

    def balance_written(self, member_id: str) -> None:
        """The balance change was already written (a conditional spend): :meth:`apply` skips it."""
        self.start[member_id] = self.balances[member_id]

    def apply(self) -> None:
        deltas = {m: self.balances[m] - self.start[m] for m in self.balances}
        repo.add_to_balances(self.session, self.merchant_id, deltas, self.now)
        merged: dict[str, int] = defaultdict(int)
        for lot_id, n in self.takes:
            merged[lot_id] += n
        changed = repo.take_from_lots(self.session, self.merchant_id, sorted(merged.items()))
        if changed != len([n for n in merged.values() if n > 0]):
            raise AssertionError("a lot would have gone below zero")
        repo.add_lots(self.session, [lot for lot in self.lots if lot["remaining"] > 0])
        repo.add_entries(self.session, self.entries)
