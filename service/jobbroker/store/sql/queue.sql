-- name: queue_configs
-- Settings of queues an operator configured (all, or one).
SELECT * FROM queue WHERE CAST(:name AS text) IS NULL OR name = CAST(:name AS text) ORDER BY name;

-- name: queue_counts_finished
-- Exact finished (succeeded, cancelled) jobs per queue: a scan of them, so only while the table is small.
SELECT queue, state, count(*) AS n
FROM job
WHERE state IN ('succeeded', 'cancelled') AND (CAST(:name AS text) IS NULL OR queue = CAST(:name AS text))
GROUP BY queue, state;

-- name: queue_counts_live
-- Live and dead jobs per queue and state, with the oldest ready job's run_at. Each arm's WHERE
-- matches a partial index (job_ready, job_lease_expiry, job_dead), so the finished jobs kept for
-- retention, usually the bulk of the table, are never read.
SELECT queue, state, count(*) AS n, min(run_at) FILTER (WHERE run_at <= now()) AS oldest_ready_at
FROM job
WHERE state IN ('pending', 'retrying') AND (CAST(:name AS text) IS NULL OR queue = CAST(:name AS text))
GROUP BY queue, state
UNION ALL
SELECT queue, 'active', count(*), NULL
FROM job WHERE state = 'active' AND (CAST(:name AS text) IS NULL OR queue = CAST(:name AS text))
GROUP BY queue
UNION ALL
SELECT queue, 'dead', count(*), NULL
FROM job WHERE state = 'dead' AND (CAST(:name AS text) IS NULL OR queue = CAST(:name AS text))
GROUP BY queue;

-- name: queue_estimate_finished
-- The planner's statistics of the job table, for estimated finished counts: its row count, each
-- common queue's share of the rows, and the shares of the finished states among them. Counting
-- finished jobs exactly would read most of a big table.
WITH rel AS (
    SELECT c.oid, n.nspname, c.relname,
           CASE WHEN c.reltuples >= 0 THEN c.reltuples ELSE pg_relation_size(c.oid) / 8192 * 60 END AS rows
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = CAST('job' AS regclass)
), shares AS (
    SELECT s.attname, m.value, m.share
    FROM rel JOIN pg_stats s ON s.schemaname = rel.nspname AND s.tablename = rel.relname
    CROSS JOIN LATERAL unnest(CAST(CAST(s.most_common_vals AS text) AS text[]), s.most_common_freqs) AS m(value, share)
    WHERE s.attname IN ('queue', 'state')
)
SELECT rel.rows,
       coalesce((SELECT array_agg(value ORDER BY value) FROM shares WHERE attname = 'queue'), '{}') AS queues,
       coalesce((SELECT array_agg(share ORDER BY value) FROM shares WHERE attname = 'queue'), '{}') AS queue_shares,
       coalesce((SELECT array_agg(value ORDER BY value) FROM shares WHERE attname = 'state'), '{}') AS states,
       coalesce((SELECT array_agg(share ORDER BY value) FROM shares WHERE attname = 'state'), '{}') AS state_shares
FROM rel;

-- name: queue_flow
-- A queue's fairness, for the keyed lease.
SELECT flow_fairness FROM queue WHERE name = :name;

-- name: queue_lock_limits
-- Serialize leases of a limited queue: lock its row and refill its rate-limit bucket.
-- The bucket holds at most one second of tokens, so a burst is never more than the rate.
-- Active jobs are counted by a later statement: this one's snapshot predates the lock wait.
UPDATE queue
SET rate_tokens = CASE WHEN rate_limit_per_s IS NULL THEN 0
                  ELSE least(rate_limit_per_s, rate_tokens
                             + rate_limit_per_s * extract(epoch FROM now() - rate_refilled_at)) END,
    rate_refilled_at = now()
WHERE name = :name AND NOT paused AND (max_concurrency IS NOT NULL OR rate_limit_per_s IS NOT NULL)
RETURNING max_concurrency, rate_limit_per_s, rate_tokens;

-- name: queue_spend_tokens
-- Take the leased count out of the rate-limit bucket.
UPDATE queue SET rate_tokens = rate_tokens - :spent WHERE name = :name;

-- name: queue_throughput
-- One queue's finished jobs per minute over the last :minutes minutes (the current one included),
-- succeeded and dead, every minute present. The job_finished index (finished_at of finished jobs)
-- bounds the read to the window instead of the queue's whole history.
WITH bucket AS (
    SELECT generate_series(
        date_bin(interval '1 minute', now() - make_interval(mins => CAST(:minutes AS integer) - 1), TIMESTAMPTZ '2000-01-01Z'),
        date_bin(interval '1 minute', now(), TIMESTAMPTZ '2000-01-01Z'),
        interval '1 minute') AS start
), finished AS (
    SELECT date_bin(interval '1 minute', finished_at, TIMESTAMPTZ '2000-01-01Z') AS start,
           count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE state = 'dead') AS failed
    FROM job
    WHERE state IN ('succeeded', 'dead', 'cancelled') AND queue = :name
      AND finished_at >= (SELECT min(start) FROM bucket)
    GROUP BY 1
)
SELECT bucket.start, coalesce(finished.succeeded, 0) AS succeeded, coalesce(finished.failed, 0) AS failed
FROM bucket LEFT JOIN finished USING (start)
ORDER BY bucket.start;

-- name: queue_upsert
-- Change some of a queue's settings; a false :set_x flag leaves x as it was.
INSERT INTO queue AS q (name, paused, max_concurrency, rate_limit_per_s, rate_tokens, default_max_attempts,
                        default_backoff, retention_s, dead_retention_s, flow_max_concurrency_per_key,
                        flow_rate_max, flow_rate_per_s, flow_fairness, default_visibility_timeout_s,
                        default_heartbeat_timeout_s, default_max_runtime_s)
VALUES (:name, coalesce(CAST(:paused AS boolean), false), :max_concurrency, :rate_limit_per_s,
        coalesce(CAST(:rate_limit_per_s AS double precision), 0), :default_max_attempts,
        :default_backoff, :retention_s, :dead_retention_s, :flow_max_concurrency_per_key,
        :flow_rate_max, :flow_rate_per_s, coalesce(CAST(:flow_fairness AS text), 'round_robin'),
        :default_visibility_timeout_s, :default_heartbeat_timeout_s, :default_max_runtime_s)
ON CONFLICT (name) DO UPDATE SET
    paused = CASE WHEN :set_paused THEN coalesce(CAST(:paused AS boolean), false) ELSE q.paused END,
    max_concurrency = CASE WHEN :set_max_concurrency THEN EXCLUDED.max_concurrency ELSE q.max_concurrency END,
    rate_limit_per_s = CASE WHEN :set_rate_limit THEN EXCLUDED.rate_limit_per_s ELSE q.rate_limit_per_s END,
    default_max_attempts = CASE WHEN :set_default_max_attempts THEN EXCLUDED.default_max_attempts
                           ELSE q.default_max_attempts END,
    default_backoff = CASE WHEN :set_default_backoff THEN EXCLUDED.default_backoff ELSE q.default_backoff END,
    retention_s = CASE WHEN :set_retention THEN EXCLUDED.retention_s ELSE q.retention_s END,
    dead_retention_s = CASE WHEN :set_dead_retention THEN EXCLUDED.dead_retention_s ELSE q.dead_retention_s END,
    flow_max_concurrency_per_key = CASE WHEN :set_flow_max_concurrency_per_key
                                   THEN EXCLUDED.flow_max_concurrency_per_key ELSE q.flow_max_concurrency_per_key END,
    flow_rate_max = CASE WHEN :set_flow_rate_limit_per_key THEN EXCLUDED.flow_rate_max ELSE q.flow_rate_max END,
    flow_rate_per_s = CASE WHEN :set_flow_rate_limit_per_key THEN EXCLUDED.flow_rate_per_s ELSE q.flow_rate_per_s END,
    flow_fairness = CASE WHEN :set_flow_fairness THEN EXCLUDED.flow_fairness ELSE q.flow_fairness END,
    default_visibility_timeout_s = CASE WHEN :set_default_visibility_timeout
                                   THEN EXCLUDED.default_visibility_timeout_s ELSE q.default_visibility_timeout_s END,
    default_heartbeat_timeout_s = CASE WHEN :set_default_heartbeat_timeout
                                  THEN EXCLUDED.default_heartbeat_timeout_s ELSE q.default_heartbeat_timeout_s END,
    default_max_runtime_s = CASE WHEN :set_default_max_runtime
                            THEN EXCLUDED.default_max_runtime_s ELSE q.default_max_runtime_s END,
    updated_at = now()
RETURNING *;
