-- A notification that a queue gained waiting jobs says how many: "<queue> <count> <time>" (a queue
-- name has no space; the time keeps NOTIFY from folding two equal payloads of one transaction). Each process then wakes at most that many of the long polls waiting on the queue,
-- instead of every one of them (3,000 woken to race for one job). The update trigger's
-- notification (a retry, a release, a replay) still names the queue alone: it wakes one, which
-- passes the wake-up on when it takes a full batch.
CREATE OR REPLACE FUNCTION job_notify_ready() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ready record;
BEGIN
    FOR ready IN
        SELECT queue, count(*) AS jobs FROM changed WHERE state IN ('pending', 'retrying') GROUP BY queue
    LOOP
        PERFORM pg_notify('jobbroker_ready', ready.queue || ' ' || ready.jobs || ' ' || clock_timestamp());
    END LOOP;
    RETURN NULL;
END
$$;
