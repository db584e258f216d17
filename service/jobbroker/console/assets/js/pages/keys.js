// A queue's flow-control keys: ready and active jobs per key, limits, pauses.
import { enc, get, isAdmin, parameters, patch } from "../api.js";
import { action, badge, failure, flash, h, link, number, pager, replace, table, time } from "../dom.js";

export async function render(root, me) {
  const queue = decodeURIComponent(location.pathname.split("/")[3]);
  document.getElementById("title").textContent = `Keys of ${queue}`;
  const admin = isAdmin(me);
  const filterable = (await parameters("/v1/jobs")).has("flow_key");
  const list = h("div");
  const paging = pager(async (cursor) => {
    let data;
    try {
      data = await get(`/v1/queues/${enc(queue)}/keys`, { cursor, limit: 50 });
    } catch (error) {
      replace(list, failure(error, "Flow control by key"));
      return null;
    }
    const limit = (k) => {
      const parts = [];
      if (k.max_concurrency) parts.push(`≤ ${number(k.max_concurrency)} active`);
      if (k.rate_limit) parts.push(`${number(k.rate_limit.max)} per ${number(k.rate_limit.per_seconds)} s`);
      return parts.length ? parts.join(", ") : h("span", { class: "muted" }, "queue default");
    };
    const pausedNow = (k) => k.paused || (k.paused_until && new Date(k.paused_until) > new Date());
    replace(
      list,
      table(
        [
          {
            label: "Key",
            cell: (k) =>
              h("div", {}, filterable ? link(`/ui/jobs?queue=${enc(queue)}&flow_key=${enc(k.key)}`, k.key) : h("code", {}, k.key), pausedNow(k) ? [" ", badge("paused")] : null),
          },
          { label: "Ready", class: "num", cell: (k) => number(k.ready) },
          { label: "Active", class: "num", cell: (k) => number(k.active) },
          { label: "Paused until", cell: (k) => (k.paused_until ? time(k.paused_until) : "—") },
          { label: "Limits", cell: limit },
          {
            label: "Actions",
            cell: (k) =>
              admin
                ? action(pausedNow(k) ? "Resume" : "Pause", async () => {
                    const body = pausedNow(k) ? { paused: false, paused_until: null } : { paused: true };
                    await patch(`/v1/queues/${enc(queue)}/keys/${enc(k.key)}`, body);
                    flash("ok", `Key ${k.key} ${body.paused ? "paused" : "resumed"}.`);
                    await paging.start();
                  })
                : h("span", { class: "muted" }, "read-only"),
          },
        ],
        data.items,
        { caption: `Keys of ${queue}`, empty: "No keys: none of this queue's live jobs carries a flow_key." },
      ),
    );
    return data.next_cursor;
  });
  replace(root, h("p", {}, link("/ui/queues", "← All queues")), list, paging.nav);
  await paging.start();
}
