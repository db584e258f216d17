// Redrives: background replays of dead jobs, with live progress and cancel.
import { enc, get, isAdmin, post } from "../api.js";
import { action, ask, badge, failure, flash, h, notice, number, replace, table, time } from "../dom.js";

const POLL_MS = 1000;

function remembered() {
  return JSON.parse(sessionStorage.getItem("jobbroker.redrives") || "[]");
}

// Every redrive the broker lists, else the ones started from this browser session.
async function load() {
  try {
    const data = await get("/v1/dlq/redrives", { limit: 50 });
    return { items: data.items, listed: true };
  } catch (error) {
    if (!(error.unavailable || error.status === 405)) throw error;
  }
  const items = [];
  for (const id of remembered()) {
    try {
      items.push(await get(`/v1/dlq/redrives/${enc(id)}`));
    } catch (error) {
      if (error.unavailable && !items.length) throw error;
    }
  }
  return { items, listed: false };
}

function progress(r) {
  const total = r.total ?? 0;
  const pct = total ? Math.round((100 * (r.done ?? 0)) / total) : r.state === "done" ? 100 : 0;
  return h(
    "div",
    { class: "progress" },
    h("progress", { max: String(total || 1), value: String(total ? r.done ?? 0 : pct ? 1 : 0), "aria-label": `Redrive ${r.id} progress` }),
    h("span", { class: "num" }, `${number(r.done ?? 0)} / ${number(total)} (${pct}%)`),
  );
}

export async function render(root, me) {
  const admin = isAdmin(me);
  let timer = null;
  const draw = async () => {
    let data;
    try {
      data = await load();
    } catch (error) {
      replace(root, failure(error, "Redrives"));
      return;
    }
    const rows = data.items.map((r) => ({ ...r }));
    replace(
      root,
      data.listed ? null : notice("info", "This broker does not list redrives: shown are those started from this browser session."),
      table(
        [
          { label: "Redrive", cell: (r) => h("span", { id: `redrive-${r.id}` }, r.id) },
          { label: "State", cell: (r) => badge(r.state) },
          { label: "Progress", cell: progress },
          { label: "Target queue", cell: (r) => r.target_queue || h("span", { class: "muted" }, "own queue") },
          { label: "Rate", class: "num", cell: (r) => (r.rate_per_second ? `${number(r.rate_per_second)}/s` : "—") },
          { label: "Started", cell: (r) => time(r.created_at) },
          {
            label: "Actions",
            cell: (r) =>
              admin && r.state === "running"
                ? action("Cancel", async () => {
                    if (!(await ask(`Cancel redrive ${r.id}?`, "Jobs already replayed stay replayed; the rest stay dead.", "Cancel redrive", { danger: true }))) return;
                    await post(`/v1/dlq/redrives/${enc(r.id)}/cancel`);
                    flash("ok", `Redrive ${r.id} cancelled.`);
                    await draw();
                  }, { kind: "small danger" })
                : "",
          },
        ],
        rows,
        { caption: "Redrives", empty: "No redrive yet. Start one from the DLQ page, on an error group." },
      ),
    );
    clearTimeout(timer);
    if (rows.some((r) => r.state === "running")) timer = setTimeout(draw, POLL_MS);
  };
  await draw();
}
