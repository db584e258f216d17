-- W3C trace context a job was enqueued under ({"traceparent": ..., "tracestate": ...}), handed to
-- the worker that leases it and sent with push deliveries. NULL when the producer sent none.
ALTER TABLE job ADD COLUMN trace_context jsonb
    CHECK (trace_context IS NULL OR (jsonb_typeof(trace_context) = 'object' AND trace_context ? 'traceparent'));
