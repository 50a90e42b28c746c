"""Tenancy and access (SPEC §1): providers, merchants, stores, staff, API keys and grants."""
