-- Leases and acks update many rows and never make a job ready, yet the statement-level update
-- trigger copied every row they touched into a transition table to find that out (about a sixth
-- of a 100-job lease). A row trigger whose WHEN clause picks only rows left pending or retrying
-- costs those statements nothing; NOTIFY folds a transaction's repeats of one queue into one.
DROP TRIGGER job_notify_ready_update ON job;

CREATE FUNCTION job_notify_ready_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobbroker_ready', NEW.queue);
    RETURN NULL;
END
$$;

CREATE TRIGGER job_notify_ready_update AFTER UPDATE ON job
    FOR EACH ROW WHEN (NEW.state IN ('pending', 'retrying')) EXECUTE FUNCTION job_notify_ready_row();
