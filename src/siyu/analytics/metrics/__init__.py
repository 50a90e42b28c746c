"""Metric definitions: each one SQLAlchemy Core function over :class:`siyu.analytics.relations.Relations`
and a :class:`siyu.analytics.scope.Scope` (so it runs alike on SQLite, PostgreSQL and DuckDB),
plus a pure function turning its rows into a frozen dataclass. docs/metrics.md defines each.

``customer``, ``scale``, ``active``: the C, C and A of C-CARE; ``worth``, ``efficiency``,
``cohorts``, ``funnels``: the R, E and the cross-cutting views.
"""
