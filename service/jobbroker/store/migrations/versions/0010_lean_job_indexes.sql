-- job_scheduled (queue, run_at) over waiting jobs repeated job_ready (queue, priority, run_at, id):
-- one more index entry written for every enqueue and every retry, and only job_next_run_at read
-- it, which now skips over job_ready's priorities instead. It also tempted the planner: a lease
-- could read it in run_at order and sort each run_at's jobs by id (an incremental sort) instead
-- of reading job_ready in lease order.
DROP INDEX IF EXISTS job_scheduled;
