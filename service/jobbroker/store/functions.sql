-- The broker's functions: each transition an application may run in its own transaction (enqueue,
-- ack, nack) is one set-based function here, which the store's statements (store/sql/job.sql) and
-- the single-job functions applications call (jobbroker.enqueue, jobbroker.ack, jobbroker.nack)
-- share: one implementation of each.
--
-- Applied by the migration runner (store/functions.py) after the versioned migrations whenever
-- this file changes: CREATE OR REPLACE keeps each function's grants. It runs with search_path =
-- <schema>, pg_catalog, pg_temp, and every function keeps that path (SET search_path FROM
-- CURRENT), so none depends on its caller's. A changed signature is a new function: drop the old
-- one here first (grants then have to be given again, see `jobbroker grants`).
-- job_defaults() (the broker's job settings as JSON) is written by the runner next to this file.

-- Insert jobs into a queue, in input order; answers each inserted one with its ordinal. `jobs` is
-- a JSON array of enqueue bodies with the HTTP API's field names (a field absent or null takes
-- the queue's default, then the broker's); `defaults` is job_defaults()'s shape. An idempotency key already present in the queue inserts nothing (job_enqueue_many
-- answers those inputs). Ids are drawn first so each row maps back to its input.
CREATE OR REPLACE FUNCTION job_insert_many(queue text, jobs jsonb, defaults jsonb)
RETURNS TABLE (ord bigint, job job)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        -- Fields read one by one: jsonb_to_recordset would read a JSON null payload as SQL NULL.
        SELECT nextval(pg_get_serial_sequence('job', 'id')) AS id, t.ord,
               t.body ->> 'type' AS type, coalesce(t.body -> 'payload', '{}') AS payload,
               CAST(t.body ->> 'priority' AS integer) AS priority,
               CAST(t.body ->> 'run_at' AS timestamptz) AS run_at,
               CAST(t.body ->> 'delay_seconds' AS double precision) AS delay_seconds,
               CAST(t.body ->> 'max_attempts' AS integer) AS max_attempts,
               t.body -> 'backoff' AS backoff,
               CAST(t.body ->> 'timeout_seconds' AS integer) AS timeout_seconds,
               t.body ->> 'idempotency_key' AS idempotency_key,
               t.body ->> 'correlation_id' AS correlation_id,
               CASE WHEN jsonb_typeof(t.body -> 'tags') = 'array'
                    THEN ARRAY(SELECT jsonb_array_elements_text(t.body -> 'tags')) END AS tags,
               t.body ->> 'flow_key' AS flow_key,
               CAST(t.body ->> 'heartbeat_timeout_seconds' AS integer) AS heartbeat_timeout_seconds,
               CAST(t.body ->> 'max_runtime_seconds' AS integer) AS max_runtime_seconds,
               CASE WHEN jsonb_typeof(t.body -> 'trace_context') = 'object'
                    THEN t.body -> 'trace_context' END AS trace_context
        FROM jsonb_array_elements(jobs) WITH ORDINALITY AS t(body, ord)
    ),
    inserted AS (
        INSERT INTO job AS j (id, queue, type, payload, priority, run_at, max_attempts, backoff_initial_s,
                              backoff_max_s, backoff_multiplier, backoff_jitter, timeout_s, idempotency_key,
                              correlation_id, tags, flow_key, heartbeat_timeout_s, max_runtime_s, trace_context)
        SELECT i.id, job_insert_many.queue, i.type, i.payload, coalesce(i.priority, 0),
               coalesce(i.run_at, now() + make_interval(secs => coalesce(i.delay_seconds, 0))),
               coalesce(i.max_attempts, q.default_max_attempts, CAST(defaults ->> 'max_attempts' AS integer)),
               coalesce(CAST(i.backoff ->> 'initial_seconds' AS double precision),
                        CAST(q.default_backoff ->> 'initial_seconds' AS double precision),
                        CAST(defaults ->> 'backoff_initial_s' AS double precision)),
               coalesce(CAST(i.backoff ->> 'max_seconds' AS double precision),
                        CAST(q.default_backoff ->> 'max_seconds' AS double precision),
                        CAST(defaults ->> 'backoff_max_s' AS double precision)),
               coalesce(CAST(i.backoff ->> 'multiplier' AS double precision),
                        CAST(q.default_backoff ->> 'multiplier' AS double precision),
                        CAST(defaults ->> 'backoff_multiplier' AS double precision)),
               coalesce(CAST(i.backoff ->> 'jitter' AS double precision),
                        CAST(q.default_backoff ->> 'jitter' AS double precision),
                        CAST(defaults ->> 'backoff_jitter' AS double precision)),
               coalesce(i.timeout_seconds, q.default_visibility_timeout_s, CAST(defaults ->> 'timeout_s' AS integer)),
               i.idempotency_key, i.correlation_id, coalesce(i.tags, '{}'),
               i.flow_key, coalesce(i.heartbeat_timeout_seconds, q.default_heartbeat_timeout_s),
               coalesce(i.max_runtime_seconds, q.default_max_runtime_s), i.trace_context
        FROM input i LEFT JOIN queue q ON q.name = job_insert_many.queue
        ORDER BY i.ord
        ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING j.id, j
    )
    SELECT i.ord, inserted.j FROM input i JOIN inserted ON inserted.id = i.id;
END
$$;

-- Enqueue: answers every input, by its ordinal, with its new job, or (duplicate) with the job
-- already holding its idempotency key in the queue. The insert notifies waiting leases through the
-- job table's trigger, which Postgres delivers when the transaction commits.
CREATE OR REPLACE FUNCTION job_enqueue_many(queue text, jobs jsonb, defaults jsonb)
RETURNS TABLE (ord bigint, duplicate boolean, job job)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    new_ords bigint[];
    new_jobs job[];
BEGIN
    IF NOT jobs @? '$[*].idempotency_key ? (@ != null)' THEN
        -- No key, no conflict: the rows inserted are the whole answer.
        RETURN QUERY SELECT i.ord, false, i.job FROM job_insert_many(queue, jobs, defaults) AS i;
        RETURN;
    END IF;
    SELECT coalesce(array_agg(i.ord), '{}'), coalesce(array_agg(i.job), '{}') INTO new_ords, new_jobs
    FROM job_insert_many(queue, jobs, defaults) AS i;
    RETURN QUERY SELECT new_ords[k], false, new_jobs[k] FROM generate_subscripts(new_ords, 1) AS k;
    IF cardinality(new_ords) = jsonb_array_length(jobs) THEN
        RETURN;
    END IF;
    -- The job holding each key that was taken. A statement of its own: its snapshot also sees the
    -- keys that a concurrent transaction committed while the insert waited on them, and the keys
    -- that an earlier input of this call took.
    RETURN QUERY
    SELECT t.ord, true, j
    FROM jsonb_array_elements(jobs) WITH ORDINALITY AS t(body, ord)
    JOIN job j ON j.queue = job_enqueue_many.queue AND j.idempotency_key = t.body ->> 'idempotency_key'
    WHERE t.ord <> ALL (new_ords);
END
$$;

-- Ack: finish leased jobs, each guarded by its lease (a stale or foreign lease is a no-op);
-- answers the jobs acked. Each ended attempt gets its ledger row (job_attempt) in the same statement.
CREATE OR REPLACE FUNCTION job_ack_many(ids bigint[], lease_ids uuid[], results jsonb[])
RETURNS SETOF job
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
BEGIN
    RETURN QUERY
    WITH acked AS (
        UPDATE job j
        SET state = 'succeeded', result = i.result, finished_at = now(), updated_at = now(), lease_expires_at = NULL
        FROM unnest(ids, lease_ids, results) AS i(id, lease_id, result)
        WHERE j.id = i.id AND j.state = 'active' AND j.lease_id = i.lease_id
        RETURNING j AS done
    ),
    ledger AS (
        INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome)
        SELECT (done).id, (done).attempts, (done).worker_id, (done).lease_id, (done).started_at, (done).finished_at,
               (done).heartbeats, 'succeeded'
        FROM acked
    )
    SELECT (done).* FROM acked;
END
$$;

-- Nack: fail one attempt of leased jobs, each guarded by its lease: retry after backoff (or its
-- retry_in_s), or dead-letter (job_failure_state decides); the error joins the job's bounded
-- history with its fingerprint (job_fingerprint), which also goes onto the job and, with the
-- attempt, into the ledger. Answers the jobs nacked, in their new state.
CREATE OR REPLACE FUNCTION job_nack_many(ids bigint[], lease_ids uuid[], errors jsonb[], retryables boolean[],
                                         retry_ins_s double precision[], keep_errors integer)
RETURNS SETOF job
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
BEGIN
    RETURN QUERY
    WITH nacked AS (
        UPDATE job j
        SET state = job_failure_state(j.cancel_requested, i.retryable, j.attempts, j.max_attempts),
            run_at = CASE WHEN job_failure_state(j.cancel_requested, i.retryable, j.attempts, j.max_attempts)
                               = 'retrying'
                     THEN now() + make_interval(secs => coalesce(i.retry_in_s,
                          job_backoff_s(j.attempts, j.backoff_initial_s, j.backoff_max_s, j.backoff_multiplier,
                                        j.backoff_jitter)))
                     ELSE j.run_at END,
            finished_at = CASE WHEN job_failure_state(j.cancel_requested, i.retryable, j.attempts, j.max_attempts)
                               = 'retrying' THEN NULL ELSE now() END,
            lease_expires_at = NULL,
            updated_at = now(),
            last_fingerprint = i.fingerprint,
            errors = job_append_error(j.errors, jsonb_build_object(
                'attempt', j.attempts, 'at', now(), 'worker_id', j.worker_id, 'error', i.error,
                'fingerprint', i.fingerprint), keep_errors)
        FROM (SELECT u.*, job_fingerprint(u.error) AS fingerprint
              FROM unnest(ids, lease_ids, job_nack_many.errors, retryables, retry_ins_s)
                   AS u(id, lease_id, error, retryable, retry_in_s)) AS i
        WHERE j.id = i.id AND j.state = 'active' AND j.lease_id = i.lease_id
        RETURNING j AS done, i.error AS attempt_error
    ),
    ledger AS (
        INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome,
                                 error, fingerprint)
        SELECT (done).id, (done).attempts, (done).worker_id, (done).lease_id, (done).started_at, now(),
               (done).heartbeats, job_attempt_outcome((done).state, attempt_error), attempt_error,
               (done).last_fingerprint
        FROM nacked
    )
    SELECT (done).* FROM nacked;
END
$$;

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
    IF jsonb_typeof(value) <> 'string' OR length(value ->> 0) NOT BETWEEN 1 AND max_length THEN
        PERFORM job_invalid('enqueue', format('option %s', name),
                            format('must be a string of 1 to %s characters', max_length));
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
-- enqueue body for job_enqueue_many.
CREATE OR REPLACE FUNCTION job_enqueue_body(type text, payload jsonb, options jsonb, max_payload_bytes integer)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
#variable_conflict use_variable
DECLARE
    known CONSTANT text[] := ARRAY['priority', 'delay_seconds', 'run_at', 'max_attempts', 'backoff',
                                   'timeout_seconds', 'idempotency_key', 'correlation_id', 'tags',
                                   'flow_key', 'visibility_timeout_seconds', 'heartbeat_timeout_seconds',
                                   'max_runtime_seconds', 'trace_context', 'traceparent', 'tracestate'];
    unknown text;
    backoff jsonb := '{}';
    run_at timestamptz;
    tags jsonb := coalesce(options -> 'tags', 'null');
    trace jsonb;
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
    IF coalesce(jsonb_typeof(options -> 'timeout_seconds'), 'null') <> 'null'
       AND coalesce(jsonb_typeof(options -> 'visibility_timeout_seconds'), 'null') <> 'null' THEN
        PERFORM job_invalid('enqueue', 'options', 'give timeout_seconds or visibility_timeout_seconds, not both');
    END IF;
    IF jsonb_typeof(tags) = 'null' THEN
        tags := '[]';
    ELSIF jsonb_typeof(tags) <> 'array' OR jsonb_array_length(tags) > 32 OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(tags) AS t(tag)
        WHERE jsonb_typeof(t.tag) <> 'string' OR length(t.tag #>> '{}') NOT BETWEEN 1 AND 64
    ) THEN
        PERFORM job_invalid('enqueue', 'option tags', 'must be an array of at most 32 strings of 1 to 64 characters');
    END IF;
    trace := job_trace_context(options);
    RETURN jsonb_build_object(
        'trace_context', trace,
        'type', type,
        'payload', payload,
        'priority', CAST(job_option_number(options, 'priority', -32768, 32767, true) AS integer),
        'delay_seconds', job_option_number(options, 'delay_seconds', 0, 366 * 86400, false),
        'run_at', run_at,
        'max_attempts', CAST(job_option_number(options, 'max_attempts', 1, 1000, true) AS integer),
        'backoff', backoff,
        'timeout_seconds', CAST(coalesce(job_option_number(options, 'timeout_seconds', 1, 43200, true),
                                         job_option_number(options, 'visibility_timeout_seconds', 1, 43200, true))
                                AS integer),
        'idempotency_key', job_option_text(options, 'idempotency_key', 255),
        'correlation_id', job_option_text(options, 'correlation_id', 255),
        'tags', tags,
        'flow_key', job_option_text(options, 'flow_key', 200),
        'heartbeat_timeout_seconds',
            CAST(job_option_number(options, 'heartbeat_timeout_seconds', 1, 43200, true) AS integer),
        'max_runtime_seconds', CAST(job_option_number(options, 'max_runtime_seconds', 1, 604800, true) AS integer));
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
    answer record;
BEGIN
    IF queue IS NULL OR queue !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' THEN
        PERFORM job_invalid('enqueue', 'queue',
                            'must be 1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit');
    END IF;
    SELECT e.duplicate, e.job INTO answer
    FROM job_enqueue_many(queue, jsonb_build_array(
        job_enqueue_body(type, payload, options, CAST(defaults ->> 'max_payload_bytes' AS integer))), defaults) AS e;
    IF answer.duplicate AND ((answer.job).type <> type OR (answer.job).payload <> payload) THEN
        RAISE EXCEPTION 'jobbroker.enqueue: idempotency key % is held by job % with another type or payload',
            options ->> 'idempotency_key', (answer.job).id
            USING ERRCODE = 'unique_violation', DETAIL = format('job %s', (answer.job).id);
    END IF;
    RETURN (answer.job).id;
END
$$;

-- Ack one leased job in the caller's transaction; answers whether it applied (false: the lease is
-- stale or foreign, or the job is gone; nothing changed).
CREATE OR REPLACE FUNCTION ack(id bigint, lease_id uuid, result jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
#variable_conflict use_variable
DECLARE
    max_bytes integer := CAST(job_defaults() ->> 'max_payload_bytes' AS integer);
BEGIN
    IF octet_length(CAST(result AS text)) > max_bytes THEN
        RAISE EXCEPTION 'jobbroker.ack: the result exceeds % bytes as JSON', max_bytes
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN EXISTS (SELECT FROM job_ack_many(ARRAY[id], ARRAY[lease_id], ARRAY[result]));
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
    RETURN EXISTS (
        SELECT FROM job_nack_many(ARRAY[id], ARRAY[lease_id], ARRAY[error], ARRAY[retryable],
                                  ARRAY[retry_in_seconds], CAST(defaults ->> 'error_history' AS integer)));
END
$$;

-- Applications call only the functions they are granted (see `jobbroker grants`): none by default.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', current_schema());
END
$$;
