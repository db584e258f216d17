-- name: queue_configs
-- Settings of queues an operator configured (all, or one).
SELECT * FROM queue WHERE CAST(:name AS text) IS NULL OR name = CAST(:name AS text) ORDER BY name;

-- name: queue_counts
-- Jobs per queue and state, with the oldest ready job's run_at and the next delayed one.
SELECT queue, state, count(*) AS n,
       min(run_at) FILTER (WHERE state IN ('pending', 'retrying') AND run_at <= now()) AS oldest_ready_at
FROM job
WHERE CAST(:name AS text) IS NULL OR queue = CAST(:name AS text)
GROUP BY queue, state
ORDER BY queue;

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
