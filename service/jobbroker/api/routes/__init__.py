"""One module per resource."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute


def api_routes(app: Any) -> list[APIRoute]:
    """Every APIRoute of `app`, those of included routers too (FastAPI >= 0.116 keeps them apart)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.116 lists its routes flat
        return [r for r in app.routes if isinstance(r, APIRoute)]
    found = [c.original_route for c in iter_route_contexts(app.routes)]
    return [r for r in found if isinstance(r, APIRoute)]
