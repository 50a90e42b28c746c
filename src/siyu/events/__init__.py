"""Events: idempotent ingestion (one and batch), validated built-in types, member rollups."""
