"""Siyu (私域): an operating system for a merchant's user assets, along the C-CARE model."""

__version__ = "0.1.0"
