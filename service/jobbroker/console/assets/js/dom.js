// Small DOM helpers. Every value from the API goes in as text (textContent), never as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const local = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

// A time in the browser's zone, with its UTC instant on hover (and for screen readers in the attribute).
export function time(value) {
  if (!value) return h("span", { class: "muted" }, "—");
  const date = new Date(value);
  const utc = date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  return h("time", { datetime: date.toISOString(), title: utc }, local.format(date));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Number(seconds);
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 90) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${Math.round(s / 86400)} d`;
}

export const number = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString());

export function json(value) {
  return h("pre", { class: "json", tabindex: "0" }, JSON.stringify(value, null, 2));
}

export function badge(text, kind = text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

// A semantic table; an empty list shows `empty` instead (what it means and what to do).
export function table(columns, rows, { caption, empty = "Nothing here." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption || "table" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class, "data-label": c.label }, c.cell(row))))),
      ),
    ),
  );
}

export function notice(kind, ...children) {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

// What a failed API call means for this page: unavailable on this broker, not allowed, or an error.
export function failure(error, what) {
  if (error.unavailable) {
    return notice("info", h("strong", {}, `${what} is not available on this broker.`), " It needs a newer jobbroker version.");
  }
  if (error.status === 403) return notice("warn", h("strong", {}, "Not allowed. "), `This API key may not read ${what.toLowerCase()}.`);
  if (error.status === 401) return notice("warn", "Enter an API key to continue.");
  return notice("error", h("strong", {}, `${what} could not be loaded: `), error.message);
}

export function flash(kind, text) {
  const box = document.getElementById("flash");
  replace(box, notice(kind, text));
}

// A button that runs an async action, disabled while it runs; errors are shown, not thrown.
export function action(label, run, { kind = "", disabled = false, title } = {}) {
  const button = h("button", { type: "button", class: `btn ${kind}`, disabled, title });
  button.textContent = label;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await run(button);
    } catch (error) {
      flash("error", `${label} failed: ${error.message}`);
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  });
  return button;
}

export function link(href, ...children) {
  return h("a", { href }, ...children);
}

export function definitions(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

// Next/previous over a cursor list: `load(cursor)` renders one page and answers its next_cursor.
export function pager(load) {
  const stack = [];
  let current = null;
  let next = null;
  const nav = h("nav", { class: "pager", "aria-label": "Pages" });
  const render = () => {
    replace(
      nav,
      action("← Newer", () => go(stack.pop(), false), { disabled: !stack.length }),
      h("span", { class: "muted" }, `Page ${stack.length + 1}`),
      action("Older →", () => go(next, true), { disabled: !next }),
    );
  };
  const go = async (cursor, forward) => {
    if (forward) stack.push(current);
    current = cursor ?? null;
    next = await load(current);
    render();
  };
  return { nav, start: () => go(null, false) };
}

// A tiny bar chart of per-minute counts: bars as SVG rects, with a text alternative.
export function sparkline(values, { label, kind = "ok" }) {
  const width = 120;
  const height = 24;
  const max = Math.max(1, ...values);
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", `spark spark-${kind}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const step = width / Math.max(1, values.length);
  values.forEach((v, i) => {
    const rect = document.createElementNS(svgNS, "rect");
    const barHeight = v ? Math.max(1, (v / max) * height) : 0;
    rect.setAttribute("x", (i * step).toFixed(2));
    rect.setAttribute("y", (height - barHeight).toFixed(2));
    rect.setAttribute("width", Math.max(0.5, step - 0.5).toFixed(2));
    rect.setAttribute("height", barHeight.toFixed(2));
    svg.append(rect);
  });
  const title = document.createElementNS(svgNS, "title");
  title.textContent = label;
  svg.prepend(title);
  return svg;
}

// A modal question (the native <dialog>: focus kept inside, Escape cancels): resolves true to go on.
export function ask(title, body, confirmLabel, { danger = false } = {}) {
  return new Promise((resolve) => {
    const yes = h("button", { type: "submit", value: "yes", class: `btn ${danger ? "danger" : "primary"}` }, confirmLabel);
    const no = h("button", { type: "submit", value: "no", class: "btn" }, "Back");
    const dialog = h(
      "dialog",
      { class: "ask", "aria-labelledby": "ask-title" },
      h("form", { method: "dialog" }, h("h2", { id: "ask-title" }, title), h("div", {}, body), h("div", { class: "row end" }, no, yes)),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}
