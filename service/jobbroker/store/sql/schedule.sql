-- name: schedule_advance
-- Move a schedule past the fire time it just acted on. Comparing next_run_at makes this a
-- compare-and-set: of two replicas that fired the same time, one advances it.
UPDATE schedule
SET next_run_at = :next_run_at, last_run_at = :fired_at, last_job_id = :job_id, updated_at = now()
WHERE name = :name AND next_run_at = :fired_at;

-- name: schedule_create
-- A new schedule; a name already taken inserts nothing (0 rows). A payload of JSON null arrives
-- as SQL NULL: it is stored as the JSON value null.
INSERT INTO schedule (name, cron, timezone, queue, type, payload, priority, max_attempts, timeout_s, paused,
                      next_run_at)
VALUES (:name, :cron, :timezone, :queue, :type, coalesce(:payload, CAST('null' AS jsonb)), :priority, :max_attempts,
        :timeout_s, :paused, :next_run_at)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: schedule_delete
-- Remove a schedule; jobs it already enqueued stay.
DELETE FROM schedule WHERE name = :name RETURNING name;

-- name: schedule_due
-- Schedules whose fire time has come, oldest first.
SELECT * FROM schedule WHERE NOT paused AND next_run_at <= now() ORDER BY next_run_at LIMIT :limit;

-- name: schedule_get
-- One schedule by name.
SELECT * FROM schedule WHERE name = :name;

-- name: schedule_list
-- Every schedule, by name.
SELECT * FROM schedule ORDER BY name;

-- name: schedule_postpone
-- Move a schedule whose fire failed (a payload over the limit, a zone no longer known) to a later
-- time without recording a run; a compare-and-set as schedule_advance.
UPDATE schedule SET next_run_at = :next_run_at, updated_at = now()
WHERE name = :name AND next_run_at = :fired_at;

-- name: schedule_update
-- Replace a schedule's settings (the caller merged the change and computed next_run_at); a payload
-- of JSON null arrives as SQL NULL.
UPDATE schedule
SET cron = :cron, timezone = :timezone, queue = :queue, type = :type,
    payload = coalesce(:payload, CAST('null' AS jsonb)), priority = :priority, max_attempts = :max_attempts,
    timeout_s = :timeout_s, paused = :paused, next_run_at = :next_run_at, updated_at = now()
WHERE name = :name
RETURNING *;
