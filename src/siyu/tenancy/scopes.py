"""API-key and grant scopes.

A key carries a set of scopes; a request needs the scope its endpoint names. A provider acting
for a merchant holds the intersection of its key's scopes and the merchant's grant, so a grant
can only narrow what a provider may do. Later modules add their scopes here.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    """One permission an API key or a provider grant can carry."""

    MERCHANT_READ = "merchant:read"
    MERCHANT_WRITE = "merchant:write"
    STORES_READ = "stores:read"
    STORES_WRITE = "stores:write"
    STAFF_READ = "staff:read"
    STAFF_WRITE = "staff:write"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    GRANTS_READ = "grants:read"
    GRANTS_WRITE = "grants:write"
    EVENTS_WRITE = "events:write"
    """Send events for the merchant's members."""
    IMPORTS_WRITE = "imports:write"
    """Upload member and order files (bulk: creates members) and read their reports, which hold
    the rejected rows as uploaded (identifiers included)."""
    MEMBERS_READ = "members:read"
    MEMBERS_EXPORT = "members:export"
    """Export one member's full data, identifiers decrypted (PIPL access/portability)."""
    MEMBERS_ERASE = "members:erase"
    """Erase a member (PIPL deletion)."""
    REACHABILITY_READ = "reachability:read"
    """Read members' reachability, consent records and the operable summary (no identifiers)."""
    REACHABILITY_WRITE = "reachability:write"
    """Record consents (a legal act of its own) and assign shopping guides."""
    COUPONS_READ = "coupons:read"
    """Read coupon templates, members' coupons and redemptions."""
    COUPONS_WRITE = "coupons:write"
    """Create and change coupon templates, issue coupons, redeem and reverse them (POS, guides)."""
    POINTS_READ = "points:read"
    """Read points balances, ledgers, earn rules, the mall and the liability report."""
    POINTS_WRITE = "points:write"
    """Earn rules, manual adjustments, spends and mall exchanges, mall items."""
    TIERS_READ = "tiers:read"
    """Read the tier ladder, members' tiers and history, joint-membership mappings."""
    TIERS_WRITE = "tiers:write"
    """Change the ladder and settings, record paid memberships, link joint memberships, run the jobs."""
    OUTBOX_READ = "outbox:read"
    """Read the outbox: items by status, one item with its attempts (the delivery log)."""
    OUTBOX_WRITE = "outbox:write"
    """Requeue a dead outbox item."""
    CHANNELS_READ = "channels:read"
    """Read channel configurations (never their secrets) and the channel delivery log."""
    CHANNELS_WRITE = "channels:write"
    """Configure channels: the webhook URL and its signing secret, the Alipay mini-program keys."""
    SEGMENTS_READ = "segments:read"
    """Read segments and snapshots, preview rules and test membership (member ids and stages only)."""
    SEGMENTS_WRITE = "segments:write"
    """Create, change and delete segments; freeze snapshots of their members."""
    CAMPAIGNS_READ = "campaigns:read"
    """Read campaigns, their runs, and members' groups and treatments in them."""
    CAMPAIGNS_WRITE = "campaigns:write"
    """Create and edit draft campaigns; schedule, start, pause, resume, cancel and complete them."""
    DECISIONS_READ = "decisions:read"
    """Read payment-success decisions and the campaigns' page conditions."""
    DECISIONS_WRITE = "decisions:write"
    """Ask for the payment-success-page offer (resolves or creates the payer), accept or decline
    it (issues the coupon), set a campaign's page conditions."""
    MESSAGES_READ = "messages:read"
    """Read message templates, fatigue settings, messages and guide tasks."""
    MESSAGES_WRITE = "messages:write"
    """Manage message templates and fatigue settings, send messages, complete guide tasks."""
    MODELS_READ = "models:read"
    """Read member-model fits (parameters, AUC, status) and members' model scores."""
    MODELS_WRITE = "models:write"
    """Request a refit of the member models (CLV, churn risk, high-potential)."""
    ANALYTICS_READ = "analytics:read"
    """Read the C-CARE dashboard: aggregate metrics over members, events and messages (no
    identifiers, no member ids)."""
    MERCHANTS_CREATE = "merchants:create"
    """Provider keys only: onboard a new merchant (which grants the provider access to it)."""


PROVIDER_ONLY_SCOPES = frozenset({Scope.MERCHANTS_CREATE})
MERCHANT_SCOPES = frozenset(Scope) - PROVIDER_ONLY_SCOPES
"""Every scope that makes sense on a merchant's own key."""

GRANTABLE_SCOPES = MERCHANT_SCOPES - {Scope.GRANTS_WRITE, Scope.KEYS_WRITE}
"""What a merchant can delegate: never the power to grant others or mint its own keys."""

ALL_PROVIDER_SCOPES = frozenset(Scope)


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Strings → scopes; raises ``ValueError`` naming the unknown one."""
    result = set()
    for value in values:
        try:
            result.add(Scope(value))
        except ValueError:
            known = ", ".join(sorted(s.value for s in Scope))
            raise ValueError(f"unknown scope {value!r}; known scopes: {known}") from None
    return frozenset(result)


def known_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """The stored scopes this version knows; unknown ones (from a newer version) are ignored."""
    known = {s.value for s in Scope}
    return frozenset(Scope(v) for v in values if v in known)


def sorted_scopes(scopes: Iterable[Scope | str]) -> list[str]:
    """Stable order for storage and display."""
    return sorted({str(s) for s in scopes})


_READ_SCOPES = frozenset(s for s in MERCHANT_SCOPES if s.value.endswith(":read"))

ROLE_SCOPES: dict[str, frozenset[Scope]] = {
    "owner": MERCHANT_SCOPES,
    "operator": MERCHANT_SCOPES
    - {Scope.KEYS_WRITE, Scope.GRANTS_WRITE, Scope.STAFF_WRITE, Scope.MERCHANT_WRITE, Scope.MEMBERS_ERASE},
    "analyst": _READ_SCOPES,
    "guide": frozenset(
        {
            Scope.MEMBERS_READ,
            Scope.EVENTS_WRITE,
            Scope.REACHABILITY_READ,
            Scope.COUPONS_READ,
            Scope.POINTS_READ,
            Scope.TIERS_READ,
            Scope.STORES_READ,
            Scope.MESSAGES_READ,
        }
    ),
}
"""What each staff role may do, in the API's own scopes: the console checks a staff member's
role against the scope the equivalent API endpoint requires (``staff_may``). Owners hold every
merchant scope; operators run the business but do not manage access, merchant settings or
erasure; analysts only read; guides look members up and tag them."""


def staff_may(role: str, scope: Scope) -> bool:
    """May a staff member of ``role`` do what the API guards with ``scope``?"""
    return scope in ROLE_SCOPES.get(role, frozenset())
