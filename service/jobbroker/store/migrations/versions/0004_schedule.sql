-- Recurring jobs. next_run_at is the fire time the cron ticker acts on next; it is computed from
-- the cron expression in Python (cronsim) and advanced with a compare-and-set.
CREATE TABLE schedule (
    name text PRIMARY KEY,
    cron text NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC',
    queue text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    priority integer NOT NULL DEFAULT 0,
    max_attempts integer CHECK (max_attempts BETWEEN 1 AND 1000),
    timeout_s integer CHECK (timeout_s > 0),
    paused boolean NOT NULL DEFAULT false,
    next_run_at timestamptz NOT NULL,
    last_run_at timestamptz,
    last_job_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX schedule_due ON schedule (next_run_at) WHERE NOT paused;
