"""Members (one person per merchant) and identity resolution (SPEC §2)."""
