"""Who is calling: the caller's API key id and scopes, so a client (the console) can offer only
what the key may do."""

from __future__ import annotations

from fastapi import APIRouter, Request, Security
from fastapi.responses import Response

from jobbroker.api.auth import API_KEY, bearer, keyring
from jobbroker.api.problems import responses
from jobbroker.api.responses import ORJSON
from jobbroker.api.schemas import WhoAmI
from jobbroker.keys import Scope

# The bearer scheme with no scope: the edge has already refused a missing or unknown key.
router = APIRouter(tags=["auth"], dependencies=[Security(bearer)], responses=responses(401))


@router.get("/v1/whoami", response_model=WhoAmI, summary="Get the calling API key's scopes")
async def get_current_key(request: Request) -> Response:
    """The calling key's public id (the start of its hash, never the key) and its scopes. Any valid
    key may ask. With authentication off every caller holds every scope."""
    if not keyring(request.app).enabled:
        return ORJSON({"authentication": False, "key_id": None, "scopes": list(Scope)})
    key = request.scope[API_KEY]
    return ORJSON({"authentication": True, "key_id": key.id, "scopes": [s for s in Scope if s in key.scopes]})
