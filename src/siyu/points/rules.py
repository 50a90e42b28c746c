"""The arithmetic of points, in integers only (no HTTP, no database).

Earn rule::

    order points  = floor(amount_fen × points_per_yuan × multiplier_bp / (100 × 10 000))
    action points = floor(rule.points × multiplier_bp / 10 000)

Refund reversal: after refunds totalling ``R`` of an order paid ``P`` that earned ``E``, the
points taken back in total are ``min(E, round_half_up_div(E × min(R, P), P))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from siyu.kit.money import BASIS_POINTS, round_half_up_div
from siyu.points.models import ExpiryPolicy

FEN_PER_YUAN = 100


@dataclass(frozen=True, slots=True)
class Settings:
    """The merchant's points settings (the defaults when none were saved)."""

    points_per_yuan: int = 1
    expiry_policy: ExpiryPolicy = ExpiryPolicy.END_OF_NEXT_YEAR
    expiry_days: int | None = None
    allow_negative: bool = False


def order_points(amount_fen: int, points_per_yuan: int, multiplier_bp: int) -> int:
    """Points for a paid amount, rounded down to whole points (integers only)."""
    if amount_fen <= 0 or points_per_yuan <= 0 or multiplier_bp <= 0:
        return 0
    return amount_fen * points_per_yuan * multiplier_bp // (FEN_PER_YUAN * BASIS_POINTS)


def action_points(rule_points: int, multiplier_bp: int) -> int:
    if rule_points <= 0 or multiplier_bp <= 0:
        return 0
    return rule_points * multiplier_bp // BASIS_POINTS


def reversal_target(earned: int, paid_fen: int, refunded_fen: int) -> int:
    """Points to have taken back in total once ``refunded_fen`` of ``paid_fen`` is refunded."""
    if earned <= 0 or paid_fen <= 0:
        return 0
    return min(earned, round_half_up_div(earned * min(max(refunded_fen, 0), paid_fen), paid_fen))


def expiry_of(earned_at: datetime, settings: Settings, zone: ZoneInfo) -> datetime | None:
    """When a lot earned at ``earned_at`` expires under the merchant's policy."""
    if settings.expiry_policy is ExpiryPolicy.DAYS and settings.expiry_days:
        return earned_at + timedelta(days=settings.expiry_days)
    if settings.expiry_policy is ExpiryPolicy.END_OF_NEXT_YEAR:
        year = earned_at.astimezone(zone).year
        return datetime(year + 2, 1, 1, tzinfo=zone).astimezone(earned_at.tzinfo)
    return None


def local_day_bounds(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    day = moment.astimezone(zone).date()
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    return start, end
