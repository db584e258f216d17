-- name: stats_queue_depth
-- Live jobs per queue and state, for the metrics gauges. Each arm's WHERE matches one partial index
-- (job_ready, job_lease_expiry, job_dead), so the succeeded and cancelled jobs kept for retention,
-- usually the bulk of the table, are never read. Configured queues without live jobs answer zeros.
SELECT queue, state, count(*) AS jobs,
       count(*) FILTER (WHERE run_at <= now()) AS ready,
       coalesce(max(extract(epoch FROM now() - run_at)) FILTER (WHERE run_at <= now()), 0) AS oldest_ready_age_s
FROM job WHERE state IN ('pending', 'retrying') GROUP BY queue, state
UNION ALL
SELECT queue, 'active', count(*), 0, 0 FROM job WHERE state = 'active' GROUP BY queue
UNION ALL
SELECT queue, 'dead', count(*), 0, 0 FROM job WHERE state = 'dead' GROUP BY queue
UNION ALL
SELECT name, 'pending', 0, 0, 0 FROM queue;
