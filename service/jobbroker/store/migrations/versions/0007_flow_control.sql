-- A job's flow key (tenant, customer, endpoint) and two of its clocks; the third, the visibility
-- timeout, is timeout_s. NOT VALID: the new columns are all NULL, so there is nothing to check.
ALTER TABLE job
    ADD COLUMN flow_key text,
    ADD COLUMN heartbeat_timeout_s integer,
    ADD COLUMN max_runtime_s integer;
ALTER TABLE job
    ADD CONSTRAINT job_flow_key_length CHECK (char_length(flow_key) BETWEEN 1 AND 200) NOT VALID,
    ADD CONSTRAINT job_heartbeat_timeout_positive CHECK (heartbeat_timeout_s > 0) NOT VALID,
    ADD CONSTRAINT job_max_runtime_positive CHECK (max_runtime_s > 0) NOT VALID;

-- Per-key defaults of a queue, and its defaults for the three clocks.
ALTER TABLE queue
    ADD COLUMN flow_max_concurrency_per_key integer CHECK (flow_max_concurrency_per_key > 0),
    ADD COLUMN flow_rate_max integer CHECK (flow_rate_max > 0),
    ADD COLUMN flow_rate_per_s double precision CHECK (flow_rate_per_s > 0),
    ADD COLUMN flow_fairness text NOT NULL DEFAULT 'round_robin' CHECK (flow_fairness IN ('round_robin', 'fifo')),
    ADD COLUMN default_visibility_timeout_s integer CHECK (default_visibility_timeout_s > 0),
    ADD COLUMN default_heartbeat_timeout_s integer CHECK (default_heartbeat_timeout_s > 0),
    ADD COLUMN default_max_runtime_s integer CHECK (default_max_runtime_s > 0),
    ADD CONSTRAINT queue_flow_rate_whole CHECK ((flow_rate_max IS NULL) = (flow_rate_per_s IS NULL));

-- One row per flow key of a queue: its overrides, its pause, its rate bucket. A lease of a key's
-- jobs holds its row lock while it counts the key's active jobs and takes some, so per-key limits
-- hold across replicas.
CREATE TABLE queue_key (
    queue text NOT NULL,
    key text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 200),
    max_concurrency integer CHECK (max_concurrency > 0),
    rate_max integer CHECK (rate_max > 0),
    rate_per_s double precision CHECK (rate_per_s > 0),
    paused boolean NOT NULL DEFAULT false,
    paused_until timestamptz,
    rate_tokens double precision NOT NULL DEFAULT 1,
    rate_refilled_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, key),
    CONSTRAINT queue_key_rate_whole CHECK ((rate_max IS NULL) = (rate_per_s IS NULL))
);

-- Keys with limits of their own: whether a queue's keyed leases must lock keys (job_flow_mode).
CREATE INDEX queue_key_limited ON queue_key (queue) WHERE max_concurrency IS NOT NULL OR rate_max IS NOT NULL;

-- The unkeyed lease path keeps its index, now without keyed jobs: a queue without keys reads it
-- exactly as before, and the unkeyed statement can never take a keyed job past its key's limits.
DROP INDEX job_ready;
CREATE INDEX job_ready ON job (queue, priority, run_at, id)
    WHERE state IN ('pending', 'retrying') AND flow_key IS NULL;
-- Keyed ready jobs by key: the round-robin lease skip-scans it for the distinct ready keys and takes
-- each key's next jobs in lease order.
CREATE INDEX job_ready_keyed ON job (queue, flow_key, priority, run_at, id)
    WHERE state IN ('pending', 'retrying') AND flow_key IS NOT NULL;
-- Keyed ready jobs in lease order, for fifo fairness.
CREATE INDEX job_ready_keyed_fifo ON job (queue, priority, run_at, id)
    WHERE state IN ('pending', 'retrying') AND flow_key IS NOT NULL;
-- Active jobs per key, counted against the key's concurrency limit.
CREATE INDEX job_active_keyed ON job (queue, flow_key, id) WHERE state = 'active' AND flow_key IS NOT NULL;

-- Every key of an inserted job gets its queue_key row, so a lease always has a row to lock.
-- Statement-level, on the transition table the ready notification already captures; in key
-- order, so concurrent batches insert new keys without deadlocking.
-- Its search_path is the schema it was made in: an application's transaction may insert jobs
-- (jobbroker.enqueue) with a search_path that does not name the broker's schema.
CREATE FUNCTION job_register_keys() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO queue_key (queue, key)
    SELECT DISTINCT queue, flow_key FROM changed WHERE flow_key IS NOT NULL ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_register_keys AFTER INSERT ON job
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION job_register_keys();
