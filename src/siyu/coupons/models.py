"""Coupon templates (商家券), issued coupons, codes, claim counters and redemptions (核销)."""

from __future__ import annotations
