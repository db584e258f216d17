// One job: its fields, payload, result, error history and attempt timeline; cancel and replay.
import { enc, get, isAdmin, post } from "../api.js";
import { action, ask, badge, definitions, duration, failure, flash, h, json, link, number, replace, table, time } from "../dom.js";

const CANCELLABLE = new Set(["pending", "retrying", "active"]);
const REPLAYABLE = new Set(["dead", "cancelled"]);

function maybe(job, name) {
  if (!(name in job)) return h("p", { class: "muted" }, "Not shown to this API key.");
  if (job[name] === null || job[name] === undefined) return h("p", { class: "muted" }, "None.");
  return json(job[name]);
}

function attemptsView(attempts) {
  if (!attempts.length) return h("p", { class: "empty" }, "No attempt yet: the job has not been leased.");
  return h(
    "ol",
    { class: "timeline" },
    attempts.map((a) =>
      h(
        "li",
        { class: `attempt outcome-${a.outcome || "running"}` },
        h(
          "div",
          { class: "attempt-head" },
          h("strong", {}, `Attempt ${a.attempt}`),
          " ",
          badge(a.outcome || "running", a.outcome || "active"),
          a.http_status ? [" ", h("span", { class: "tag" }, `HTTP ${a.http_status}`)] : null,
        ),
        h(
          "div",
          { class: "attempt-facts" },
          time(a.leased_at),
          " → ",
          a.ended_at ? time(a.ended_at) : h("span", { class: "muted" }, "running"),
          ` · ${duration(a.duration_seconds)} · ${number(a.heartbeats ?? 0)} heartbeats · worker `,
          h("code", {}, a.worker_id || "—"),
        ),
        a.error ? h("div", { class: "attempt-error" }, a.error.type ? h("code", {}, a.error.type) : null, " ", a.error.message || "") : null,
      ),
    ),
  );
}

export async function render(root, me) {
  const id = decodeURIComponent(location.pathname.split("/")[3]);
  document.getElementById("title").textContent = `Job ${id}`;
  const admin = isAdmin(me);
  const draw = async () => {
    let job;
    try {
      job = await get(`/v1/jobs/${enc(id)}`);
    } catch (error) {
      replace(root, error.status === 404 ? h("p", { class: "empty" }, `No job ${id}: it never existed or retention removed it.`) : failure(error, "This job"));
      return;
    }
    const attempts = h("div", {}, h("p", { class: "muted" }, "Loading attempts…"));
    const actions = h("div", { class: "actions" });
    if (admin && CANCELLABLE.has(job.state) && !job.cancel_requested) {
      actions.append(
        action("Cancel job", async () => {
          const detail = job.state === "active" ? "It is running: its worker learns of the cancel on its next heartbeat." : "It will not run.";
          if (!(await ask(`Cancel job ${id}?`, detail, "Cancel job", { danger: true }))) return;
          await post(`/v1/jobs/${enc(id)}/cancel`);
          flash("ok", `Job ${id} cancelled.`);
          await draw();
        }, { kind: "danger" }),
      );
    }
    if (admin && REPLAYABLE.has(job.state)) {
      actions.append(
        action("Replay job", async () => {
          if (!(await ask(`Replay job ${id}?`, "It goes back to pending with its attempts reset; its error history is kept.", "Replay"))) return;
          await post(`/v1/jobs/${enc(id)}/replay`);
          flash("ok", `Job ${id} replayed.`);
          await draw();
        }, { kind: "primary" }),
      );
    }
    const errors = job.errors || [];
    replace(
      root,
      h("p", {}, link(`/ui/jobs?queue=${enc(job.queue)}`, `← Jobs of ${job.queue}`)),
      h(
        "div",
        { class: "job-head" },
        badge(job.state),
        job.cancel_requested ? [" ", badge("cancel requested", "warn")] : null,
        actions,
      ),
      definitions([
        ["Queue", link(`/ui/jobs?queue=${enc(job.queue)}`, job.queue)],
        ["Type", job.type],
        ["Priority", number(job.priority)],
        ["Attempts", `${number(job.attempts)} of ${number(job.max_attempts)}`],
        ["Created", time(job.created_at)],
        ["Run at", time(job.run_at)],
        job.finished_at ? ["Finished", time(job.finished_at)] : null,
        job.lease_expires_at ? ["Lease expires", time(job.lease_expires_at)] : null,
        job.worker_id ? ["Worker", h("code", {}, job.worker_id)] : null,
        job.flow_key ? ["Flow key", job.flow_key] : null,
        ["Correlation id", job.correlation_id || "—"],
        ["Tags", (job.tags || []).length ? job.tags.map((t) => h("span", { class: "tag" }, t)) : "—"],
      ]),
      h("section", { "aria-labelledby": "h-attempts" }, h("h2", { id: "h-attempts" }, "Attempts"), attempts),
      h("div", { class: "two" },
        h("section", { "aria-labelledby": "h-payload" }, h("h2", { id: "h-payload" }, "Payload"), maybe(job, "payload")),
        h("section", { "aria-labelledby": "h-result" }, h("h2", { id: "h-result" }, "Result"), maybe(job, "result")),
      ),
      job.progress !== undefined && job.progress !== null ? h("section", {}, h("h2", {}, "Progress"), json(job.progress)) : null,
      h(
        "section",
        { "aria-labelledby": "h-errors" },
        h("h2", { id: "h-errors" }, "Error history"),
        table(
          [
            { label: "Attempt", class: "num", cell: (e) => number(e.attempt) },
            { label: "At", cell: (e) => time(e.at) },
            { label: "Worker", cell: (e) => h("code", {}, e.worker_id || "—") },
            { label: "Type", cell: (e) => (e.error && e.error.type) || "—" },
            { label: "Message", cell: (e) => (e.error && e.error.message) || "" },
          ],
          errors,
          { caption: "Error history", empty: "No failed attempt." },
        ),
      ),
    );
    try {
      const data = await get(`/v1/jobs/${enc(id)}/attempts`);
      replace(attempts, attemptsView(Array.isArray(data) ? data : data.items || []));
    } catch (error) {
      replace(attempts, failure(error, "The attempt timeline"));
    }
  };
  await draw();
}
