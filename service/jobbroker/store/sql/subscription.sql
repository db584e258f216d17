-- name: subscription_active_count
-- Jobs a subscription's deliveries hold right now, in every replica. Run after subscription_lock,
-- as its own statement: in READ COMMITTED it then sees leases committed before the lock was granted.
SELECT count(*) FROM job WHERE queue = :queue AND state = 'active' AND worker_id = :worker_id;

-- name: subscription_create
-- Store a new subscription; answers it, secret included.
INSERT INTO subscription (queue, url, types, secret, max_concurrency, timeout_s, paused, description)
VALUES (:queue, :url, CAST(:types AS text[]), :secret, :max_concurrency, :timeout_s, :paused, :description)
RETURNING *;

-- name: subscription_delete
-- Remove a subscription; jobs it holds finish their current delivery.
DELETE FROM subscription WHERE id = :id RETURNING id;

-- name: subscription_enabled
-- Subscriptions a dispatcher should deliver for.
SELECT id, queue FROM subscription WHERE NOT paused ORDER BY id;

-- name: subscription_get
-- One subscription by id.
SELECT * FROM subscription WHERE id = :id;

-- name: subscription_in_flight
-- Deliveries under way: the subscription's active jobs (job_active_worker).
SELECT count(*) FROM job WHERE state = 'active' AND queue = :queue AND worker_id = :worker_id;

-- name: subscription_list
-- Subscriptions oldest first, optionally of one queue; keyset pagination on id.
SELECT * FROM subscription
WHERE (CAST(:queue AS text) IS NULL OR queue = CAST(:queue AS text))
  AND (CAST(:after_id AS bigint) IS NULL OR id > CAST(:after_id AS bigint))
ORDER BY id
LIMIT :limit;

-- name: subscription_lock
-- Serialize one subscription's claims across replicas (the row lock is held until the caller's
-- lease has committed), answering its current settings and the secrets deliveries are signed with.
SELECT id, queue, url, types, max_concurrency, timeout_s, paused,
       array_remove(ARRAY[secret, CASE WHEN previous_secret_expires_at > now() THEN previous_secret END],
                    NULL) AS signing_secrets
FROM subscription
WHERE id = :id
FOR UPDATE;

-- name: subscription_recent_deliveries
-- A subscription's latest deliveries, newest first, from two bounded reads: the broker's
-- :scan most recently finished jobs (the job_finished index, so a quiet subscription costs no
-- more than a busy one) and its queue's retrying jobs (job_ready's partial index), of which
-- those its worker id last handled.
SELECT state, at, failure ->> 'type' AS error_type, failure ->> 'message' AS error_message,
       failure -> 'details' ->> 'status' AS http_status
FROM (
    SELECT queue, worker_id, state, finished_at AS at, errors -> -1 -> 'error' AS failure
    FROM job
    WHERE state IN ('succeeded', 'dead', 'cancelled')
    ORDER BY finished_at DESC
    LIMIT :scan
) AS finished
WHERE queue = :queue AND worker_id = :worker_id AND state <> 'cancelled'
UNION ALL
SELECT state, updated_at, errors -> -1 -> 'error' ->> 'type', errors -> -1 -> 'error' ->> 'message',
       errors -> -1 -> 'error' -> 'details' ->> 'status'
FROM job
WHERE queue = :queue AND state = 'retrying' AND worker_id = :worker_id
ORDER BY at DESC
LIMIT :limit;

-- name: subscription_rotate_secret
-- Replace the secret; the old one keeps signing alongside until :overlap_s from now (0: not at all).
UPDATE subscription
SET previous_secret = CASE WHEN CAST(:overlap_s AS integer) > 0 THEN secret END,
    previous_secret_expires_at = CASE WHEN CAST(:overlap_s AS integer) > 0
                                 THEN now() + make_interval(secs => CAST(:overlap_s AS integer)) END,
    secret = :secret,
    secret_rotated_at = now(),
    updated_at = now()
WHERE id = :id
RETURNING *;

-- name: subscription_update
-- Change some settings; a false :set_x flag leaves x as it was.
UPDATE subscription
SET url = CASE WHEN :set_url THEN CAST(:url AS text) ELSE url END,
    types = CASE WHEN :set_types THEN CAST(:types AS text[]) ELSE types END,
    max_concurrency = CASE WHEN :set_max_concurrency THEN CAST(:max_concurrency AS integer)
                      ELSE max_concurrency END,
    timeout_s = CASE WHEN :set_timeout_s THEN CAST(:timeout_s AS integer) ELSE timeout_s END,
    paused = CASE WHEN :set_paused THEN CAST(:paused AS boolean) ELSE paused END,
    description = CASE WHEN :set_description THEN CAST(:description AS text) ELSE description END,
    updated_at = now()
WHERE id = :id
RETURNING *;
