"""Analytics: the columnar mirror (Parquet + DuckDB), metric definitions and the C-CARE dashboard."""
