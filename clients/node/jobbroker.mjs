// A dependency-free jobbroker client and worker for Node 18+ (built-in fetch).
//
//   import { Worker, PermanentError, Retry } from "./jobbroker.mjs";
//   const worker = new Worker({ url: "http://127.0.0.1:8080", queue: "emails", concurrency: 8 });
//   worker.handle("send-email", async (job) => { ...; return { sent: true }; });
//   await worker.run(); // until SIGTERM/SIGINT or worker.stop()

import { hostname } from "node:os";
import { randomUUID } from "node:crypto";

/** A failed request; `status`, `code` and `detail` come from the broker's problem+json. */
export class JobbrokerError extends Error {
  constructor(detail, { status = null, code = null, problem = null } = {}) {
    super(status ? `${status} ${code ?? ""}: ${detail}` : detail);
    this.name = "JobbrokerError";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.problem = problem;
  }
}

/** Throw from a handler to fail the job without retrying it (it goes to the DLQ). */
export class PermanentError extends Error {
  constructor(message) {
    super(message);
    this.name = "PermanentError";
  }
}

/**
 * Throw from a handler to retry the job after `inSeconds` (the attempt still counts). With
 * `{ pauseKey: true }` the job's flow key is paused as long (backpressure); other keys flow on.
 */
export class Retry extends Error {
  constructor(inSeconds = 0, message = undefined, { pauseKey = false } = {}) {
    super(message ?? `retry requested in ${inSeconds}s`);
    this.name = "Retry";
    this.inSeconds = inSeconds;
    this.pauseKey = pauseKey;
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

// Safe to resend after a connection error: reads, and ack/nack/heartbeat, which are fenced by lease_id.
const RETRIES = 3;

/** The v1 API calls a worker needs, plus enqueue and getJob. */
export class Client {
  constructor({ url = process.env.JOBBROKER_URL ?? "http://127.0.0.1:8080", apiKey = process.env.JOBBROKER_API_KEY } = {}) {
    this.url = url.replace(/\/+$/, "");
    this.headers = { "content-type": "application/json", "user-agent": "jobbroker-client-node/0.1.0" };
    if (apiKey) this.headers.authorization = `Bearer ${apiKey}`;
  }

  async request(method, path, body, { idempotent = false, timeoutMs = 10_000, signal } = {}) {
    for (let attempt = 0; ; attempt++) {
      const timeout = AbortSignal.timeout(timeoutMs);
      const abort = signal ? anySignal([signal, timeout]) : timeout;
      let response;
      try {
        response = await fetch(this.url + path, {
          method,
          headers: this.headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: abort,
        });
      } catch (error) {
        if (signal?.aborted || !idempotent || attempt >= RETRIES) {
          throw new JobbrokerError(`${method} ${path} failed: ${error.cause?.code ?? error.message}`);
        }
        await sleep(100 * 2 ** attempt);
        continue;
      }
      const text = await response.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        if (response.ok) throw new JobbrokerError(`${method} ${path} answered non-JSON: ${text.slice(0, 200)}`);
        data = { detail: text.slice(0, 500) };
      }
      if (response.ok) return data;
      if (idempotent && [502, 503, 504].includes(response.status) && attempt < RETRIES) {
        await sleep(100 * 2 ** attempt);
        continue;
      }
      throw new JobbrokerError(data?.detail ?? response.statusText, {
        status: response.status,
        code: data?.code ?? null,
        problem: data,
      });
    }
  }

  enqueue(queue, type, payload = {}, options = {}) {
    const idempotent = options.idempotency_key !== undefined;
    return this.request("POST", `/v1/queues/${encodeURIComponent(queue)}/jobs`, { type, payload, ...options }, { idempotent });
  }

  getJob(id) {
    return this.request("GET", `/v1/jobs/${encodeURIComponent(id)}`, undefined, { idempotent: true });
  }

  async lease(queue, { workerId, maxJobs = 1, visibilityTimeoutSeconds, waitSeconds = 0, types, signal } = {}) {
    const body = { worker_id: workerId, max_jobs: maxJobs, wait_seconds: waitSeconds };
    if (visibilityTimeoutSeconds !== undefined) body.visibility_timeout_seconds = visibilityTimeoutSeconds;
    if (types) body.types = types;
    const path = `/v1/queues/${encodeURIComponent(queue)}/leases`;
    const answer = await this.request("POST", path, body, { timeoutMs: (waitSeconds + 10) * 1000, signal });
    return answer.jobs;
  }

  heartbeat(id, leaseId, { progress, visibilityTimeoutSeconds } = {}) {
    const body = { lease_id: leaseId };
    if (progress !== undefined) body.progress = progress;
    if (visibilityTimeoutSeconds !== undefined) body.visibility_timeout_seconds = visibilityTimeoutSeconds;
    return this.request("POST", `/v1/jobs/${encodeURIComponent(id)}/heartbeat`, body, { idempotent: true });
  }

  ack(id, leaseId, result = null) {
    return this.request("POST", `/v1/jobs/${encodeURIComponent(id)}/ack`, { lease_id: leaseId, result }, { idempotent: true });
  }

  nack(id, leaseId, error, { retryable = true, retryInSeconds, pauseKey = false } = {}) {
    const body = { lease_id: leaseId, error, retryable };
    if (retryInSeconds !== undefined) body.retry_in_seconds = retryInSeconds;
    // The broker pauses a key only for a positive time.
    if (pauseKey && retryInSeconds > 0) body.pause_key = true;
    return this.request("POST", `/v1/jobs/${encodeURIComponent(id)}/nack`, body, { idempotent: true });
  }

  /** Give a leased job back unrun; its attempt is returned. */
  release(id, leaseId, { delaySeconds } = {}) {
    const body = { lease_id: leaseId };
    if (delaySeconds !== undefined) body.delay_seconds = delaySeconds;
    return this.request("POST", `/v1/jobs/${encodeURIComponent(id)}/release`, body, { idempotent: true });
  }
}

function anySignal(signals) {
  const controller = new AbortController();
  for (const s of signals) {
    if (s.aborted) return AbortSignal.abort(s.reason);
    s.addEventListener("abort", () => controller.abort(s.reason), { once: true });
  }
  return controller.signal;
}

/** The nack `error` for a thrown value: its name, message and stack (as details.traceback). */
export function errorInfo(error) {
  if (!(error instanceof Error)) return { message: String(error), type: typeof error };
  return {
    message: error.message || error.name,
    type: error.name || error.constructor?.name || "Error",
    details: { traceback: String(error.stack ?? "").slice(-16_000) },
  };
}

/**
 * Leases jobs in batches sized to free capacity, runs handlers, heartbeats every third of the
 * visibility timeout, acks with the handler's return value and nacks with what it throws.
 * On stop: no new leases; running handlers get `shutdownGraceSeconds`, then are released (given
 * back with their attempt returned, leased again at once). A handler's `job.signal` aborts on cancel or release.
 */
export class Worker {
  constructor({
    url,
    apiKey,
    queue = process.env.JOBBROKER_QUEUE,
    concurrency = 8,
    visibilityTimeoutSeconds = 30,
    waitSeconds = 5,
    shutdownGraceSeconds = 25,
    workerId = `${hostname()}-${process.pid}-${randomUUID().slice(0, 6)}`,
    types,
    log = console,
  } = {}) {
    if (!queue) throw new Error("Worker needs a queue (or $JOBBROKER_QUEUE)");
    this.client = new Client({ url, apiKey });
    Object.assign(this, { queue, concurrency, visibilityTimeoutSeconds, waitSeconds, shutdownGraceSeconds, workerId, types, log });
    this.handlers = new Map();
    this.running = new Map();
    this.stats = { leased: 0, succeeded: 0, failed: 0, released: 0 };
    this.stopping = new AbortController();
    this.forced = new AbortController();
    this.slotFreed = null;
  }

  /** Register `fn(job)` (sync or async) for jobs of `type`. */
  handle(type, fn) {
    if (this.handlers.has(type)) throw new Error(`a handler for ${type} is already registered`);
    this.handlers.set(type, fn);
    return this;
  }

  /** Ask the worker to shut down; a second call skips the grace period. */
  stop() {
    if (this.stopping.signal.aborted) this.forced.abort();
    this.stopping.abort();
    this.slotFreed?.();
  }

  async run({ installSignalHandlers = true } = {}) {
    const onSignal = (sig) => {
      this.log.info?.(`${sig}: ${this.stopping.signal.aborted ? "releasing running jobs now" : "finishing running jobs"}`);
      this.stop();
    };
    if (installSignalHandlers) for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, onSignal);
    try {
      await this.#leaseLoop();
      await this.#drain();
    } finally {
      if (installSignalHandlers) for (const sig of ["SIGTERM", "SIGINT"]) process.off(sig, onSignal);
    }
    return this.stats;
  }

  async #leaseLoop() {
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      const free = this.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise((resolve) => (this.slotFreed = resolve));
        continue;
      }
      let jobs;
      try {
        // A graceful stop lets a long-poll in flight finish (its jobs run within the grace period);
        // only a forced stop aborts it.
        jobs = await this.client.lease(this.queue, {
          workerId: this.workerId,
          maxJobs: free,
          visibilityTimeoutSeconds: this.visibilityTimeoutSeconds,
          waitSeconds: this.waitSeconds,
          types: this.types,
          signal: this.forced.signal,
        });
      } catch (error) {
        if (this.forced.signal.aborted) return;
        if (error.status && error.status < 500 && error.status !== 409) throw error;
        failures++;
        const delay = Math.min(500 * 2 ** Math.min(failures, 6), 30_000);
        this.log.warn?.(`lease failed (${error.message}); trying again in ${delay}ms`);
        await sleep(delay, this.stopping.signal);
        continue;
      }
      failures = 0;
      for (const job of jobs) this.#start(job);
      if (jobs.length === 0 && !this.waitSeconds) await sleep(500, this.stopping.signal);
    }
  }

  #start(job) {
    this.stats.leased++;
    const abort = new AbortController();
    const ctx = {
      ...job,
      job,
      signal: abort.signal,
      leaseLost: false,
      released: false,
      progress: undefined,
      get cancelRequested() {
        return abort.signal.aborted;
      },
      setProgress(progress) {
        this.progress = progress;
      },
      throwIfCancelled() {
        if (abort.signal.aborted) throw new PermanentError(`job ${job.id} stopped: ${abort.signal.reason}`);
      },
    };
    const done = this.#process(ctx, abort).finally(() => {
      this.running.delete(job.id);
      this.slotFreed?.();
    });
    this.running.set(job.id, { ctx, abort, done });
  }

  async #process(ctx, abort) {
    // A job with a heartbeat timeout shorter than the worker's rhythm is beaten to it.
    let everyMs = (this.visibilityTimeoutSeconds * 1000) / 3;
    if (ctx.heartbeat_timeout_seconds) everyMs = Math.min(everyMs, Math.max((ctx.heartbeat_timeout_seconds * 1000) / 3, 100));
    const beat = setInterval(() => this.#heartbeat(ctx, abort), everyMs);
    let outcome;
    try {
      const handler = this.handlers.get(ctx.type);
      if (!handler) {
        const known = [...this.handlers.keys()].sort().join(", ") || "nothing";
        const message = `no handler for job type '${ctx.type}' in worker ${this.workerId} (it handles: ${known})`;
        outcome = { error: { message, type: "NoHandler" }, retryable: false };
      } else {
        outcome = { result: (await handler(ctx)) ?? null };
      }
    } catch (error) {
      outcome = {
        error: errorInfo(error),
        retryable: !(error instanceof PermanentError),
        retryInSeconds: error instanceof Retry ? error.inSeconds : undefined,
        pauseKey: error instanceof Retry && error.pauseKey,
      };
    } finally {
      clearInterval(beat);
    }
    if (ctx.released || ctx.leaseLost) return;
    await this.#settle(ctx, outcome);
  }

  async #settle(ctx, outcome) {
    try {
      if ("result" in outcome) {
        await this.client.ack(ctx.id, ctx.lease_id, outcome.result);
        this.stats.succeeded++;
      } else {
        await this.client.nack(ctx.id, ctx.lease_id, outcome.error, outcome);
        this.stats.failed++;
      }
    } catch (error) {
      this.log.warn?.(`settling job ${ctx.id} failed: ${error.message}`);
    }
  }

  async #heartbeat(ctx, abort) {
    try {
      const answer = await this.client.heartbeat(ctx.id, ctx.lease_id, {
        progress: ctx.progress,
        visibilityTimeoutSeconds: this.visibilityTimeoutSeconds,
      });
      if (answer.cancel_requested && !abort.signal.aborted) abort.abort("cancellation was requested");
    } catch (error) {
      if (error.status === 409 || error.status === 404) {
        ctx.leaseLost = true;
        abort.abort("its lease was lost");
      } else {
        this.log.warn?.(`heartbeat for job ${ctx.id} failed: ${error.message}`);
      }
    }
  }

  async #drain() {
    if (this.running.size) {
      const all = Promise.allSettled([...this.running.values()].map((r) => r.done));
      const forced = new Promise((resolve) => this.forced.signal.addEventListener("abort", resolve, { once: true }));
      await Promise.race([all, forced, sleep(this.shutdownGraceSeconds * 1000)]);
    }
    const still = [...this.running.values()];
    await Promise.allSettled(
      still.map(({ ctx, abort }) => {
        ctx.released = true;
        abort.abort("the worker is shutting down");
        this.stats.released++;
        return this.client.release(ctx.id, ctx.lease_id);
      }),
    );
  }
}
