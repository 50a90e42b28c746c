"""Membership tiers (会员等级), tier history, paid membership and joint membership (联合会员)."""

from __future__ import annotations
