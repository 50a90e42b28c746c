"""The points (积分) ledger, lots with expiry, earn rules, and the points mall (积分商城)."""

from __future__ import annotations
