"""Metric definitions (one Core statement per metric over Relations); see docs/metrics.md."""
