// The audit log: every admin action, who (the key's public id), what, on what, how many.
import { get } from "../api.js";
import { failure, h, json, number, pager, replace, table, time } from "../dom.js";

export async function render(root) {
  const list = h("div");
  const paging = pager(async (cursor) => {
    let data;
    try {
      data = await get("/v1/audit", { cursor, limit: 50 });
    } catch (error) {
      replace(list, failure(error, "The audit log"));
      return null;
    }
    replace(
      list,
      table(
        [
          { label: "At", cell: (e) => time(e.at) },
          { label: "Actor", cell: (e) => h("code", {}, e.actor || "—") },
          { label: "Action", cell: (e) => h("strong", {}, e.action) },
          { label: "Target", cell: (e) => e.target || "—" },
          { label: "Filter", cell: (e) => (e.filter && Object.keys(e.filter).length ? json(e.filter) : "—") },
          { label: "Count", class: "num", cell: (e) => (e.count === null || e.count === undefined ? "—" : number(e.count)) },
          { label: "Request", cell: (e) => h("code", { class: "small" }, e.request_id || "") },
        ],
        data.items,
        { caption: "Audit log, newest first", empty: "No admin action recorded yet." },
      ),
    );
    return data.next_cursor;
  });
  replace(root, list, paging.nav);
  await paging.start();
}
