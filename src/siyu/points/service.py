"""Points rules (no HTTP, never commits)."""

from __future__ import annotations
