-- The functions applications call in their own transactions: jobbroker.enqueue, jobbroker.ack and
-- jobbroker.nack. Each runs the very statement the store runs for that transition over HTTP
-- (store/sql/job.sql: job_enqueue, job_get_by_idempotency_keys, job_ack, job_nack), which the
-- migration runner (store/functions.py) writes into this script where its name stands in double
-- braces, and the values of its binds where its name and .args do: one implementation of each
-- transition.
--
-- Applied after the versioned migrations whenever the script as written changes (a statement
-- edited in job.sql included): CREATE OR REPLACE keeps each function's grants. It runs with
-- search_path = <schema>, pg_catalog, pg_temp, and every function keeps that path (SET
-- search_path FROM CURRENT), so none depends on its caller's. A changed signature is a new
-- function: drop the old one here first (grants then have to be given again, see `jobbroker grants`).
-- job_defaults() (the broker's job settings as JSON) is written by the runner next to this file.

-- Set-based copies of the store's statements that an earlier version of this script made.
DROP FUNCTION IF EXISTS job_enqueue_many(text, jsonb, jsonb);
DROP FUNCTION IF EXISTS job_insert_many(text, jsonb, jsonb);
DROP FUNCTION IF EXISTS job_ack_many(bigint[], uuid[], jsonb[]);
DROP FUNCTION IF EXISTS job_nack_many(bigint[], uuid[], jsonb[], boolean[], double precision[], integer);

-- Raise an invalid argument of a function applications call: SQLSTATE 22023
-- (invalid_parameter_value), the message naming the function and the argument.
CREATE OR REPLACE FUNCTION job_invalid(fn text, argument text, message text)
RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION 'jobbroker.%: % %', fn, argument, message USING ERRCODE = 'invalid_parameter_value';
END
$$;

-- A number option: absent or JSON null is NULL; anything else must be a number in [lo, hi]
-- (an integer when integral).
CREATE OR REPLACE FUNCTION job_option_number(options jsonb, name text, lo numeric, hi numeric, integral boolean)
RETURNS numeric LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
DECLARE
    value jsonb := options -> name;
    n numeric;
BEGIN
    IF value IS NULL OR jsonb_typeof(value) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(value) <> 'number' THEN
        PERFORM job_invalid('enqueue', format('option %s', name), format('must be a number, not %s', value));
    END IF;
    n := CAST(value AS numeric);
    IF integral AND n <> trunc(n) OR n < lo OR n > hi THEN
        PERFORM job_invalid('enqueue', format('option %s', name),
            format('must be %s between %s and %s, not %s', CASE WHEN integral THEN 'an integer' ELSE 'a number' END,
                   lo, hi, value));
    END IF;
    RETURN n;
END
$$;

-- A text option: absent or JSON null is NULL; anything else must be a string of 1 to max_length characters.
CREATE OR REPLACE FUNCTION job_option_text(options jsonb, name text, max_length integer)
RETURNS text LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
DECLARE
    value jsonb := options -> name;
BEGIN
    IF value IS NULL OR jsonb_typeof(value) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(value) <> 'string' OR length(value #>> '{}') NOT BETWEEN 1 AND max_length
       OR value #>> '{}' ~ '[\x01-\x1f\x7f]' THEN
        PERFORM job_invalid('enqueue', format('option %s', name),
                            format('must be a string of 1 to %s characters, none a control character', max_length));
    END IF;
    RETURN value #>> '{}';
END
$$;

-- W3C trace context among jobbroker.enqueue's options: `trace_context` {traceparent, tracestate?},
-- or `traceparent` (and `tracestate`) themselves; NULL when neither is given. Checked as the HTTP
-- body's trace_context is (core/trace.py): a malformed one raises 22023 naming the option.
CREATE OR REPLACE FUNCTION job_trace_context(options jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
DECLARE
    trace jsonb := CASE
        WHEN coalesce(jsonb_typeof(options -> 'trace_context'), 'null') <> 'null' THEN options -> 'trace_context'
        WHEN coalesce(jsonb_typeof(options -> 'traceparent'), 'null') <> 'null'
            THEN jsonb_strip_nulls(jsonb_build_object('traceparent', options -> 'traceparent',
                                                      'tracestate', options -> 'tracestate'))
    END;
    parent text;
BEGIN
    IF trace IS NULL THEN
        RETURN NULL;
    END IF;
    parent := trace ->> 'traceparent';
    IF jsonb_typeof(trace) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(trace) AS k WHERE k NOT IN ('traceparent', 'tracestate'))
       OR jsonb_typeof(trace -> 'traceparent') IS DISTINCT FROM 'string'
       OR parent !~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-\S*)?$'
       OR left(parent, 2) = 'ff' OR (left(parent, 2) = '00' AND length(parent) <> 55)
       OR substr(parent, 4, 32) = repeat('0', 32) OR substr(parent, 37, 16) = repeat('0', 16)
       OR (trace ? 'tracestate' AND (jsonb_typeof(trace -> 'tracestate') <> 'string'
                                     OR length(trace ->> 'tracestate') NOT BETWEEN 1 AND 512)) THEN
        PERFORM job_invalid('enqueue', 'option trace_context',
                            'must be {"traceparent": a W3C traceparent, "tracestate"?: 1 to 512 characters}');
    END IF;
    RETURN trace;
END
$$;

-- The options of jobbroker.enqueue checked against the HTTP API's rules (api/schemas.py), as an
-- enqueue body (the HTTP field names, priority, payload and tags filled in).
CREATE OR REPLACE FUNCTION job_enqueue_body(type text, payload jsonb, options jsonb, max_payload_bytes integer)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
#variable_conflict use_variable
DECLARE
    known CONSTANT text[] := ARRAY['priority', 'delay_seconds', 'run_at', 'max_attempts', 'backoff',
                                   'timeout_seconds', 'visibility_timeout_seconds', 'idempotency_key',
                                   'correlation_id', 'tags', 'flow_key', 'heartbeat_timeout_seconds',
                                   'max_runtime_seconds', 'trace_context', 'traceparent', 'tracestate'];
    unknown text;
    backoff jsonb := '{}';
    run_at timestamptz;
    tags jsonb := coalesce(options -> 'tags', 'null');
BEGIN
    IF type IS NULL OR type !~ '^\S{1,200}$' THEN
        PERFORM job_invalid('enqueue', 'type', 'must be 1 to 200 characters without spaces');
    END IF;
    IF payload IS NULL THEN
        RAISE EXCEPTION 'jobbroker.enqueue: payload must not be NULL (a JSON null is ''null''::jsonb)'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF octet_length(CAST(payload AS text)) > max_payload_bytes THEN
        RAISE EXCEPTION 'jobbroker.enqueue: the payload exceeds % bytes as JSON', max_payload_bytes
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        PERFORM job_invalid('enqueue', 'options', 'must be a JSON object');
    END IF;
    SELECT k INTO unknown FROM jsonb_object_keys(options) AS k WHERE k <> ALL (known) ORDER BY k LIMIT 1;
    IF unknown IS NOT NULL THEN
        PERFORM job_invalid('enqueue', format('option %s', unknown),
                            format('is unknown (known: %s)', array_to_string(known, ', ')));
    END IF;
    IF jsonb_typeof(options -> 'run_at') = 'string' THEN
        IF options ->> 'run_at' !~ '^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|z|[+-]\d\d(:?\d\d)?)?$' THEN
            PERFORM job_invalid('enqueue', 'option run_at', format('must be an RFC 3339 time, not %s', options -> 'run_at'));
        END IF;
        BEGIN
            -- RFC 3339; without an offset, UTC (as over HTTP).
            run_at := CASE WHEN options ->> 'run_at' ~ '(Z|z|[+-]\d\d(:?\d\d)?)$'
                           THEN CAST(options ->> 'run_at' AS timestamptz)
                           ELSE CAST(options ->> 'run_at' AS timestamp) AT TIME ZONE 'UTC' END;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
            PERFORM job_invalid('enqueue', 'option run_at', format('must be an RFC 3339 time, not %s', options -> 'run_at'));
        END;
    ELSIF coalesce(jsonb_typeof(options -> 'run_at'), 'null') <> 'null' THEN
        PERFORM job_invalid('enqueue', 'option run_at', 'must be an RFC 3339 time as a string');
    END IF;
    IF run_at IS NOT NULL AND coalesce(jsonb_typeof(options -> 'delay_seconds'), 'null') <> 'null' THEN
        PERFORM job_invalid('enqueue', 'options', 'give delay_seconds or run_at, not both');
    END IF;
    IF jsonb_typeof(options -> 'backoff') = 'object' THEN
        SELECT k INTO unknown FROM jsonb_object_keys(options -> 'backoff') AS k
        WHERE k <> ALL (ARRAY['initial_seconds', 'max_seconds', 'multiplier', 'jitter']) ORDER BY k LIMIT 1;
        IF unknown IS NOT NULL THEN
            PERFORM job_invalid('enqueue', format('option backoff.%s', unknown), 'is unknown');
        END IF;
        backoff := jsonb_strip_nulls(jsonb_build_object(
            'initial_seconds', job_option_number(options -> 'backoff', 'initial_seconds', 0.000001, 86400, false),
            'max_seconds', job_option_number(options -> 'backoff', 'max_seconds', 0.000001, 604800, false),
            'multiplier', job_option_number(options -> 'backoff', 'multiplier', 1, 10, false),
            'jitter', job_option_number(options -> 'backoff', 'jitter', 0, 1, false)));
        IF CAST(backoff ->> 'max_seconds' AS numeric) < CAST(backoff ->> 'initial_seconds' AS numeric) THEN
            PERFORM job_invalid('enqueue', 'option backoff', 'max_seconds must be >= initial_seconds');
        END IF;
    ELSIF coalesce(jsonb_typeof(options -> 'backoff'), 'null') <> 'null' THEN
        PERFORM job_invalid('enqueue', 'option backoff', 'must be a JSON object');
    END IF;
    IF jsonb_typeof(tags) = 'null' THEN
        tags := '[]';
    ELSIF jsonb_typeof(tags) <> 'array' OR jsonb_array_length(tags) > 32 OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(tags) AS t(tag)
        WHERE jsonb_typeof(t.tag) <> 'string' OR length(t.tag #>> '{}') NOT BETWEEN 1 AND 64
    ) THEN
        PERFORM job_invalid('enqueue', 'option tags', 'must be an array of at most 32 strings of 1 to 64 characters');
    END IF;
    RETURN jsonb_build_object(
        'type', type,
        'payload', payload,
        'priority', coalesce(CAST(job_option_number(options, 'priority', -32768, 32767, true) AS integer), 0),
        'delay_seconds', job_option_number(options, 'delay_seconds', 0, 366 * 86400, false),
        'run_at', run_at,
        'max_attempts', CAST(job_option_number(options, 'max_attempts', 1, 1000, true) AS integer),
        'backoff', backoff,
        'timeout_seconds', coalesce(CAST(job_option_number(options, 'timeout_seconds', 1, 43200, true) AS integer),
                                    CAST(job_option_number(options, 'visibility_timeout_seconds', 1, 43200, true)
                                         AS integer)),
        'heartbeat_timeout_seconds',
            CAST(job_option_number(options, 'heartbeat_timeout_seconds', 1, 43200, true) AS integer),
        'max_runtime_seconds', CAST(job_option_number(options, 'max_runtime_seconds', 1, 7 * 86400, true) AS integer),
        'flow_key', job_option_text(options, 'flow_key', 200),
        'idempotency_key', job_option_text(options, 'idempotency_key', 255),
        'correlation_id', job_option_text(options, 'correlation_id', 255),
        'tags', tags,
        'trace_context', job_trace_context(options));
END
$$;

-- Enqueue one job in the caller's transaction; answers its id. It exists, and wakes waiting
-- leases, once that transaction commits. An idempotency key already used in the queue answers
-- that job's id, unless it holds another type or payload: SQLSTATE 23505 (unique_violation).
-- Bad arguments raise SQLSTATE 22023 (invalid_parameter_value) naming the argument.
CREATE OR REPLACE FUNCTION enqueue(queue text, type text, payload jsonb, options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
#variable_conflict use_variable
DECLARE
    defaults jsonb := job_defaults();
    body jsonb;
    answer record;
    found_rows integer;
BEGIN
    IF queue IS NULL OR queue !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' THEN
        PERFORM job_invalid('enqueue', 'queue',
                            'must be 1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit');
    END IF;
    body := job_enqueue_body(type, payload, options, CAST(defaults ->> 'max_payload_bytes' AS integer));
    EXECUTE {{job_enqueue}} INTO answer USING {{job_enqueue.args}};
    GET DIAGNOSTICS found_rows = ROW_COUNT;
    IF found_rows = 0 THEN
        -- The key was taken by a transaction that committed while this insert waited on it.
        EXECUTE {{job_get_by_idempotency_keys}} INTO answer USING {{job_get_by_idempotency_keys.args}};
    END IF;
    IF answer.conflict THEN
        RAISE EXCEPTION 'jobbroker.enqueue: idempotency key % is held by job % with another type or payload',
            body ->> 'idempotency_key', answer.id
            USING ERRCODE = 'unique_violation', DETAIL = format('job %s', answer.id);
    END IF;
    RETURN answer.id;
END
$$;

-- Ack one leased job in the caller's transaction; answers whether it applied (false: the lease is
-- stale or foreign, or the job is gone; nothing changed).
CREATE OR REPLACE FUNCTION ack(id bigint, lease_id uuid, result jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
#variable_conflict use_variable
DECLARE
    defaults jsonb := job_defaults();
    acked integer;
BEGIN
    IF octet_length(CAST(result AS text)) > CAST(defaults ->> 'max_payload_bytes' AS integer) THEN
        RAISE EXCEPTION 'jobbroker.ack: the result exceeds % bytes as JSON', defaults ->> 'max_payload_bytes'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    EXECUTE {{job_ack}} USING {{job_ack.args}};
    GET DIAGNOSTICS acked = ROW_COUNT;
    RETURN acked > 0;
END
$$;

-- Nack one leased job in the caller's transaction; answers whether it applied. `error` is what an
-- HTTP nack's is: an object with a "message" (default "unspecified error") and optionally "type"
-- and "details", or a bare string taken as the message.
CREATE OR REPLACE FUNCTION nack(id bigint, lease_id uuid, error jsonb, retryable boolean DEFAULT true,
                                retry_in_seconds double precision DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
#variable_conflict use_variable
DECLARE
    defaults jsonb := job_defaults();
    nacked integer;
BEGIN
    error := CASE jsonb_typeof(error) WHEN 'string' THEN jsonb_build_object('message', error)
                                      ELSE coalesce(error, '{}') END;
    IF jsonb_typeof(error) <> 'object'
       OR EXISTS (SELECT FROM jsonb_object_keys(error) AS k WHERE k NOT IN ('message', 'type', 'details'))
       OR coalesce(jsonb_typeof(error -> 'message'), 'string') <> 'string' OR length(error ->> 'message') > 10000
       OR coalesce(jsonb_typeof(error -> 'type'), 'null') NOT IN ('string', 'null') OR length(error ->> 'type') > 200
    THEN
        PERFORM job_invalid('nack', 'error', 'must be an object with an optional "message" string (at most 10000 '
                            'characters), "type" string (at most 200) and "details"');
    END IF;
    -- As over HTTP: a null type or details is left out, a missing message is "unspecified error".
    error := jsonb_build_object('message', 'unspecified error') || jsonb_strip_nulls(
        jsonb_build_object('message', error -> 'message', 'type', error -> 'type'))
        || CASE WHEN coalesce(jsonb_typeof(error -> 'details'), 'null') <> 'null'
                THEN jsonb_build_object('details', error -> 'details') ELSE '{}' END;
    IF octet_length(CAST(error AS text)) > CAST(defaults ->> 'max_payload_bytes' AS integer) THEN
        RAISE EXCEPTION 'jobbroker.nack: the error exceeds % bytes as JSON', defaults ->> 'max_payload_bytes'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF retryable IS NULL THEN
        PERFORM job_invalid('nack', 'retryable', 'must not be NULL');
    END IF;
    IF retry_in_seconds < 0 OR retry_in_seconds > 366 * 86400 OR retry_in_seconds = 'NaN' THEN
        PERFORM job_invalid('nack', 'retry_in_seconds', format('must be between 0 and %s', 366 * 86400));
    END IF;
    EXECUTE {{job_nack}} USING {{job_nack.args}};
    GET DIAGNOSTICS nacked = ROW_COUNT;
    RETURN nacked > 0;
END
$$;

-- Applications call only the functions they are granted (see `jobbroker grants`): none by default.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', current_schema());
END
$$;
