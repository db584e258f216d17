// Schedules: recurring jobs, their next fire; pause and resume.
import { enc, get, isAdmin, patch } from "../api.js";
import { action, badge, flash, h, link, replace, table, time } from "../dom.js";

export async function render(root, me) {
  const admin = isAdmin(me);
  const data = await get("/v1/schedules");
  const draw = () =>
    replace(
      root,
      table(
        [
          { label: "Name", cell: (s) => h("div", {}, s.name, s.paused ? [" ", badge("paused")] : null) },
          { label: "Cron", cell: (s) => h("code", {}, s.cron) },
          { label: "Zone", cell: (s) => s.timezone },
          { label: "Queue", cell: (s) => link(`/ui/jobs?queue=${enc(s.queue)}&type=${enc(s.type)}`, s.queue) },
          { label: "Type", cell: (s) => s.type },
          { label: "Next fire", cell: (s) => (s.paused ? h("span", { class: "muted" }, "paused") : time(s.next_run_at)) },
          { label: "Last fire", cell: (s) => time(s.last_run_at) },
          { label: "Last job", cell: (s) => (s.last_job_id ? link(`/ui/jobs/${enc(s.last_job_id)}`, s.last_job_id) : "—") },
          {
            label: "Actions",
            cell: (s) =>
              admin
                ? action(s.paused ? "Resume" : "Pause", async () => {
                    Object.assign(s, await patch(`/v1/schedules/${enc(s.name)}`, { paused: !s.paused }));
                    flash("ok", `Schedule ${s.name} ${s.paused ? "paused" : "resumed"}.`);
                    draw();
                  }, { kind: "small" })
                : "",
          },
        ],
        data.items,
        { caption: "Schedules", empty: "No schedule. Create one with POST /v1/schedules (a cron expression, a queue, a type)." },
      ),
    );
  draw();
}
