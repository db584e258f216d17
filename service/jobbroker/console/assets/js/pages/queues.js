// Queues: counts by state, oldest ready age, throughput and failures per minute, limits; pause/resume.
import { enc, get, isAdmin, patch } from "../api.js";
import { action, badge, duration, flash, h, link, number, replace, sparkline, table } from "../dom.js";

function limits(q) {
  const parts = [];
  if (q.max_concurrency) parts.push(`≤ ${number(q.max_concurrency)} active`);
  if (q.rate_limit) parts.push(`${number(q.rate_limit)}/s`);
  const flow = q.flow || {};
  if (flow.max_concurrency_per_key) parts.push(`≤ ${number(flow.max_concurrency_per_key)} active per key`);
  if (flow.rate_limit_per_key) parts.push(`${number(flow.rate_limit_per_key.max)} per ${number(flow.rate_limit_per_key.per_seconds)} s per key`);
  return parts.length ? parts.join(", ") : h("span", { class: "muted" }, "none");
}

function throughput(stats) {
  if (stats === undefined) return h("span", { class: "muted" }, "…");
  if (stats instanceof Error) return h("span", { class: "muted", title: stats.message }, "n/a");
  const ok = stats.buckets.map((b) => b.succeeded);
  const bad = stats.buckets.map((b) => b.failed);
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const minutes = stats.buckets.length;
  return h(
    "div",
    { class: "throughput" },
    sparkline(ok, { label: `${sum(ok)} succeeded in the last ${minutes} minutes`, kind: "ok" }),
    h("span", { class: "rate" }, `${(sum(ok) / minutes).toFixed(1)}/min`),
    sparkline(bad, { label: `${sum(bad)} failed in the last ${minutes} minutes`, kind: "bad" }),
    h("span", { class: `rate ${sum(bad) ? "bad" : ""}` }, `${(sum(bad) / minutes).toFixed(1)}/min failed`),
  );
}

export async function render(root, me) {
  const admin = isAdmin(me);
  const data = await get("/v1/queues");
  const stats = new Map();
  const draw = () => {
    const estimated = data.items.some((q) => q.counts_estimated);
    const count = (q, state) =>
      q.counts_estimated && (state === "succeeded" || state === "cancelled")
        ? h("span", { title: "estimated from the planner's statistics" }, `~${number(q.counts[state])}`)
        : number(q.counts[state]);
    const columns = [
      { label: "Queue", cell: (q) => h("div", {}, link(`/ui/jobs?queue=${enc(q.name)}`, q.name), q.paused ? [" ", badge("paused")] : null) },
      { label: "Ready", class: "num", cell: (q) => number(q.counts.pending + q.counts.retrying) },
      { label: "Active", class: "num", cell: (q) => number(q.counts.active) },
      { label: "Dead", class: "num", cell: (q) => (q.counts.dead ? link(`/ui/dlq?queue=${enc(q.name)}`, number(q.counts.dead)) : "0") },
      { label: "Succeeded", class: "num", cell: (q) => count(q, "succeeded") },
      { label: "Oldest ready", class: "num", cell: (q) => (q.oldest_pending_age_seconds ? duration(q.oldest_pending_age_seconds) : "—") },
      { label: "Last hour", cell: (q) => throughput(stats.get(q.name)) },
      { label: "Limits", cell: (q) => limits(q) },
      {
        label: "Actions",
        cell: (q) =>
          h(
            "div",
            { class: "actions" },
            link(`/ui/queues/${enc(q.name)}/keys`, "Keys"),
            admin
              ? action(q.paused ? "Resume" : "Pause", async () => {
                  const updated = await patch(`/v1/queues/${enc(q.name)}`, { paused: !q.paused });
                  Object.assign(q, updated);
                  flash("ok", `Queue ${q.name} ${updated.paused ? "paused" : "resumed"}.`);
                  draw();
                }, { kind: q.paused ? "primary" : "", title: `${q.paused ? "Resume" : "Pause"} leasing from ${q.name}` })
              : null,
          ),
      },
    ];
    replace(
      root,
      table(columns, data.items, {
        caption: "Queues",
        empty: "No queues yet. A queue appears when its first job is enqueued or its settings are changed (PATCH /v1/queues/{queue}).",
      }),
      estimated ? h("p", { class: "muted small" }, "~ estimated: exact finished counts would read most of the job table.") : null,
    );
  };
  draw();
  await Promise.all(
    data.items.map(async (q) => {
      try {
        stats.set(q.name, await get(`/v1/queues/${enc(q.name)}/stats`, { minutes: 60 }));
      } catch (error) {
        stats.set(q.name, error);
      }
    }),
  );
  draw();
}
