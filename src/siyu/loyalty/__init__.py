"""Loyalty wiring: orders and actions from event ingestion drive coupons, tiers and points."""
