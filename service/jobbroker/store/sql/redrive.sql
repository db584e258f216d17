-- name: redrive_cancel
-- Stop a running redrive; the jobs it had not reached stay dead.
WITH cancelled AS (
    UPDATE redrive SET state = 'cancelled', finished_at = now(), updated_at = now()
    WHERE id = :id AND state = 'running'
    RETURNING *
),
dropped AS (
    DELETE FROM redrive_item WHERE redrive_id IN (SELECT id FROM cancelled)
)
SELECT * FROM cancelled;

-- name: redrive_claim
-- The running redrive whose next batch is due. The row lock is the claim: held for one batch's
-- transaction, released by its commit or, should the replica die, by Postgres ending the session.
-- SKIP LOCKED: another replica's batch in progress is passed over, not waited for.
SELECT id, rate_per_s FROM redrive
WHERE state = 'running' AND next_batch_at <= now()
ORDER BY next_batch_at
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: redrive_create
-- A new redrive; its items and total follow in the same transaction.
INSERT INTO redrive (filter, target_queue, payload_patch, rate_per_s, total, actor)
VALUES (CAST(:filter AS jsonb), :target_queue, CAST(:payload_patch AS jsonb), :rate_per_s, 0, :actor)
RETURNING id;

-- name: redrive_fail
-- A batch that failed for a reason a retry cannot fix ends the redrive.
UPDATE redrive SET state = 'failed', error = :error, finished_at = now(), updated_at = now()
WHERE id = :id AND state = 'running';

-- name: redrive_get
-- One redrive.
SELECT * FROM redrive WHERE id = :id;

-- name: redrive_set_total
-- The number of jobs frozen into a redrive at creation; one with none is done at once.
UPDATE redrive
SET total = :total,
    state = CASE WHEN :total = 0 THEN 'done' ELSE state END,
    finished_at = CASE WHEN :total = 0 THEN now() END
WHERE id = :id
RETURNING *;

-- name: redrive_step
-- One batch of a claimed redrive, all in this statement: take up to :batch items off the frozen
-- set, replay those of their jobs still dead (into the target queue, with the payload patched),
-- and count them. Committed together, so no job is replayed twice or skipped by a crash.
WITH r AS (
    SELECT * FROM redrive WHERE id = :id AND state = 'running'
),
taken AS (
    DELETE FROM redrive_item
    WHERE redrive_id = :id
      AND job_id IN (SELECT job_id FROM redrive_item WHERE redrive_id = :id ORDER BY job_id LIMIT CAST(:batch AS integer))
      AND EXISTS (SELECT 1 FROM r)
    RETURNING job_id
),
revived AS (
    UPDATE job j
    SET state = 'pending', attempts = 0, run_at = now(), finished_at = NULL, cancel_requested = false,
        result = NULL, progress = NULL, lease_expires_at = NULL, updated_at = now(), replays = j.replays + 1,
        queue = coalesce(r.target_queue, j.queue),
        payload = CASE WHEN r.payload_patch IS NULL THEN j.payload ELSE job_merge_patch(j.payload, r.payload_patch) END
    FROM taken, r
    WHERE j.id = taken.job_id AND j.state = 'dead'
    RETURNING j.queue
),
progressed AS (
    UPDATE redrive
    SET done = done + (SELECT count(*) FROM taken),
        replayed = replayed + (SELECT count(*) FROM revived),
        state = CASE WHEN (SELECT count(*) FROM taken) < CAST(:batch AS integer) THEN 'done' ELSE 'running' END,
        finished_at = CASE WHEN (SELECT count(*) FROM taken) < CAST(:batch AS integer) THEN now() END,
        -- The rate: the next batch is due a batch's worth of time after this one was, with at most
        -- half a second of lateness made up.
        next_batch_at = CASE WHEN rate_per_s IS NULL THEN now()
                        ELSE greatest(next_batch_at, now() - interval '0.5 seconds')
                             + make_interval(secs => CAST(:batch AS integer) / rate_per_s) END,
        updated_at = now()
    WHERE id = :id AND state = 'running'
    RETURNING *
)
SELECT p.*,
       ARRAY(SELECT queue FROM revived GROUP BY queue ORDER BY queue) AS moved_queues,
       ARRAY(SELECT count(*) FROM revived GROUP BY queue ORDER BY queue) AS moved_counts
FROM progressed p;
