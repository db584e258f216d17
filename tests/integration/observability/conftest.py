"""Fixtures of the observability tests (see observability_support)."""

from observability_support import observed, observed_app

__all__ = ["observed", "observed_app"]
