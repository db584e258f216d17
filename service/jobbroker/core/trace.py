"""W3C trace context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
a producer sends are kept with its job, as `{"traceparent": ..., "tracestate": ...}`."""

from __future__ import annotations

import re

# version "-" trace-id "-" parent-id "-" flags; a later version may append fields after a "-".
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?$")
TRACEPARENT_PATTERN = _TRACEPARENT.pattern
# The spec lets a tracestate be cut to 512 characters when it is passed on.
TRACESTATE_MAX = 512
TraceContext = dict[str, str]


def valid_traceparent(value: str) -> bool:
    """A traceparent a receiver may continue: version not ff, version 00 exactly 55 characters,
    trace and parent ids not all zeros."""
    match = _TRACEPARENT.match(value)
    if match is None:
        return False
    version, trace_id, parent_id, _, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return False
    return trace_id != "0" * 32 and parent_id != "0" * 16


def from_headers(traceparent: str | None, tracestate: str | None) -> TraceContext | None:
    """The context of an enqueue's headers. An invalid traceparent is ignored, as the spec asks of a
    receiver (the job then has no context); a tracestate counts only beside a valid traceparent."""
    if traceparent is None:
        return None
    traceparent = traceparent.strip()
    if not valid_traceparent(traceparent):
        return None
    context = {"traceparent": traceparent}
    tracestate = (tracestate or "").strip()
    if tracestate and len(tracestate) <= TRACESTATE_MAX:
        context["tracestate"] = tracestate
    return context
