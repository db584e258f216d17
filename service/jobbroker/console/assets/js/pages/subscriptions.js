// Push subscriptions: endpoint health and last status, pause, rotate the signing secret.
import { enc, get, isAdmin, patch, post } from "../api.js";
import { action, ask, badge, flash, h, link, number, pager, replace, table, time } from "../dom.js";

function health(s) {
  if (s.paused) return badge("paused");
  if (s.health === undefined) return h("span", { class: "muted" }, "…");
  if (s.health instanceof Error) return h("span", { class: "muted", title: s.health.message }, "n/a");
  const last = s.health.last_delivery;
  if (!last) return h("span", { class: "muted" }, "no recent delivery");
  const ok = last.outcome === "succeeded";
  return h(
    "div",
    {},
    badge(ok ? "healthy" : "failing", ok ? "ok" : "dead"),
    " ",
    last.http_status ? h("span", { class: "tag" }, `HTTP ${last.http_status}`) : null,
    " ",
    time(last.ended_at),
    last.error && last.error.message ? h("div", { class: "sample" }, last.error.message) : null,
    h("div", { class: "muted small" }, `last ${s.health.recent.succeeded + s.health.recent.failed}: ${s.health.recent.failed} failed`),
  );
}

async function rotate(s) {
  if (!(await ask(`Rotate the secret of subscription ${s.id}?`, "A new signing secret is made. For a while, deliveries carry signatures by both the old and the new secret, so the receiver can switch at its own pace.", "Rotate secret"))) return;
  const rotated = await post(`/v1/subscriptions/${enc(s.id)}/rotate-secret`, {});
  const secret = h("input", { readonly: true, value: rotated.secret, id: "new-secret", class: "secret", "aria-label": "New signing secret" });
  await ask(
    "The new signing secret",
    h("div", {}, h("p", {}, "Shown this once: copy it to the receiver now."), secret,
      rotated.previous_secret_expires_at ? h("p", { class: "muted" }, "The old secret also signs until ", time(rotated.previous_secret_expires_at), ".") : null),
    "Done",
  );
}

export async function render(root, me) {
  const admin = isAdmin(me);
  const list = h("div");
  const paging = pager(async (cursor) => {
    const data = await get("/v1/subscriptions", { cursor, limit: 50 });
    const draw = () =>
      replace(
        list,
        table(
          [
            { label: "Id", class: "num", cell: (s) => s.id },
            { label: "Queue", cell: (s) => link(`/ui/jobs?queue=${enc(s.queue)}`, s.queue) },
            { label: "Endpoint", cell: (s) => h("div", {}, h("code", { class: "url" }, s.url), s.description ? h("div", { class: "muted" }, s.description) : null) },
            { label: "Types", cell: (s) => (s.types || ["any"]).map((t) => h("span", { class: "tag" }, t)) },
            { label: "Health", cell: health },
            { label: "In flight", class: "num", cell: (s) => (s.health && !(s.health instanceof Error) ? `${number(s.health.in_flight)} / ${number(s.max_concurrency)}` : "—") },
            { label: "Secret rotated", cell: (s) => time(s.secret_rotated_at) },
            {
              label: "Actions",
              cell: (s) =>
                admin
                  ? h("div", { class: "actions" },
                      action(s.paused ? "Resume" : "Pause", async () => {
                        Object.assign(s, await patch(`/v1/subscriptions/${enc(s.id)}`, { paused: !s.paused }));
                        flash("ok", `Subscription ${s.id} ${s.paused ? "paused" : "resumed"}.`);
                        draw();
                      }, { kind: "small" }),
                      action("Rotate secret…", () => rotate(s), { kind: "small" }))
                  : "",
            },
          ],
          data.items,
          { caption: "Push subscriptions", empty: "No push subscription: every queue is pulled by workers." },
        ),
      );
    draw();
    await Promise.all(
      data.items.map(async (s) => {
        try {
          s.health = await get(`/v1/subscriptions/${enc(s.id)}/health`);
        } catch (error) {
          s.health = error;
        }
      }),
    );
    draw();
    return data.next_cursor;
  });
  replace(root, list, paging.nav);
  await paging.start();
}
