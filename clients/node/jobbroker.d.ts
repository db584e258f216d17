// Type declarations for jobbroker.mjs, the dependency-free Node client and worker.

/** A failed request; `status`, `code` and `detail` come from the broker's problem+json. */
export class JobbrokerError extends Error {
  constructor(detail: string, options?: { status?: number | null; code?: string | null; problem?: Problem | null });
  readonly status: number | null;
  readonly code: string | null;
  readonly detail: string;
  readonly problem: Problem | null;
}

/** Throw from a handler to fail the job without retrying it (it goes to the DLQ). */
export class PermanentError extends Error {
  constructor(message?: string);
}

/** Throw from a handler to retry the job after `inSeconds` (the attempt still counts). */
export class Retry extends Error {
  constructor(inSeconds?: number, message?: string);
  readonly inSeconds: number;
}

/** An RFC 9457 problem as the broker answers it. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  instance?: string;
  errors?: unknown[];
  [field: string]: unknown;
}

export type JobState = "pending" | "active" | "retrying" | "succeeded" | "dead" | "cancelled";

/** W3C trace context a job was enqueued under. */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

export interface ErrorInfo {
  message: string;
  type?: string | null;
  details?: unknown;
}

export interface AttemptError {
  attempt?: number;
  at?: string;
  error: ErrorInfo;
  worker_id?: string | null;
}

/** A job as the broker stores it (more fields may come from a newer broker). */
export interface Job<P = unknown> {
  id: string;
  queue: string;
  type: string;
  payload: P;
  state: JobState;
  priority: number;
  attempts: number;
  max_attempts: number;
  timeout_seconds: number;
  run_at: string;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  correlation_id: string | null;
  idempotency_key: string | null;
  tags: string[];
  result: unknown;
  errors: AttemptError[];
  cancel_requested: boolean;
  progress: unknown;
  worker_id: string | null;
  lease_expires_at: string | null;
  trace_context?: TraceContext | null;
  [field: string]: unknown;
}

export interface EnqueuedJob<P = unknown> extends Job<P> {
  duplicate: boolean;
}

export interface LeasedJob<P = unknown> extends Job<P> {
  lease_id: string;
  attempt: number;
}

/** The enqueue fields besides type and payload, as the API names them. */
export interface EnqueueOptions {
  priority?: number;
  delay_seconds?: number;
  run_at?: string;
  max_attempts?: number;
  backoff?: { initial_seconds?: number; max_seconds?: number; multiplier?: number; jitter?: number };
  timeout_seconds?: number;
  idempotency_key?: string;
  correlation_id?: string;
  tags?: string[];
  trace_context?: TraceContext;
  [field: string]: unknown;
}

export interface HeartbeatAnswer {
  lease_expires_at: string;
  cancel_requested: boolean;
  [field: string]: unknown;
}

export interface ClientOptions {
  /** Default $JOBBROKER_URL, else http://127.0.0.1:8080. */
  url?: string;
  /** Default $JOBBROKER_API_KEY. */
  apiKey?: string;
}

/** The v1 API calls a worker needs, plus enqueue and getJob. */
export class Client {
  constructor(options?: ClientOptions);
  readonly url: string;
  request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    options?: { idempotent?: boolean; timeoutMs?: number; signal?: AbortSignal },
  ): Promise<T>;
  enqueue<P = unknown>(queue: string, type: string, payload?: P, options?: EnqueueOptions): Promise<EnqueuedJob<P>>;
  getJob(id: string): Promise<Job>;
  lease(
    queue: string,
    options?: {
      workerId?: string;
      maxJobs?: number;
      visibilityTimeoutSeconds?: number;
      waitSeconds?: number;
      types?: string[];
      signal?: AbortSignal;
    },
  ): Promise<LeasedJob[]>;
  heartbeat(
    id: string,
    leaseId: string,
    options?: { progress?: unknown; visibilityTimeoutSeconds?: number },
  ): Promise<HeartbeatAnswer>;
  ack(id: string, leaseId: string, result?: unknown): Promise<Job>;
  nack(
    id: string,
    leaseId: string,
    error: ErrorInfo,
    options?: { retryable?: boolean; retryInSeconds?: number },
  ): Promise<Job>;
  /** Give a leased job back unrun; its attempt is returned. */
  release(id: string, leaseId: string, options?: { delaySeconds?: number }): Promise<Job>;
}

/** What a handler receives: the leased job's fields plus cancellation and progress. */
export type JobContext<P = unknown> = LeasedJob<P> & {
  readonly job: LeasedJob<P>;
  /** Aborts when the job is cancelled, its lease is lost, or the worker releases it at shutdown. */
  readonly signal: AbortSignal;
  readonly cancelRequested: boolean;
  leaseLost: boolean;
  released: boolean;
  progress: unknown;
  /** Sent with the next heartbeat. */
  setProgress(progress: unknown): void;
  /** Throws a PermanentError when the job should stop now. */
  throwIfCancelled(): void;
};

/** A handler's return value (awaited) becomes the job's result; what it throws, the nack. */
export type Handler<P = any> = (job: JobContext<P>) => unknown;

export interface WorkerLog {
  info?: (message: string) => void;
  warn?: (message: string) => void;
  error?: (message: string) => void;
}

export interface WorkerOptions extends ClientOptions {
  /** Default $JOBBROKER_QUEUE. */
  queue?: string;
  concurrency?: number;
  visibilityTimeoutSeconds?: number;
  waitSeconds?: number;
  shutdownGraceSeconds?: number;
  workerId?: string;
  types?: string[];
  log?: WorkerLog;
}

export interface WorkerStats {
  leased: number;
  succeeded: number;
  failed: number;
  released: number;
}

/**
 * Leases jobs in batches sized to free capacity, runs handlers, heartbeats every third of the
 * visibility timeout, acks with the handler's return value and nacks with what it throws.
 */
export class Worker {
  constructor(options?: WorkerOptions);
  readonly client: Client;
  readonly queue: string;
  readonly workerId: string;
  readonly concurrency: number;
  stats: WorkerStats;
  /** Register `fn(job)` (sync or async) for jobs of `type`. */
  handle<P = any>(type: string, fn: Handler<P>): this;
  /** Ask the worker to shut down; a second call skips the grace period. */
  stop(): void;
  /** Process jobs until SIGTERM/SIGINT or stop(); answers the counts. */
  run(options?: { installSignalHandlers?: boolean }): Promise<WorkerStats>;
}

/** The nack `error` for a thrown value: its name, message and stack (as details.traceback). */
export function errorInfo(error: unknown): ErrorInfo;
