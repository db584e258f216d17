"""orjson answers: datetimes, UUIDs and large payloads serialized without pydantic on the hot path."""

from typing import Any

import orjson
from starlette.responses import JSONResponse


class ORJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z)


class ProblemJSON(ORJSON):
    media_type = "application/problem+json"
