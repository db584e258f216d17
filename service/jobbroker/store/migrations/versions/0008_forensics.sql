-- Failure forensics and safe redrive.

-- The running attempt lives on the job row (started_at, lease_id, worker_id, heartbeats); a ledger
-- row is written once, when the attempt ends, by the statement that ends it.
ALTER TABLE job
    ADD COLUMN heartbeats integer NOT NULL DEFAULT 0,
    ADD COLUMN last_fingerprint text,
    ADD COLUMN replays integer NOT NULL DEFAULT 0;

-- No foreign key to job: its check would cost a job lookup per ended attempt on the hot path.
-- The statements that delete jobs (retention, purge) delete their attempts in the same statement.
CREATE TABLE job_attempt (
    id bigint GENERATED ALWAYS AS IDENTITY,
    job_id bigint NOT NULL,
    attempt integer NOT NULL,
    worker_id text,
    lease_id uuid,
    leased_at timestamptz,
    ended_at timestamptz NOT NULL DEFAULT now(),
    heartbeats integer NOT NULL DEFAULT 0,
    outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'lease_expired', 'released', 'cancelled',
                                             'max_runtime_exceeded')),
    error jsonb,
    fingerprint text,
    http_status integer,
    PRIMARY KEY (job_id, id)
);

-- DLQ grouping and the fingerprint filter look at dead jobs only.
CREATE INDEX job_dead_fingerprint ON job (last_fingerprint, queue) WHERE state = 'dead';

-- payload_contains (@>) on dead jobs. jsonb_path_ops indexes only containment, at a third of
-- jsonb_ops' size. Partial: an index over every payload would be written by every enqueue, for a
-- filter that operators use on the DLQ; other job lists filter newest first under their limit.
CREATE INDEX job_dead_payload ON job USING gin (payload jsonb_path_ops) WHERE state = 'dead';

-- An error's fingerprint: its type and its message with what varies between occurrences masked, so
-- "timeout after 3012 ms on 10.0.0.7" and "timeout after 95 ms on 10.0.0.9" group together. The
-- one place this is computed (HTTP nacks, SQL nacks, the reaper, the backfill below). Only built-in
-- functions, so no search_path is relied on. docs/forensics.md lists the rules with examples.
CREATE FUNCTION job_error_signature(error jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(error ->> 'type', '') || ': ' || left(btrim(regexp_replace(
        regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        regexp_replace(regexp_replace(regexp_replace(
            coalesce(error ->> 'message', ''),
            '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+', '<email>', 'g'),
            '\m[A-Za-z][A-Za-z0-9+.-]*://[^\s"''<>]+', '<url>', 'g'),
            '[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}', '<uuid>', 'g'),
            '\m\d{1,3}(\.\d{1,3}){3}(:\d+)?\M', '<ip>', 'g'),
            '\m[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}\M|(^|[^\w:])::[0-9A-Fa-f]{1,4}\M', '\1<ip>', 'g'),
            '(^|[^\w])(''[^'']*''|"[^"]*"|`[^`]*`)(?!\w)', '\1<q>', 'g'),
            '\m0[xX][0-9A-Fa-f]+\M|\m[0-9a-f]{8,}\M|\m[0-9A-F]{8,}\M', '<hex>', 'g'),
            '\m(?=\w*\d)(?=\w*[A-Za-z])\w{8,}\M', '<id>', 'g'),
            '\d+(\.\d+)?', '<n>', 'g'),
        '\s+', ' ', 'g')), 500)
$$;

-- Called from SQL functions an application runs with its own search_path: this one keeps the
-- broker's (FROM CURRENT: the migration runs in the broker's schema). The others call built-ins only.
CREATE FUNCTION job_fingerprint(error jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
    SELECT left(md5(job_error_signature(error)), 16)
$$;

-- The DLQ's `error` filter: a substring of an error message or type in the history, never of its
-- keys or other values.
CREATE FUNCTION job_errors_mention(errors jsonb, needle text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM jsonb_array_elements(errors) AS e
        WHERE strpos(lower(e -> 'error' ->> 'message'), lower(needle)) > 0
           OR strpos(lower(e -> 'error' ->> 'type'), lower(needle)) > 0)
$$;

-- How an attempt ended, from the state its statement moved the job to and the error it recorded.
CREATE FUNCTION job_attempt_outcome(next_state text, error jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN next_state = 'cancelled' THEN 'cancelled'
        WHEN error ->> 'type' IN ('lease_expired', 'max_runtime_exceeded') THEN error ->> 'type'
        ELSE 'failed'
    END
$$;

-- RFC 7396 JSON merge patch: an object patch merges member by member (null removes), anything
-- else replaces the target.
CREATE FUNCTION job_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
DECLARE
    merged jsonb;
    member record;
BEGIN
    IF patch IS NULL OR jsonb_typeof(patch) <> 'object' THEN
        RETURN patch;
    END IF;
    merged := CASE WHEN jsonb_typeof(target) = 'object' THEN target ELSE '{}'::jsonb END;
    FOR member IN SELECT key, value FROM jsonb_each(patch) LOOP
        IF jsonb_typeof(member.value) = 'null' THEN
            merged := merged - member.key;
        ELSE
            merged := jsonb_set(merged, ARRAY[member.key], job_merge_patch(merged -> member.key, member.value));
        END IF;
    END LOOP;
    RETURN merged;
END
$$;

UPDATE job SET last_fingerprint = job_fingerprint(errors -> -1 -> 'error')
WHERE state = 'dead' AND jsonb_array_length(errors) > 0;

-- A redrive: a set of dead jobs frozen at creation (redrive_item), replayed in batches at a rate by
-- whichever replica holds the row's lock for the batch. A batch deletes its items, replays their
-- jobs and counts them in one statement, so a crash mid-batch undoes all of it.
CREATE TABLE redrive (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'cancelled', 'failed')),
    filter jsonb NOT NULL,
    target_queue text,
    payload_patch jsonb,
    rate_per_s double precision CHECK (rate_per_s > 0),
    total integer NOT NULL,
    done integer NOT NULL DEFAULT 0,
    replayed integer NOT NULL DEFAULT 0,
    error text,
    actor text,
    next_batch_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT finished_redrive CHECK ((state = 'running') = (finished_at IS NULL))
);
CREATE INDEX redrive_running ON redrive (next_batch_at) WHERE state = 'running';

CREATE TABLE redrive_item (
    redrive_id bigint NOT NULL REFERENCES redrive (id) ON DELETE CASCADE,
    job_id bigint NOT NULL,
    PRIMARY KEY (redrive_id, job_id)
);

-- Who did what: every admin action. The actor is an API key's public id, never the key.
CREATE TABLE audit_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target text,
    filter jsonb,
    count integer,
    request_id text
);
CREATE INDEX audit_event_action ON audit_event (action, id);
CREATE INDEX audit_event_at ON audit_event (at);
