"""Shared building blocks: money, clock, ids, pagination, problems, idempotency, crypto."""
