// Job search: id, queue, state, type, tag, correlation id, payload containment, time; cursor paging.
import { enc, get, parameters } from "../api.js";
import { badge, failure, h, link, notice, number, pager, replace, table, time } from "../dom.js";

const STATES = ["", "pending", "active", "retrying", "succeeded", "dead", "cancelled"];
// Kept in the page's URL so a search can be shared; payload_contains is not (payload data stays out of URLs).
const URL_FIELDS = ["queue", "state", "type", "tag", "correlation_id", "flow_key", "since", "until"];

function field(name, label, attrs = {}) {
  return h("div", { class: "field" }, h("label", { for: `f-${name}` }, label), h("input", { id: `f-${name}`, name, ...attrs }));
}

function form(values, supported) {
  const state = h(
    "select",
    { id: "f-state", name: "state" },
    STATES.map((s) => h("option", { value: s, selected: values.get("state") === s }, s || "any state")),
  );
  const el = h(
    "form",
    { class: "search", role: "search", "aria-label": "Find jobs" },
    field("id", "Job id", { inputmode: "numeric", pattern: "[0-9]+", placeholder: "1042" }),
    field("queue", "Queue"),
    h("div", { class: "field" }, h("label", { for: "f-state" }, "State"), state),
    field("type", "Type"),
    field("tag", "Tag"),
    field("correlation_id", "Correlation id"),
    supported.has("flow_key") ? field("flow_key", "Flow key") : null,
    supported.has("since") ? field("since", "Since", { type: "datetime-local", step: "1" }) : null,
    supported.has("until") ? field("until", "Until", { type: "datetime-local", step: "1" }) : null,
    supported.has("payload_contains")
      ? h(
          "div",
          { class: "field wide" },
          h("label", { for: "f-payload_contains" }, "Payload contains (JSON object)"),
          h("textarea", { id: "f-payload_contains", name: "payload_contains", rows: "1", placeholder: '{"customer_id": 42}' }),
        )
      : null,
    h("div", { class: "field buttons" }, h("button", { type: "submit", class: "btn primary" }, "Search")),
  );
  for (const name of URL_FIELDS) {
    const input = el.elements.namedItem(name);
    if (input && values.get(name)) input.value = values.get(name);
  }
  return el;
}

// datetime-local is the browser's zone; the API takes an instant.
const instant = (value) => (value ? new Date(value).toISOString() : undefined);

export async function render(root) {
  const supported = await parameters("/v1/jobs");
  const values = new URLSearchParams(location.search);
  const search = form(values, supported);
  const results = h("div", { "aria-live": "polite" });
  let query = {};
  const paging = pager(async (cursor) => {
    let data;
    try {
      data = await get("/v1/jobs", { ...query, cursor, limit: 50 });
    } catch (error) {
      replace(results, error.status === 422 ? notice("warn", `Check the search: ${error.message}`) : failure(error, "Jobs"));
      return null;
    }
    replace(
      results,
      table(
        [
          { label: "Id", class: "num", cell: (j) => link(`/ui/jobs/${enc(j.id)}`, j.id) },
          { label: "Queue", cell: (j) => j.queue },
          { label: "Type", cell: (j) => j.type },
          { label: "State", cell: (j) => badge(j.state) },
          { label: "Attempts", class: "num", cell: (j) => `${number(j.attempts)} / ${number(j.max_attempts)}` },
          { label: "Created", cell: (j) => time(j.created_at) },
          { label: "Run at", cell: (j) => time(j.run_at) },
          { label: "Correlation", cell: (j) => j.correlation_id || "" },
          { label: "Tags", cell: (j) => (j.tags || []).map((t) => h("span", { class: "tag" }, t)) },
        ],
        data.items,
        { caption: "Jobs, newest first", empty: "No job matches this search." },
      ),
    );
    return data.next_cursor;
  });
  search.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(search);
    const id = String(data.get("id") || "").trim();
    if (id) {
      location.assign(`/ui/jobs/${enc(id)}`);
      return;
    }
    const shown = new URLSearchParams();
    for (const name of URL_FIELDS) if (data.get(name)) shown.set(name, data.get(name));
    history.replaceState(null, "", `${location.pathname}${shown.size ? "?" : ""}${shown}`);
    query = build(data);
    await paging.start();
  });
  replace(root, search, results, paging.nav);
  query = build(new FormData(search));
  await paging.start();
}

function build(data) {
  const query = {};
  for (const name of ["queue", "state", "type", "tag", "correlation_id", "flow_key"]) query[name] = data.get(name) || undefined;
  query.since = instant(data.get("since"));
  query.until = instant(data.get("until"));
  const contains = String(data.get("payload_contains") || "").trim();
  if (contains) query.payload_contains = contains;
  return query;
}
