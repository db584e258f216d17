"""Fixtures of the auth tests: an app with API keys configured (see auth_support)."""

from auth_support import secured, secured_app

__all__ = ["secured", "secured_app"]
