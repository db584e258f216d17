// A runnable worker: JOBBROKER_URL=http://127.0.0.1:8080 JOBBROKER_QUEUE=emails node clients/node/example.mjs
// SIGTERM or Ctrl-C lets running jobs finish (a second one releases them at once), then exits 0.

import { PermanentError, Retry, Worker } from "./jobbroker.mjs";

const env = process.env;
const worker = new Worker({
  url: env.JOBBROKER_URL ?? "http://127.0.0.1:8080",
  queue: env.JOBBROKER_QUEUE ?? "default",
  apiKey: env.JOBBROKER_API_KEY,
  concurrency: Number(env.JOBBROKER_CONCURRENCY ?? 8),
  visibilityTimeoutSeconds: Number(env.JOBBROKER_VISIBILITY_TIMEOUT ?? 30),
  shutdownGraceSeconds: Number(env.JOBBROKER_GRACE ?? 25),
  waitSeconds: 1,
});

// The README's jobs: a bad address is permanent (straight to the DLQ), anything else is "sent".
worker.handle("send-email", async (job) => {
  const to = job.payload?.to ?? "";
  if (!to.includes("@")) throw new PermanentError(`bad address ${JSON.stringify(to)}`);
  console.log(`sending to ${to}`);
  return { sent: true, to };
});

// Returns its payload: the return value is stored as the job's result.
worker.handle("echo", async (job) => ({ echo: job.payload, attempt: job.attempt }));

// Works for payload.seconds while heartbeats keep the lease; stops early if the job is cancelled.
worker.handle("sleep", async (job) => {
  const until = Date.now() + job.payload.seconds * 1000;
  while (Date.now() < until) {
    job.throwIfCancelled();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { slept: job.payload.seconds };
});

// Throws: the broker retries it with backoff, then moves it to the DLQ with the stack in its errors.
worker.handle("fail", (job) => {
  throw new Error(`failing on purpose (attempt ${job.attempt})`);
});

// A PermanentError is not retried.
worker.handle("reject", (job) => {
  throw new PermanentError(`rejected ${JSON.stringify(job.payload)}`);
});

// Backpressure: the tenant's API said "slow down", so retry later and pause this job's flow key
// (other keys flow on) for as long.
worker.handle("throttled", (job) => {
  if (job.attempt === 1) throw new Retry(job.payload.seconds, "the tenant's API answered 429", { pauseKey: true });
  return { attempt: job.attempt };
});

console.log(`worker ${worker.workerId} on ${worker.client.url} queue ${worker.queue}`);
const stats = await worker.run();
console.log(`stopped: ${JSON.stringify(stats)}`);
// A released handler may still hold timers; the jobs are back with the broker, so leave now.
process.exit(0);
