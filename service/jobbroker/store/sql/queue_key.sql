-- name: queue_key_get
-- One key of a queue with its ready and active jobs and its queue's per-key defaults.
SELECT k.*,
       (SELECT count(*) FROM job r WHERE r.queue = k.queue AND r.flow_key = k.key
          AND r.state IN ('pending', 'retrying') AND r.flow_key IS NOT NULL AND r.run_at <= now()) AS ready,
       (SELECT count(*) FROM job a WHERE a.queue = k.queue AND a.flow_key = k.key
          AND a.state = 'active' AND a.flow_key IS NOT NULL) AS active,
       now() AS now
FROM queue_key k
WHERE k.queue = :queue AND k.key = :key;

-- name: queue_key_list
-- Keys of a queue in key order after :after (keyset pagination), with their ready and active jobs.
SELECT k.*,
       (SELECT count(*) FROM job r WHERE r.queue = k.queue AND r.flow_key = k.key
          AND r.state IN ('pending', 'retrying') AND r.flow_key IS NOT NULL AND r.run_at <= now()) AS ready,
       (SELECT count(*) FROM job a WHERE a.queue = k.queue AND a.flow_key = k.key
          AND a.state = 'active' AND a.flow_key IS NOT NULL) AS active,
       now() AS now
FROM queue_key k
WHERE k.queue = :queue AND (CAST(:after AS text) IS NULL OR k.key > CAST(:after AS text))
ORDER BY k.key
LIMIT :limit;

-- name: queue_key_pause_for
-- Backpressure from a nack: hold the key of each nacked job for its retry delay (seconds).
UPDATE queue_key k
SET paused_until = greatest(k.paused_until, now() + make_interval(secs => p.pause_s)), updated_at = now()
FROM (SELECT queue, key, max(pause_s) AS pause_s
      FROM unnest(CAST(:queues AS text[]), CAST(:keys AS text[]), CAST(:pauses_s AS double precision[]))
           AS i(queue, key, pause_s)
      GROUP BY queue, key ORDER BY queue, key) p
WHERE k.queue = p.queue AND k.key = p.key;

-- name: queue_key_upsert
-- Change some of a key's settings; a false :set_x flag leaves x as it was. A new rate starts full.
INSERT INTO queue_key AS k (queue, key, max_concurrency, rate_max, rate_per_s, paused, paused_until)
VALUES (:queue, :key, :max_concurrency, :rate_max, :rate_per_s, coalesce(CAST(:paused AS boolean), false),
        :paused_until)
ON CONFLICT (queue, key) DO UPDATE SET
    max_concurrency = CASE WHEN :set_max_concurrency THEN EXCLUDED.max_concurrency ELSE k.max_concurrency END,
    rate_max = CASE WHEN :set_rate_limit THEN EXCLUDED.rate_max ELSE k.rate_max END,
    rate_per_s = CASE WHEN :set_rate_limit THEN EXCLUDED.rate_per_s ELSE k.rate_per_s END,
    rate_tokens = CASE WHEN :set_rate_limit THEN 1 ELSE k.rate_tokens END,
    paused = CASE WHEN :set_paused THEN EXCLUDED.paused ELSE k.paused END,
    paused_until = CASE WHEN :set_paused_until THEN EXCLUDED.paused_until ELSE k.paused_until END,
    updated_at = now();
