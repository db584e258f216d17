-- name: job_ack
-- Finish a leased job. The guard makes a stale or foreign lease a no-op (0 rows). The attempt's
-- ledger row is written by the same statement; :http_status is a push delivery's answer.
WITH acked AS (
    UPDATE job
    SET state = 'succeeded', result = :result, finished_at = now(), updated_at = now(), lease_expires_at = NULL
    WHERE id = :id AND state = 'active' AND lease_id = :lease_id
    RETURNING *
),
ledger AS (
    INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome, http_status)
    SELECT id, attempts, worker_id, lease_id, started_at, finished_at, heartbeats, 'succeeded',
           CAST(:http_status AS integer)
    FROM acked WHERE CAST(:ledger AS boolean)
)
SELECT * FROM acked;

-- name: job_ack_each
-- Concurrent single acks in one statement (the ack coalescer): each acked job answers whole, as
-- job_ack would; an input missing from the answer was stale, foreign or a repeat.
WITH acked AS (
    UPDATE job j
    SET state = 'succeeded', result = CAST(i.result AS jsonb), finished_at = now(), updated_at = now(),
        lease_expires_at = NULL
    FROM unnest(CAST(:ids AS bigint[]), CAST(:lease_ids AS uuid[]), CAST(:results AS text[]),
                CAST(:http_statuses AS integer[])) AS i(id, lease_id, result, http_status)
    WHERE j.id = i.id AND j.state = 'active' AND j.lease_id = i.lease_id
    RETURNING j.*, i.http_status AS delivery_status
),
ledger AS (
    INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome, http_status)
    SELECT id, attempts, worker_id, lease_id, started_at, finished_at, heartbeats, 'succeeded', delivery_status
    FROM acked WHERE CAST(:ledger AS boolean)
)
SELECT * FROM acked;

-- name: job_ack_many
-- Finish many leased jobs in one statement; answers the ids that were acked.
WITH acked AS (
    UPDATE job j
    SET state = 'succeeded', result = CAST(i.result AS jsonb), finished_at = now(), updated_at = now(),
        lease_expires_at = NULL
    FROM unnest(CAST(:ids AS bigint[]), CAST(:lease_ids AS uuid[]), CAST(:results AS text[])) AS i(id, lease_id, result)
    WHERE j.id = i.id AND j.state = 'active' AND j.lease_id = i.lease_id
    RETURNING j.id, j.queue, j.type, j.started_at, j.finished_at, j.worker_id, j.correlation_id, j.attempts,
              j.lease_id, j.heartbeats
),
ledger AS (
    INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome)
    SELECT id, attempts, worker_id, lease_id, started_at, finished_at, heartbeats, 'succeeded'
    FROM acked WHERE CAST(:ledger AS boolean)
)
SELECT id, queue, type, started_at, finished_at, worker_id, correlation_id, attempts FROM acked;

-- name: job_attempts
-- A job's attempts, oldest first: the ledger's ended ones, then the running one from the job row.
SELECT attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome, error, fingerprint, http_status
FROM (
    SELECT id AS seq, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome, error, fingerprint,
           http_status
    FROM job_attempt WHERE job_id = :id
    UNION ALL
    SELECT 9223372036854775807, attempts, worker_id, lease_id, started_at, NULL, heartbeats, NULL, NULL, NULL, NULL
    FROM job WHERE id = :id AND state = 'active'
) AS a
ORDER BY seq;

-- name: job_bulk_dead
-- Act on the dead jobs chosen by ids or filters, at most :limit: replay (:action 'replay'),
-- delete with their attempts ('purge'), only count them ('count', a dry run) or freeze them into
-- redrive :redrive_id ('redrive'). Answers the count per queue. One selection serves every action:
-- each action's statement is gated on :action, so only one of them touches the picked rows.
WITH picked AS (
    SELECT id, queue FROM job
    WHERE state = 'dead'
      AND (CAST(:ids AS bigint[]) IS NULL OR id = ANY(CAST(:ids AS bigint[])))
      AND (CAST(:queue AS text) IS NULL OR queue = CAST(:queue AS text))
      AND (CAST(:type AS text) IS NULL OR type = CAST(:type AS text))
      AND (CAST(:fingerprint AS text) IS NULL OR last_fingerprint = CAST(:fingerprint AS text))
      AND (CAST(:payload_contains AS jsonb) IS NULL OR payload @> CAST(:payload_contains AS jsonb))
      AND (CAST(:error AS text) IS NULL OR job_errors_mention(errors, CAST(:error AS text)))
      AND (CAST(:since AS timestamptz) IS NULL OR finished_at >= CAST(:since AS timestamptz))
      AND (CAST(:until AS timestamptz) IS NULL OR finished_at < CAST(:until AS timestamptz))
    ORDER BY id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
),
replayed AS (
    UPDATE job
    SET state = 'pending', attempts = 0, run_at = now(), finished_at = NULL, cancel_requested = false,
        result = NULL, progress = NULL, updated_at = now(), replays = job.replays + 1
    FROM picked WHERE job.id = picked.id AND CAST(:action AS text) = 'replay'
    RETURNING job.queue
),
purged AS (
    DELETE FROM job USING picked WHERE job.id = picked.id AND CAST(:action AS text) = 'purge'
    RETURNING job.id, job.queue
),
purged_attempts AS (
    DELETE FROM job_attempt WHERE job_id IN (SELECT id FROM purged)
),
frozen AS (
    INSERT INTO redrive_item (redrive_id, job_id)
    SELECT CAST(:redrive_id AS bigint), id FROM picked WHERE CAST(:action AS text) = 'redrive'
    RETURNING job_id
)
SELECT queue, count(*) AS n
FROM (SELECT queue FROM replayed
      UNION ALL SELECT queue FROM purged
      UNION ALL SELECT queue FROM picked WHERE CAST(:action AS text) IN ('count', 'redrive')) AS moved
GROUP BY queue;

-- name: job_cancel
-- Cancel a waiting job outright; a running one only gets cancel_requested, seen on its next heartbeat.
UPDATE job
SET state = CASE WHEN state = 'active' THEN 'active' ELSE 'cancelled' END,
    cancel_requested = (state = 'active'),
    finished_at = CASE WHEN state = 'active' THEN NULL ELSE now() END,
    updated_at = now()
WHERE id = :id AND state IN ('pending', 'retrying', 'active')
RETURNING *;

-- name: job_count_active
-- Active jobs of a queue, for its concurrency limit.
SELECT count(*) FROM job WHERE queue = :queue AND state = 'active';

-- name: job_dead_groups
-- The DLQ grouped by the fingerprint of each job's last failure, largest group first. The sample is
-- the newest member's error.
SELECT last_fingerprint AS fingerprint,
       (array_agg(errors -> -1 -> 'error' ->> 'type' ORDER BY finished_at DESC, id DESC))[1] AS error_type,
       (array_agg(errors -> -1 -> 'error' ->> 'message' ORDER BY finished_at DESC, id DESC))[1] AS sample_message,
       count(*) AS count, min(finished_at) AS first_seen, max(finished_at) AS last_seen,
       array_agg(DISTINCT queue ORDER BY queue) AS queues, array_agg(DISTINCT type ORDER BY type) AS types
FROM job
WHERE state = 'dead'
  AND (CAST(:queue AS text) IS NULL OR queue = CAST(:queue AS text))
  AND (CAST(:type AS text) IS NULL OR type = CAST(:type AS text))
  AND (CAST(:fingerprint AS text) IS NULL OR last_fingerprint = CAST(:fingerprint AS text))
  AND (CAST(:payload_contains AS jsonb) IS NULL OR payload @> CAST(:payload_contains AS jsonb))
  AND (CAST(:error AS text) IS NULL OR job_errors_mention(errors, CAST(:error AS text)))
  AND (CAST(:since AS timestamptz) IS NULL OR finished_at >= CAST(:since AS timestamptz))
  AND (CAST(:until AS timestamptz) IS NULL OR finished_at < CAST(:until AS timestamptz))
GROUP BY last_fingerprint
ORDER BY count(*) DESC, last_fingerprint
LIMIT :limit;

-- name: job_dead_rows
-- Dead row versions in the job table, as the statistics last counted them. The broker's schema is
-- its sessions' search_path, and so current_schema(); a job table elsewhere is not ours.
SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'job';

-- name: job_delete_expired
-- Retention: delete finished jobs older than their queue's retention, with their attempts, in
-- bounded batches; answers how many jobs went.
WITH doomed AS (
    SELECT j.id
    FROM job j LEFT JOIN queue q ON q.name = j.queue
    WHERE j.state IN ('succeeded', 'dead', 'cancelled')
      AND j.finished_at < now() - make_interval(secs => CASE
            WHEN j.state = 'dead' THEN coalesce(q.dead_retention_s, :dead_retention_s)
            ELSE coalesce(q.retention_s, :retention_s) END)
    LIMIT :limit
    FOR UPDATE OF j SKIP LOCKED
),
gone AS (
    DELETE FROM job USING doomed WHERE job.id = doomed.id RETURNING job.id
),
gone_attempts AS (
    DELETE FROM job_attempt WHERE job_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone;

-- name: job_enqueue
-- Insert a batch in input order. Ids are drawn first so each answer maps back to its input;
-- an idempotency key already present in the queue inserts nothing and answers the existing job,
-- with `conflict` when that job has another type or payload (jsonb equality: key order aside).
-- JSON travels as text[]: a jsonb[] parameter would read a list payload as an array dimension.
-- Jobs a concurrent transaction inserted are invisible to this statement's snapshot: the
-- caller re-reads any input left unanswered.
WITH input AS (
    SELECT nextval(pg_get_serial_sequence('job', 'id')) AS id, t.*
    FROM unnest(
        CAST(:types AS text[]), CAST(:payloads AS text[]), CAST(:priorities AS integer[]),
        CAST(:run_ats AS timestamptz[]), CAST(:delays_s AS double precision[]),
        CAST(:max_attempts AS integer[]), CAST(:backoff_initial_s AS double precision[]),
        CAST(:backoff_max_s AS double precision[]), CAST(:backoff_multiplier AS double precision[]),
        CAST(:backoff_jitter AS double precision[]), CAST(:timeouts_s AS integer[]),
        CAST(:idempotency_keys AS text[]), CAST(:correlation_ids AS text[]), CAST(:tags AS text[]),
        CAST(:flow_keys AS text[]), CAST(:heartbeat_timeouts_s AS integer[]), CAST(:max_runtimes_s AS integer[]),
        CAST(:trace_contexts AS text[])
    ) WITH ORDINALITY AS t(type, payload, priority, run_at, delay_s, max_attempts, backoff_initial_s,
                           backoff_max_s, backoff_multiplier, backoff_jitter, timeout_s,
                           idempotency_key, correlation_id, tags, flow_key, heartbeat_timeout_s,
                           max_runtime_s, trace_context, ord)
),
inserted AS (
    INSERT INTO job (id, queue, type, payload, priority, run_at, max_attempts, backoff_initial_s,
                     backoff_max_s, backoff_multiplier, backoff_jitter, timeout_s, idempotency_key,
                     correlation_id, tags, flow_key, heartbeat_timeout_s, max_runtime_s, trace_context)
    SELECT i.id, CAST(:queue AS text), i.type, CAST(i.payload AS jsonb), i.priority,
           coalesce(i.run_at, now() + make_interval(secs => coalesce(i.delay_s, 0))),
           coalesce(i.max_attempts, q.default_max_attempts, :default_max_attempts),
           coalesce(i.backoff_initial_s, CAST(q.default_backoff ->> 'initial_seconds' AS double precision),
                    :default_backoff_initial_s),
           coalesce(i.backoff_max_s, CAST(q.default_backoff ->> 'max_seconds' AS double precision),
                    :default_backoff_max_s),
           coalesce(i.backoff_multiplier, CAST(q.default_backoff ->> 'multiplier' AS double precision),
                    :default_backoff_multiplier),
           coalesce(i.backoff_jitter, CAST(q.default_backoff ->> 'jitter' AS double precision),
                    :default_backoff_jitter),
           coalesce(i.timeout_s, q.default_visibility_timeout_s, :default_timeout_s),
           i.idempotency_key, i.correlation_id,
           ARRAY(SELECT jsonb_array_elements_text(CAST(i.tags AS jsonb))),
           i.flow_key, coalesce(i.heartbeat_timeout_s, q.default_heartbeat_timeout_s),
           coalesce(i.max_runtime_s, q.default_max_runtime_s), CAST(i.trace_context AS jsonb)
    FROM input i LEFT JOIN queue q ON q.name = CAST(:queue AS text)
    ORDER BY i.ord
    ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
)
SELECT i.ord, false AS duplicate, false AS conflict, inserted.* FROM input i JOIN inserted ON inserted.id = i.id
UNION ALL
SELECT i.ord, true AS duplicate, (j.type <> i.type OR j.payload <> CAST(i.payload AS jsonb)) AS conflict, j.*
FROM input i JOIN job j ON j.queue = CAST(:queue AS text) AND j.idempotency_key = i.idempotency_key
WHERE NOT EXISTS (SELECT 1 FROM inserted WHERE inserted.id = i.id)
ORDER BY ord;

-- name: job_expire_leases
-- The reaper: a lease that ran out is a failed attempt ("stalled"). The job is ready again at
-- once, as a message is visible again when its visibility timeout ends: the timeout was the wait.
-- lease_expires_at is the first of the three clocks (visibility timeout, heartbeat timeout, maximum
-- runtime): a job past its maximum runtime fails as max_runtime_exceeded, even while heartbeating.
-- SKIP LOCKED lets every replica run this at once without waiting on each other or on an ack.
WITH expired AS (
    SELECT id FROM job
    WHERE state = 'active' AND lease_expires_at <= now()
    ORDER BY lease_expires_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
),
decided AS (
    SELECT j.id, job_failure_state(j.cancel_requested, true, j.attempts, j.max_attempts) AS next_state,
           e.error, job_fingerprint(e.error) AS fingerprint
    FROM job j JOIN expired USING (id)
    CROSS JOIN LATERAL (SELECT CASE
        WHEN j.max_runtime_s IS NOT NULL AND j.started_at + make_interval(secs => j.max_runtime_s) <= now()
        THEN jsonb_build_object('type', 'max_runtime_exceeded',
                                'message', format('the job ran longer than its maximum runtime of %s s', j.max_runtime_s))
        WHEN j.heartbeat_timeout_s IS NOT NULL AND j.lease_timeout_s > j.heartbeat_timeout_s
        THEN jsonb_build_object('type', 'lease_expired',
                                'message', format('no heartbeat for %s s (heartbeat timeout)', j.heartbeat_timeout_s))
        ELSE jsonb_build_object('type', 'lease_expired',
                                'message', 'the lease expired before an ack or nack (worker stalled)') END AS error) e
),
failed AS (
    UPDATE job j
    SET state = d.next_state,
        run_at = CASE WHEN d.next_state = 'retrying' THEN now() ELSE j.run_at END,
        finished_at = CASE WHEN d.next_state = 'retrying' THEN NULL ELSE now() END,
        lease_expires_at = NULL,
        updated_at = now(),
        last_fingerprint = d.fingerprint,
        errors = job_append_error(j.errors, jsonb_build_object(
            'attempt', j.attempts, 'at', now(), 'worker_id', j.worker_id, 'error', d.error,
            'fingerprint', d.fingerprint), :keep_errors)
    FROM decided d
    WHERE j.id = d.id
    RETURNING j.id, j.queue, j.type, j.state, j.worker_id, j.correlation_id, j.attempts, j.lease_id, j.started_at,
              j.heartbeats, d.error, d.fingerprint
),
ledger AS (
    INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome, error,
                             fingerprint)
    SELECT id, attempts, worker_id, lease_id, started_at, now(), heartbeats, job_attempt_outcome(state, error), error,
           fingerprint
    FROM failed WHERE CAST(:ledger AS boolean)
)
SELECT id, queue, type, state, worker_id, correlation_id, attempts, error ->> 'type' AS error_type FROM failed;

-- name: job_flow_mode
-- Whether a queue has waiting jobs with a flow key (such a queue leases through the keyed
-- statements), whether its fairness is fifo, and whether any of its keys has a limit.
SELECT EXISTS (SELECT 1 FROM job WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NOT NULL)
           AS keyed,
       coalesce((SELECT flow_fairness = 'fifo' FROM queue WHERE name = :queue), false) AS fifo,
       EXISTS (SELECT 1 FROM queue WHERE name = :queue
                 AND (flow_max_concurrency_per_key IS NOT NULL OR flow_rate_max IS NOT NULL))
       OR EXISTS (SELECT 1 FROM queue_key WHERE queue = :queue
                    AND (max_concurrency IS NOT NULL OR rate_max IS NOT NULL)) AS limited;

-- name: job_get
-- One job by id.
SELECT * FROM job WHERE id = :id;

-- name: job_get_by_idempotency_keys
-- Jobs answering repeated idempotency keys that the enqueue statement could not see, by the
-- ordinal of the asking input, with `conflict` as in job_enqueue.
SELECT k.ord, true AS duplicate, (j.type <> k.type OR j.payload <> CAST(k.payload AS jsonb)) AS conflict, j.*
FROM unnest(CAST(:keys AS text[]), CAST(:types AS text[]), CAST(:payloads AS text[]))
     WITH ORDINALITY AS k(key, type, payload, ord)
JOIN job j ON j.queue = CAST(:queue AS text) AND j.idempotency_key = k.key;

-- name: job_heartbeat
-- Extend a lease by its visibility timeout (or a new one) and record progress. The lease still
-- ends at the next heartbeat deadline or at the job's maximum runtime, whichever comes first.
UPDATE job
SET lease_timeout_s = coalesce(CAST(:visibility_timeout_s AS integer), lease_timeout_s),
    lease_expires_at = least(
        now() + make_interval(secs => least(coalesce(CAST(:visibility_timeout_s AS integer), lease_timeout_s),
                                            heartbeat_timeout_s)),
        started_at + make_interval(secs => max_runtime_s)),
    progress = coalesce(CAST(:progress AS jsonb), progress),
    heartbeats = heartbeats + 1,
    updated_at = now()
WHERE id = :id AND state = 'active' AND lease_id = :lease_id
RETURNING id, lease_expires_at, cancel_requested;

-- name: job_lease
-- Take up to :max_jobs ready jobs. SKIP LOCKED over the job_ready index lets concurrent leases
-- take disjoint jobs without waiting; jobs go in that index's order (priority, run_at, id).
-- The index holds delayed jobs too (pending with a future run_at), after the ready ones of their
-- priority: one scan over (queue, priority, run_at) would walk every delayed job of a priority to
-- reach the ready jobs of the next (200,000 delayed jobs: 12 ms instead of 0.5). So the lease
-- skips from priority to priority (the `priority` CTE, one index descent each, lazily: it stops
-- once :max_jobs are found) and reads each priority's range run_at <= now() alone. Its cost
-- follows the distinct priorities that hold waiting jobs, never the number of delayed jobs.
-- Paused and rate- or concurrency-limited queues are skipped unless the caller holds the queue's
-- row lock and has sized :max_jobs to the limits (:limits_checked).
WITH RECURSIVE priority AS (
    (SELECT priority FROM job
     WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NULL ORDER BY priority LIMIT 1)
    UNION ALL
    SELECT (SELECT j.priority FROM job j
            WHERE j.queue = :queue AND j.state IN ('pending', 'retrying') AND j.flow_key IS NULL
              AND j.priority > p.priority
            ORDER BY j.priority LIMIT 1)
    FROM priority p WHERE p.priority IS NOT NULL
),
ready AS (
    SELECT r.id FROM priority p CROSS JOIN LATERAL (
        SELECT id FROM job
        WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NULL
          AND priority = p.priority AND run_at <= now()
          AND (CAST(:types AS text[]) IS NULL OR type = ANY(CAST(:types AS text[])))
        ORDER BY run_at, id
        LIMIT :max_jobs
        FOR UPDATE SKIP LOCKED
    ) r
    WHERE CAST(:limits_checked AS boolean) OR NOT EXISTS (
        SELECT 1 FROM queue q WHERE q.name = :queue
          AND (q.paused OR q.max_concurrency IS NOT NULL OR q.rate_limit_per_s IS NOT NULL))
    LIMIT :max_jobs
)
UPDATE job j
SET state = 'active', attempts = j.attempts + 1, lease_id = gen_random_uuid(),
    lease_timeout_s = coalesce(CAST(:visibility_timeout_s AS integer), j.timeout_s),
    lease_expires_at = now() + make_interval(secs => least(coalesce(CAST(:visibility_timeout_s AS integer), j.timeout_s),
                                                           j.heartbeat_timeout_s, j.max_runtime_s)),
    worker_id = :worker_id, started_at = now(), updated_at = now(), progress = NULL, heartbeats = 0
FROM ready
WHERE j.id = ready.id
RETURNING j.*;

-- name: job_lease_each
-- Concurrent leases of one queue in one statement (the lease coalescer). Takes :total ready jobs
-- as job_lease does for an unlimited queue (priority by priority, see there), then deals them out
-- in lease order, taker by taker in input order; each row answers its taker's ordinal.
WITH RECURSIVE priority AS (
    (SELECT priority FROM job
     WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NULL ORDER BY priority LIMIT 1)
    UNION ALL
    SELECT (SELECT j.priority FROM job j
            WHERE j.queue = :queue AND j.state IN ('pending', 'retrying') AND j.flow_key IS NULL
              AND j.priority > p.priority
            ORDER BY j.priority LIMIT 1)
    FROM priority p WHERE p.priority IS NOT NULL
),
ready AS (
    SELECT r.id, p.priority, r.run_at FROM priority p CROSS JOIN LATERAL (
        SELECT id, run_at FROM job
        WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NULL
          AND priority = p.priority AND run_at <= now()
          AND (CAST(:types AS text[]) IS NULL OR type = ANY(CAST(:types AS text[])))
        ORDER BY run_at, id
        LIMIT :total
        FOR UPDATE SKIP LOCKED
    ) r
    WHERE NOT EXISTS (
        SELECT 1 FROM queue q WHERE q.name = :queue
          AND (q.paused OR q.max_concurrency IS NOT NULL OR q.rate_limit_per_s IS NOT NULL))
    LIMIT :total
),
taker AS (
    SELECT t.ord, t.worker_id, sum(t.max_jobs) OVER (ORDER BY t.ord) AS upto
    FROM unnest(CAST(:worker_ids AS text[]), CAST(:max_jobs AS integer[])) WITH ORDINALITY AS t(worker_id, max_jobs, ord)
),
dealt AS (
    SELECT r.id, t.ord, t.worker_id
    FROM (SELECT id, row_number() OVER (ORDER BY priority, run_at, id) AS n FROM ready) r
    CROSS JOIN LATERAL (SELECT ord, worker_id FROM taker WHERE taker.upto >= r.n ORDER BY ord LIMIT 1) t
)
UPDATE job j
SET state = 'active', attempts = j.attempts + 1, lease_id = gen_random_uuid(),
    lease_timeout_s = coalesce(CAST(:visibility_timeout_s AS integer), j.timeout_s),
    lease_expires_at = now() + make_interval(secs => least(coalesce(CAST(:visibility_timeout_s AS integer), j.timeout_s),
                                                           j.heartbeat_timeout_s, j.max_runtime_s)),
    worker_id = d.worker_id, started_at = now(), updated_at = now(), progress = NULL, heartbeats = 0
FROM dealt d
WHERE j.id = d.id
RETURNING d.ord AS taker, j.*;

-- name: job_lease_keyed_fifo_lock
-- Fifo keyed lease, step one: lock the keys of the first :window ready keyed jobs in lease order
-- (priority, run_at, id) that are not paused, at their concurrency limit or out of rate, in the
-- order of their first job. The lock (SKIP LOCKED: concurrent leases take other keys) is what
-- makes per-key limits hold across replicas; step two counts with a snapshot taken after it.
WITH conf AS MATERIALIZED (
    SELECT q.flow_max_concurrency_per_key AS max_per_key, q.flow_rate_max AS rate_max,
           q.flow_rate_per_s AS rate_per_s,
           CAST(:limits_checked AS boolean) OR NOT coalesce(q.paused OR q.max_concurrency IS NOT NULL
                                                            OR q.rate_limit_per_s IS NOT NULL, false) AS open
    FROM (SELECT 1) AS one LEFT JOIN queue q ON q.name = :queue
),
head AS MATERIALIZED (
    SELECT j.flow_key, row_number() OVER (ORDER BY j.priority, j.run_at, j.id) AS pos
    FROM (SELECT flow_key, priority, run_at, id FROM job, conf
          WHERE conf.open AND queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NOT NULL
            AND run_at <= now() AND (CAST(:types AS text[]) IS NULL OR type = ANY(CAST(:types AS text[])))
          ORDER BY priority, run_at, id
          LIMIT :window) AS j
),
head_key AS (
    SELECT flow_key AS key, min(pos) AS first FROM head GROUP BY flow_key
)
SELECT k.key, coalesce(k.max_concurrency, c.max_per_key) AS max_concurrency,
       CASE WHEN k.rate_max IS NOT NULL THEN k.rate_max ELSE c.rate_max END AS rate_max,
       CASE WHEN k.rate_max IS NOT NULL THEN k.rate_per_s ELSE c.rate_per_s END AS rate_per_s
FROM conf c CROSS JOIN head_key h
JOIN queue_key k ON k.queue = :queue AND k.key = h.key
WHERE NOT k.paused AND (k.paused_until IS NULL OR k.paused_until <= now())
  AND (coalesce(k.rate_max, c.rate_max) IS NULL
       OR k.rate_tokens + extract(epoch FROM now() - k.rate_refilled_at)
          * CASE WHEN k.rate_max IS NOT NULL THEN k.rate_max / k.rate_per_s ELSE c.rate_max / c.rate_per_s END >= 1)
  AND (coalesce(k.max_concurrency, c.max_per_key) IS NULL
       OR (SELECT count(*) FROM (
               SELECT 1 FROM job a
               WHERE a.queue = :queue AND a.flow_key = k.key AND a.state = 'active' AND a.flow_key IS NOT NULL
               ORDER BY a.id
               LIMIT coalesce(k.max_concurrency, c.max_per_key)) AS held)
          < coalesce(k.max_concurrency, c.max_per_key))
ORDER BY h.first
LIMIT :max_jobs
FOR UPDATE OF k SKIP LOCKED;

-- name: job_lease_keyed_fifo_take
-- Fifo keyed lease, step two (same transaction, after the lock): the ready jobs of the locked keys
-- and the unkeyed ones in lease order, each key taking no more than its allowance (limit minus its
-- active jobs, counted now; one job when rate-limited). Spends the rate buckets of keys taken from.
WITH turn AS (
    SELECT t.key, t.rate_max, t.rate_per_s,
           least(CAST(:max_jobs AS bigint),
                 CASE WHEN t.max_concurrency IS NULL THEN :max_jobs ELSE t.max_concurrency - act.n END,
                 CASE WHEN t.rate_max IS NULL THEN :max_jobs ELSE 1 END) AS allowance
    FROM unnest(CAST(:keys AS text[]), CAST(:max_concurrencies AS integer[]), CAST(:rate_maxes AS integer[]),
                CAST(:rate_pers_s AS double precision[])) AS t(key, max_concurrency, rate_max, rate_per_s)
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM (
            SELECT 1 FROM job a
            WHERE a.queue = :queue AND a.flow_key = t.key AND a.state = 'active' AND a.flow_key IS NOT NULL
            ORDER BY a.id
            LIMIT coalesce(t.max_concurrency, 0)) AS held
    ) AS act
),
picked AS (
    SELECT id, key, priority, run_at FROM (
        SELECT j.id, j.flow_key AS key, j.priority, j.run_at, t.allowance,
               row_number() OVER (PARTITION BY j.flow_key ORDER BY j.priority, j.run_at, j.id) AS rank
        FROM (SELECT id, flow_key, priority, run_at FROM job
              WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NOT NULL
                AND run_at <= now() AND (CAST(:types AS text[]) IS NULL OR type = ANY(CAST(:types AS text[])))
                AND flow_key = ANY(CAST(:keys AS text[]))
              ORDER BY priority, run_at, id
              LIMIT :window) AS j
        JOIN turn t ON t.key = j.flow_key
    ) AS ranked
    WHERE rank <= allowance
    UNION ALL
    SELECT u.id, NULL, u.priority, u.run_at
    FROM (SELECT id, priority, run_at FROM job
          WHERE queue = :queue AND state IN ('pending', 'retrying')
            AND (CAST(:limits_checked AS boolean) OR NOT EXISTS (
                SELECT 1 FROM queue q WHERE q.name = :queue
                  AND (q.paused OR q.max_concurrency IS NOT NULL OR q.rate_limit_per_s IS NOT NULL)))
            AND flow_key IS NULL AND run_at <= now()
            AND (CAST(:types AS text[]) IS NULL OR type = ANY(CAST(:types AS text[])))
          ORDER BY priority, run_at, id
          LIMIT :max_jobs
          FOR UPDATE SKIP LOCKED) AS u
),
chosen AS (
    SELECT id, key FROM picked ORDER BY priority, run_at, id LIMIT :max_jobs
),
spent AS (
    UPDATE queue_key k
    SET rate_tokens = least(1, k.rate_tokens + extract(epoch FROM now() - k.rate_refilled_at)
                               * t.rate_max / t.rate_per_s) - n.taken,
        rate_refilled_at = now()
    FROM (SELECT key, count(*) AS taken FROM chosen WHERE key IS NOT NULL GROUP BY key) AS n
    JOIN turn t ON t.key = n.key
    WHERE k.queue = :queue AND k.key = n.key AND t.rate_max IS NOT NULL
)
UPDATE job j
SET state = 'active', attempts = j.attempts + 1, lease_id = gen_random_uuid(),
    lease_timeout_s = coalesce(CAST(:visibility_timeout_s AS integer), j.timeout_s),
    lease_expires_at = now() + make_interval(secs => least(coalesce(CAST(:visibility_timeout_s AS integer), j.timeout_s),
                                                           j.heartbeat_timeout_s, j.max_runtime_s)),
    worker_id = :worker_id, started_at = now(), updated_at = now(), progress = NULL, heartbeats = 0
FROM chosen
WHERE j.id = chosen.id AND j.state IN ('pending', 'retrying')
RETURNING j.*;

-- name: job_lease_keyed_lock
-- Round-robin keyed lease, step one: lock up to :max_jobs keys that have a job due and are not
-- paused, at their concurrency limit or out of rate. Keys come from a skip scan of job_ready_keyed
-- (one index probe per distinct key), starting after :after (the last key this process served)
-- and wrapping around, so ready keys take turns: a key with ten jobs is not stuck behind a key
-- with a million. The recursion is lazy: the scan stops once enough keys are locked. The lock
-- (SKIP LOCKED: concurrent leases take other keys) is what makes per-key limits hold across
-- replicas: step two counts each key's active jobs with a snapshot taken after it. Paused and
-- limited queues are skipped unless the caller checked them (:limits_checked).
WITH RECURSIVE
conf AS MATERIALIZED (
    SELECT q.flow_max_concurrency_per_key AS max_per_key, q.flow_rate_max AS rate_max,
           q.flow_rate_per_s AS rate_per_s,
           CAST(:limits_checked AS boolean) OR NOT coalesce(q.paused OR q.max_concurrency IS NOT NULL
                                                            OR q.rate_limit_per_s IS NOT NULL, false) AS open
    FROM (SELECT 1) AS one LEFT JOIN queue q ON q.name = :queue
),
after_cursor AS (
    SELECT min(flow_key) AS key FROM job
    WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NOT NULL AND flow_key > :after
    UNION ALL
    SELECT (SELECT min(j.flow_key) FROM job j
            WHERE j.queue = :queue AND j.state IN ('pending', 'retrying') AND j.flow_key IS NOT NULL
              AND j.flow_key > a.key)
    FROM after_cursor a WHERE a.key IS NOT NULL
),
from_start AS (
    SELECT min(flow_key) AS key FROM job
    WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NOT NULL AND flow_key <= :after
    UNION ALL
    SELECT (SELECT min(j.flow_key) FROM job j
            WHERE j.queue = :queue AND j.state IN ('pending', 'retrying') AND j.flow_key IS NOT NULL
              AND j.flow_key > s.key AND j.flow_key <= :after)
    FROM from_start s WHERE s.key IS NOT NULL
),
candidate AS (
    SELECT key FROM after_cursor WHERE key IS NOT NULL
    UNION ALL
    SELECT key FROM from_start WHERE key IS NOT NULL
)
SELECT k.key, coalesce(k.max_concurrency, c.max_per_key) AS max_concurrency,
       CASE WHEN k.rate_max IS NOT NULL THEN k.rate_max ELSE c.rate_max END AS rate_max,
       CASE WHEN k.rate_max IS NOT NULL THEN k.rate_per_s ELSE c.rate_per_s END AS rate_per_s
FROM conf c CROSS JOIN candidate
JOIN queue_key k ON k.queue = :queue AND k.key = candidate.key
WHERE c.open AND NOT k.paused AND (k.paused_until IS NULL OR k.paused_until <= now())
  AND (coalesce(k.rate_max, c.rate_max) IS NULL
       OR k.rate_tokens + extract(epoch FROM now() - k.rate_refilled_at)
          * CASE WHEN k.rate_max IS NOT NULL THEN k.rate_max / k.rate_per_s ELSE c.rate_max / c.rate_per_s END >= 1)
  -- A scalar subquery with LIMIT, not EXISTS: the planner would turn EXISTS into a join that
  -- reads every ready job of the queue; this probes job_ready_keyed once per candidate key.
  AND (SELECT true FROM job r
       WHERE r.queue = :queue AND r.flow_key = k.key AND r.state IN ('pending', 'retrying')
         AND r.run_at <= now() AND (CAST(:types AS text[]) IS NULL OR r.type = ANY(CAST(:types AS text[])))
       LIMIT 1)
  -- Active jobs counted up to the limit. ORDER BY id is what only job_active_keyed gives without a
  -- sort (lease sessions disable sorts), so the planner never counts through another index of
  -- active jobs that stale statistics make look small.
  AND (coalesce(k.max_concurrency, c.max_per_key) IS NULL
       OR (SELECT count(*) FROM (
               SELECT 1 FROM job a
               WHERE a.queue = :queue AND a.flow_key = k.key AND a.state = 'active' AND a.flow_key IS NOT NULL
               ORDER BY a.id
               LIMIT coalesce(k.max_concurrency, c.max_per_key)) AS held)
          < coalesce(k.max_concurrency, c.max_per_key))
LIMIT :max_jobs
FOR UPDATE OF k SKIP LOCKED;

-- name: job_lease_keyed_scan
-- Round-robin keyed lease of a queue without per-key limits, step one: the keys to take from, as
-- job_lease_keyed_lock finds them but without locking them (nothing is counted, so concurrent
-- leases may share a key: step two takes its jobs with SKIP LOCKED). Keys with a limit are left
-- out, so a queue that gained one since the caller last looked is never leased past it.
WITH RECURSIVE
conf AS MATERIALIZED (
    SELECT q.flow_max_concurrency_per_key AS max_per_key, q.flow_rate_max AS rate_max,
           q.flow_rate_per_s AS rate_per_s,
           CAST(:limits_checked AS boolean) OR NOT coalesce(q.paused OR q.max_concurrency IS NOT NULL
                                                            OR q.rate_limit_per_s IS NOT NULL, false) AS open
    FROM (SELECT 1) AS one LEFT JOIN queue q ON q.name = :queue
),
after_cursor AS (
    SELECT min(flow_key) AS key FROM job
    WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NOT NULL AND flow_key > :after
    UNION ALL
    SELECT (SELECT min(j.flow_key) FROM job j
            WHERE j.queue = :queue AND j.state IN ('pending', 'retrying') AND j.flow_key IS NOT NULL
              AND j.flow_key > a.key)
    FROM after_cursor a WHERE a.key IS NOT NULL
),
from_start AS (
    SELECT min(flow_key) AS key FROM job
    WHERE queue = :queue AND state IN ('pending', 'retrying') AND flow_key IS NOT NULL AND flow_key <= :after
    UNION ALL
    SELECT (SELECT min(j.flow_key) FROM job j
            WHERE j.queue = :queue AND j.state IN ('pending', 'retrying') AND j.flow_key IS NOT NULL
              AND j.flow_key > s.key AND j.flow_key <= :after)
    FROM from_start s WHERE s.key IS NOT NULL
),
candidate AS (
    SELECT key FROM after_cursor WHERE key IS NOT NULL
    UNION ALL
    SELECT key FROM from_start WHERE key IS NOT NULL
)
SELECT k.key, coalesce(k.max_concurrency, c.max_per_key) AS max_concurrency,
       CASE WHEN k.rate_max IS NOT NULL THEN k.rate_max ELSE c.rate_max END AS rate_max,
       CASE WHEN k.rate_max IS NOT NULL THEN k.rate_per_s ELSE c.rate_per_s END AS rate_per_s
FROM conf c CROSS JOIN candidate
JOIN queue_key k ON k.queue = :queue AND k.key = candidate.key
WHERE c.open AND NOT k.paused AND (k.paused_until IS NULL OR k.paused_until <= now())
  AND coalesce(k.rate_max, c.rate_max) IS NULL AND coalesce(k.max_concurrency, c.max_per_key) IS NULL
  -- A scalar subquery with LIMIT, not EXISTS: the planner would turn EXISTS into a join that
  -- reads every ready job of the queue; this probes job_ready_keyed once per candidate key.
  AND (SELECT true FROM job r
       WHERE r.queue = :queue AND r.flow_key = k.key AND r.state IN ('pending', 'retrying')
         AND r.run_at <= now() AND (CAST(:types AS text[]) IS NULL OR r.type = ANY(CAST(:types AS text[])))
       LIMIT 1)
LIMIT :max_jobs;


-- name: job_lease_keyed_take
-- Round-robin keyed lease, step two (after the lock, in its transaction): one job from each key in
-- turn (input order), then a second from each, and so on, each key taking no more than its
-- allowance (limit minus its active jobs, counted now; one job when rate-limited); unkeyed jobs
-- of the queue take turns as one more key, first (a paused or limited queue's only when
-- the caller checked its limits, :limits_checked). Spends the rate buckets of keys taken from.
WITH turn AS (
    -- Each key takes at most its share of :max_jobs, so a lease of 100 over 100 keys reads 100
    -- jobs, not 10,000; a lease over keys short of jobs comes back short rather than read more.
    SELECT t.key, t.ord, t.rate_max, t.rate_per_s,
           least(ceil(CAST(:max_jobs AS double precision) / greatest(cardinality(CAST(:keys AS text[])), 1)),
                 CASE WHEN t.max_concurrency IS NULL THEN :max_jobs ELSE t.max_concurrency - act.n END,
                 CASE WHEN t.rate_max IS NULL THEN :max_jobs ELSE 1 END) AS allowance
    FROM unnest(CAST(:keys AS text[]), CAST(:max_concurrencies AS integer[]), CAST(:rate_maxes AS integer[]),
                CAST(:rate_pers_s AS double precision[])) WITH ORDINALITY
         AS t(key, max_concurrency, rate_max, rate_per_s, ord)
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM (
            SELECT 1 FROM job a
            WHERE a.queue = :queue AND a.flow_key = t.key AND a.state = 'active' AND a.flow_key IS NOT NULL
            ORDER BY a.id
            LIMIT coalesce(t.max_concurrency, 0)) AS held
    ) AS act
),
picked AS (
    SELECT p.id, t.key, p.rank, t.ord
    FROM turn t
    CROSS JOIN LATERAL (
        SELECT f.id, row_number() OVER (ORDER BY f.priority, f.run_at, f.id) AS rank
        FROM (SELECT j.id, j.priority, j.run_at FROM job j
              WHERE j.queue = :queue AND j.flow_key = t.key AND j.state IN ('pending', 'retrying')
                AND j.run_at <= now() AND (CAST(:types AS text[]) IS NULL OR j.type = ANY(CAST(:types AS text[])))
              ORDER BY j.priority, j.run_at, j.id
              LIMIT greatest(t.allowance, 0)
              FOR UPDATE OF j SKIP LOCKED) AS f
    ) AS p
    UNION ALL
    SELECT u.id, NULL, row_number() OVER (ORDER BY u.priority, u.run_at, u.id), 0
    FROM (SELECT id, priority, run_at FROM job
          WHERE queue = :queue AND state IN ('pending', 'retrying')
            AND (CAST(:limits_checked AS boolean) OR NOT EXISTS (
                SELECT 1 FROM queue q WHERE q.name = :queue
                  AND (q.paused OR q.max_concurrency IS NOT NULL OR q.rate_limit_per_s IS NOT NULL)))
            AND flow_key IS NULL AND run_at <= now()
            AND (CAST(:types AS text[]) IS NULL OR type = ANY(CAST(:types AS text[])))
          ORDER BY priority, run_at, id
          LIMIT :max_jobs
          FOR UPDATE SKIP LOCKED) AS u
),
chosen AS (
    SELECT id, key FROM picked ORDER BY rank, ord LIMIT :max_jobs
),
spent AS (
    UPDATE queue_key k
    SET rate_tokens = least(1, k.rate_tokens + extract(epoch FROM now() - k.rate_refilled_at)
                               * t.rate_max / t.rate_per_s) - n.taken,
        rate_refilled_at = now()
    FROM (SELECT key, count(*) AS taken FROM chosen WHERE key IS NOT NULL GROUP BY key) AS n
    JOIN turn t ON t.key = n.key
    WHERE k.queue = :queue AND k.key = n.key AND t.rate_max IS NOT NULL
)
UPDATE job j
SET state = 'active', attempts = j.attempts + 1, lease_id = gen_random_uuid(),
    lease_timeout_s = coalesce(CAST(:visibility_timeout_s AS integer), j.timeout_s),
    lease_expires_at = now() + make_interval(secs => least(coalesce(CAST(:visibility_timeout_s AS integer), j.timeout_s),
                                                           j.heartbeat_timeout_s, j.max_runtime_s)),
    worker_id = :worker_id, started_at = now(), updated_at = now(), progress = NULL, heartbeats = 0
FROM chosen
WHERE j.id = chosen.id AND j.state IN ('pending', 'retrying')
RETURNING j.*;

-- name: job_lease_state
-- Why an ack, nack or heartbeat matched nothing: the job's current state and lease.
SELECT id, state, lease_id FROM job WHERE id = ANY(CAST(:ids AS bigint[]));

-- name: job_list
-- Jobs newest first, every filter optional; keyset pagination on id.
SELECT * FROM job
WHERE (CAST(:queue AS text) IS NULL OR queue = CAST(:queue AS text))
  AND (CAST(:state AS text) IS NULL OR state = CAST(:state AS text))
  AND (CAST(:type AS text) IS NULL OR type = CAST(:type AS text))
  AND (CAST(:correlation_id AS text) IS NULL OR correlation_id = CAST(:correlation_id AS text))
  AND (CAST(:tag AS text) IS NULL OR tags @> ARRAY[CAST(:tag AS text)])
  AND (CAST(:fingerprint AS text) IS NULL OR last_fingerprint = CAST(:fingerprint AS text))
  AND (CAST(:payload_contains AS jsonb) IS NULL OR payload @> CAST(:payload_contains AS jsonb))
  AND (CAST(:error AS text) IS NULL OR job_errors_mention(errors, CAST(:error AS text)))
  AND (CAST(:since AS timestamptz) IS NULL OR coalesce(finished_at, created_at) >= CAST(:since AS timestamptz))
  AND (CAST(:until AS timestamptz) IS NULL OR coalesce(finished_at, created_at) < CAST(:until AS timestamptz))
  AND (CAST(:before_id AS bigint) IS NULL OR id < CAST(:before_id AS bigint))
ORDER BY id DESC
LIMIT :limit;

-- name: job_nack
-- Fail one attempt: retry after backoff (or :retry_in_s), or dead-letter; guarded by the lease.
-- The failure's fingerprint goes into the error history, onto the job and into the ledger row.
WITH nacked AS (
    UPDATE job j
    SET state = job_failure_state(j.cancel_requested, :retryable, j.attempts, j.max_attempts),
        run_at = CASE WHEN job_failure_state(j.cancel_requested, :retryable, j.attempts, j.max_attempts) = 'retrying'
                 THEN now() + make_interval(secs => coalesce(CAST(:retry_in_s AS double precision),
                      job_backoff_s(j.attempts, j.backoff_initial_s, j.backoff_max_s, j.backoff_multiplier,
                                    j.backoff_jitter)))
                 ELSE j.run_at END,
        finished_at = CASE WHEN job_failure_state(j.cancel_requested, :retryable, j.attempts, j.max_attempts) = 'retrying'
                      THEN NULL ELSE now() END,
        lease_expires_at = NULL,
        updated_at = now(),
        last_fingerprint = e.fingerprint,
        errors = job_append_error(j.errors, jsonb_build_object(
            'attempt', j.attempts, 'at', now(), 'worker_id', j.worker_id, 'error', e.error,
            'fingerprint', e.fingerprint), :keep_errors)
    FROM (SELECT CAST(:error AS jsonb) AS error, job_fingerprint(CAST(:error AS jsonb)) AS fingerprint) e
    WHERE j.id = :id AND j.state = 'active' AND j.lease_id = :lease_id
    RETURNING j.*, e.error AS attempt_error
),
ledger AS (
    INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome, error,
                             fingerprint, http_status)
    SELECT id, attempts, worker_id, lease_id, started_at, now(), heartbeats, job_attempt_outcome(state, attempt_error),
           attempt_error, last_fingerprint, CAST(:http_status AS integer)
    FROM nacked WHERE CAST(:ledger AS boolean)
)
SELECT * FROM nacked;

-- name: job_nack_many
-- The batch form of job_nack; answers the ids that were nacked and where they went.
WITH nacked AS (
    UPDATE job j
    SET state = job_failure_state(j.cancel_requested, i.retryable, j.attempts, j.max_attempts),
        run_at = CASE WHEN job_failure_state(j.cancel_requested, i.retryable, j.attempts, j.max_attempts) = 'retrying'
                 THEN now() + make_interval(secs => coalesce(i.retry_in_s,
                      job_backoff_s(j.attempts, j.backoff_initial_s, j.backoff_max_s, j.backoff_multiplier,
                                    j.backoff_jitter)))
                 ELSE j.run_at END,
        finished_at = CASE WHEN job_failure_state(j.cancel_requested, i.retryable, j.attempts, j.max_attempts) = 'retrying'
                      THEN NULL ELSE now() END,
        lease_expires_at = NULL,
        updated_at = now(),
        last_fingerprint = i.fingerprint,
        errors = job_append_error(j.errors, jsonb_build_object(
            'attempt', j.attempts, 'at', now(), 'worker_id', j.worker_id, 'error', i.error,
            'fingerprint', i.fingerprint), :keep_errors)
    FROM (SELECT u.id, u.lease_id, CAST(u.error AS jsonb) AS error, u.retryable, u.retry_in_s,
                 job_fingerprint(CAST(u.error AS jsonb)) AS fingerprint
          FROM unnest(CAST(:ids AS bigint[]), CAST(:lease_ids AS uuid[]), CAST(:errors AS text[]),
                      CAST(:retryables AS boolean[]), CAST(:retry_ins_s AS double precision[]))
               AS u(id, lease_id, error, retryable, retry_in_s)) AS i
    WHERE j.id = i.id AND j.state = 'active' AND j.lease_id = i.lease_id
    RETURNING j.id, j.queue, j.type, j.state, j.started_at, j.worker_id, j.correlation_id, j.attempts, j.lease_id,
              j.heartbeats, j.flow_key, i.error, i.fingerprint
),
ledger AS (
    INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome, error,
                             fingerprint)
    SELECT id, attempts, worker_id, lease_id, started_at, now(), heartbeats, job_attempt_outcome(state, error), error,
           fingerprint
    FROM nacked WHERE CAST(:ledger AS boolean)
)
SELECT id, queue, type, state, started_at, worker_id, correlation_id, attempts, flow_key FROM nacked;

-- name: job_next_run_at
-- When the next delayed job of a queue becomes ready, so a waiting lease can wake for it: the start
-- of the range run_at > now() in job_scheduled (queue, run_at), which holds every waiting job.
SELECT min(run_at) FROM job
WHERE queue = :queue AND state IN ('pending', 'retrying') AND run_at > now();

-- name: job_release
-- Give a leased job back unrun (a worker shutting down): the attempt is returned and no error is
-- recorded. A job whose cancel was requested ends cancelled instead. The ledger keeps the attempt.
WITH released AS (
    UPDATE job
    SET state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,
        attempts = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END,
        run_at = now() + make_interval(secs => coalesce(CAST(:delay_s AS double precision), 0)),
        finished_at = CASE WHEN cancel_requested THEN now() END,
        lease_expires_at = NULL,
        updated_at = now()
    WHERE id = :id AND state = 'active' AND lease_id = :lease_id
    RETURNING *
),
ledger AS (
    INSERT INTO job_attempt (job_id, attempt, worker_id, lease_id, leased_at, ended_at, heartbeats, outcome)
    SELECT id, CASE WHEN state = 'cancelled' THEN attempts ELSE attempts + 1 END, worker_id, lease_id, started_at,
           now(), heartbeats, CASE WHEN state = 'cancelled' THEN 'cancelled' ELSE 'released' END
    FROM released WHERE CAST(:ledger AS boolean)
)
SELECT * FROM released;

-- name: job_replay
-- Send a dead or cancelled job back to pending with fresh attempts; its error history stays.
UPDATE job
SET state = 'pending', attempts = 0, run_at = now(), finished_at = NULL, cancel_requested = false,
    result = NULL, progress = NULL, lease_expires_at = NULL, updated_at = now(),
    replays = replays + 1
WHERE id = :id AND state IN ('dead', 'cancelled')
RETURNING *;

-- name: job_vacuum
-- Reclaim dead row versions and index entries now. SKIP_LOCKED: a replica already vacuuming wins.
VACUUM (SKIP_LOCKED) job;
