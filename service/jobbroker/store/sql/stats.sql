-- name: stats_queue_depth
-- Live jobs per queue and state, for the metrics gauges. Each arm's WHERE matches one partial index
-- (job_scheduled, job_lease_expiry, job_dead), so the succeeded and cancelled jobs kept for retention,
-- usually the bulk of the table, are never read. Configured queues without live jobs answer zeros.
-- Dead jobs also count their fingerprint groups and the largest one (job_dead_fingerprint).
SELECT queue, state, count(*) AS jobs,
       count(*) FILTER (WHERE run_at <= now()) AS ready,
       coalesce(max(extract(epoch FROM now() - run_at)) FILTER (WHERE run_at <= now()), 0) AS oldest_ready_age_s,
       0 AS dlq_groups, 0 AS dlq_largest_group
FROM job WHERE state IN ('pending', 'retrying') GROUP BY queue, state
UNION ALL
SELECT queue, 'active', count(*), 0, 0, 0, 0 FROM job WHERE state = 'active' GROUP BY queue
UNION ALL
SELECT queue, 'dead', sum(n), 0, 0, count(*), max(n)
FROM (SELECT queue, last_fingerprint, count(*) AS n FROM job WHERE state = 'dead' GROUP BY queue, last_fingerprint) AS g
GROUP BY queue
UNION ALL
SELECT name, 'pending', 0, 0, 0, 0, 0 FROM queue;

-- name: stats_queue_keys
-- Flow keys per queue (never per key: keys are unbounded): keys with jobs leasable now, keys at
-- their concurrency limit, and keys paused. Each arm reads one keyed partial index or queue_key.
WITH ready AS (
    SELECT queue, count(DISTINCT flow_key) AS n FROM job
    WHERE state IN ('pending', 'retrying') AND flow_key IS NOT NULL AND run_at <= now()
    GROUP BY queue
),
held AS (
    SELECT queue, flow_key, count(*) AS n FROM job
    WHERE state = 'active' AND flow_key IS NOT NULL
    GROUP BY queue, flow_key
),
at_limit AS (
    SELECT h.queue, count(*) AS n
    FROM held h
    JOIN queue_key k ON k.queue = h.queue AND k.key = h.flow_key
    LEFT JOIN queue q ON q.name = h.queue
    WHERE h.n >= coalesce(k.max_concurrency, q.flow_max_concurrency_per_key)
    GROUP BY h.queue
),
paused AS (
    SELECT queue, count(*) AS n FROM queue_key WHERE paused OR paused_until > now() GROUP BY queue
)
SELECT queue, coalesce(r.n, 0) AS keys_ready, coalesce(l.n, 0) AS keys_at_limit, coalesce(p.n, 0) AS keys_paused
FROM (SELECT queue FROM ready UNION SELECT queue FROM at_limit UNION SELECT queue FROM paused) AS queues
LEFT JOIN ready r USING (queue)
LEFT JOIN at_limit l USING (queue)
LEFT JOIN paused p USING (queue);
