// The dead-letter queue by error group: a dry-run count before every replay or purge, redrives.
import { enc, get, isAdmin, post } from "../api.js";
import { action, ask, failure, flash, h, link, notice, number, pager, replace, table, time } from "../dom.js";

// The most one bulk replay or purge moves; a redrive has no such cap.
const BULK_LIMIT = 100000;
const FILTERS = ["queue", "type", "error"];

export function rememberRedrive(id) {
  const ids = JSON.parse(sessionStorage.getItem("jobbroker.redrives") || "[]");
  if (!ids.includes(id)) ids.unshift(id);
  sessionStorage.setItem("jobbroker.redrives", JSON.stringify(ids.slice(0, 50)));
}

function filterForm(values, onSubmit) {
  const form = h(
    "form",
    { class: "search", role: "search", "aria-label": "Filter dead jobs" },
    FILTERS.map((name) =>
      h("div", { class: "field" }, h("label", { for: `d-${name}` }, name === "error" ? "Error contains" : name[0].toUpperCase() + name.slice(1)),
        h("input", { id: `d-${name}`, name, value: values.get(name) || "" })),
    ),
    h("div", { class: "field buttons" }, h("button", { type: "submit", class: "btn primary" }, "Filter")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const shown = new URLSearchParams();
    for (const name of FILTERS) if (form.elements.namedItem(name).value) shown.set(name, form.elements.namedItem(name).value);
    history.replaceState(null, "", `${location.pathname}${shown.size ? "?" : ""}${shown}`);
    onSubmit(Object.fromEntries(shown));
  });
  return form;
}

// Replay or purge what `selection` picks: ask the broker for a dry-run count, show it, then act.
async function bulk(verb, selection) {
  let dry;
  try {
    dry = await post(`/v1/dlq/${verb}`, { ...selection, limit: BULK_LIMIT, dry_run: true });
  } catch (error) {
    if (error.status === 422 && /dry_run/.test(JSON.stringify(error.problem))) {
      flash("warn", "This broker has no dry runs, so the console does no bulk replay or purge; replay jobs one by one from their pages.");
      return false;
    }
    throw error;
  }
  if (!dry.count) {
    flash("info", `Nothing to ${verb}: no dead job matches any more.`);
    return false;
  }
  const capped = dry.count >= BULK_LIMIT ? ` (at most ${number(BULK_LIMIT)} at once; use a redrive for more)` : "";
  const title = verb === "replay" ? `Replay ${number(dry.count)} dead jobs?` : `Delete ${number(dry.count)} dead jobs?`;
  const body = verb === "replay" ? `They go back to pending with their attempts reset${capped}.` : `They are deleted for good${capped}.`;
  if (!(await ask(title, body, verb === "replay" ? "Replay" : "Delete", { danger: verb === "purge" }))) return false;
  const done = await post(`/v1/dlq/${verb}`, { ...selection, limit: BULK_LIMIT });
  flash("ok", `${verb === "replay" ? "Replayed" : "Deleted"} ${number(done.count)} dead jobs.`);
  return true;
}

async function redrive(selection) {
  const target = h("input", { id: "r-target", name: "target_queue", placeholder: "the job's own queue" });
  const rate = h("input", { id: "r-rate", name: "rate_per_second", type: "number", min: "0.1", step: "any", placeholder: "as fast as possible" });
  const body = h(
    "div",
    {},
    h("p", {}, "A redrive replays the group's dead jobs in the background, at a steady rate, and can be cancelled."),
    h("div", { class: "field" }, h("label", { for: "r-target" }, "Target queue (optional)"), target),
    h("div", { class: "field" }, h("label", { for: "r-rate" }, "Jobs per second (optional)"), rate),
  );
  if (!(await ask("Start a redrive?", body, "Start redrive"))) return;
  const request = { ...selection };
  if (target.value.trim()) request.target_queue = target.value.trim();
  if (rate.value) request.rate_per_second = Number(rate.value);
  const started = await post("/v1/dlq/redrives", request);
  rememberRedrive(started.id);
  location.assign(`/ui/redrives#redrive-${enc(started.id)}`);
}

function groupsTable(items, filters, admin, refresh, showJobs) {
  return table(
    [
      { label: "Error", cell: (g) => h("div", {}, g.error_type ? h("code", {}, g.error_type) : null, h("div", { class: "sample" }, g.sample_message || "")) },
      { label: "Dead jobs", class: "num", cell: (g) => number(g.count) },
      { label: "First seen", cell: (g) => time(g.first_seen) },
      { label: "Last seen", cell: (g) => time(g.last_seen) },
      { label: "Queues", cell: (g) => (g.queues || []).map((q) => h("span", { class: "tag" }, q)) },
      { label: "Types", cell: (g) => (g.types || []).map((t) => h("span", { class: "tag" }, t)) },
      {
        label: "Actions",
        cell: (g) =>
          h(
            "div",
            { class: "actions" },
            action("Jobs", () => showJobs({ ...filters, fingerprint: g.fingerprint }), { kind: "small" }),
            admin ? action("Replay…", async () => (await bulk("replay", { ...filters, fingerprint: g.fingerprint })) && refresh(), { kind: "small primary" }) : null,
            admin ? action("Redrive…", () => redrive({ ...filters, fingerprint: g.fingerprint }), { kind: "small" }) : null,
            admin ? action("Purge…", async () => (await bulk("purge", { ...filters, fingerprint: g.fingerprint })) && refresh(), { kind: "small danger" }) : null,
          ),
      },
    ],
    items,
    { caption: "Dead jobs by error group", empty: "The DLQ is empty: no dead job matches." },
  );
}

export async function render(root, me) {
  const admin = isAdmin(me);
  const groups = h("section", { "aria-labelledby": "h-groups" });
  const jobs = h("section", { "aria-labelledby": "h-dead" });
  let filters = Object.fromEntries([...new URLSearchParams(location.search)].filter(([k]) => FILTERS.includes(k)));

  const showJobs = async (selection) => {
    const list = h("div");
    const heading = selection.fingerprint ? "Dead jobs of the chosen group" : "Dead jobs";
    const paging = pager(async (cursor) => {
      try {
        const data = await get("/v1/dlq", { ...selection, cursor, limit: 25 });
        replace(
          list,
          table(
            [
              { label: "Id", class: "num", cell: (j) => link(`/ui/jobs/${enc(j.id)}`, j.id) },
              { label: "Queue", cell: (j) => j.queue },
              { label: "Type", cell: (j) => j.type },
              { label: "Attempts", class: "num", cell: (j) => number(j.attempts) },
              { label: "Died", cell: (j) => time(j.finished_at) },
              { label: "Last error", cell: (j) => { const e = (j.errors || []).at(-1); return e && e.error ? e.error.message : ""; } },
            ],
            data.items,
            { caption: heading, empty: "No dead job matches." },
          ),
        );
        return data.next_cursor;
      } catch (error) {
        replace(list, failure(error, "Dead jobs"));
        return null;
      }
    });
    replace(jobs, h("h2", { id: "h-dead" }, heading), list, paging.nav);
    await paging.start();
  };

  const refresh = async () => {
    try {
      const data = await get("/v1/dlq/groups", filters);
      replace(groups, h("h2", { id: "h-groups" }, "Error groups"), groupsTable(data.items, filters, admin, refresh, showJobs));
    } catch (error) {
      replace(groups, h("h2", { id: "h-groups" }, "Error groups"), failure(error, "Grouping dead jobs by error"));
      if (admin && error.unavailable && Object.keys(filters).length) {
        groups.append(
          h("div", { class: "actions" },
            action("Replay matching…", async () => (await bulk("replay", filters)) && refresh(), { kind: "primary" }),
            action("Purge matching…", async () => (await bulk("purge", filters)) && refresh(), { kind: "danger" })),
        );
      }
    }
    await showJobs(filters);
  };

  replace(
    root,
    filterForm(new URLSearchParams(location.search), (chosen) => {
      filters = chosen;
      refresh();
    }),
    admin ? null : notice("info", "Read-only: this key may look but not replay, redrive or purge."),
    groups,
    jobs,
  );
  await refresh();
}


