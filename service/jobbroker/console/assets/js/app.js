// The console's entry: ask the broker who the key is, then draw the page named by <body data-page>.
import { ApiError, isAdmin, session, whoami } from "./api.js";
import { action, failure, h, notice, replace } from "./dom.js";

const content = document.getElementById("content");
const sessionBox = document.getElementById("session");
const page = document.body.dataset.page;

function keyForm(message) {
  const input = h("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    placeholder: "jbk_…",
  });
  const form = h(
    "form",
    { class: "key-form", "aria-labelledby": "key-title" },
    h("h2", { id: "key-title" }, "Enter an API key"),
    message ? notice("warn", message) : null,
    h(
      "p",
      { class: "muted" },
      "The key stays in this browser tab's session storage and is sent only to this broker, in the Authorization header. ",
      "A read key sees read-only pages; actions need an admin key.",
    ),
    h("label", { for: "api-key" }, "API key"),
    h("div", { class: "row" }, input, h("button", { type: "submit", class: "btn primary" }, "Use this key")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    session.remember(input.value.trim());
    location.reload();
  });
  replace(content, form);
  input.focus();
}

function showSession(me) {
  if (!me.authentication) {
    replace(sessionBox, h("span", { class: "badge badge-warn", title: "The broker runs without API keys" }, "no auth"));
    return;
  }
  replace(
    sessionBox,
    h("span", { class: "key-id", title: "Public id of this session's API key" }, `key ${me.key_id}`),
    " ",
    h("span", { class: `badge ${isAdmin(me) ? "badge-admin" : "badge-readonly"}` }, isAdmin(me) ? "admin" : "read-only"),
    " ",
    action("Forget key", () => {
      session.forget();
      location.reload();
    }, { kind: "small" }),
  );
}

async function main() {
  let me;
  try {
    me = await whoami();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      const hadKey = Boolean(session.key());
      session.forget();
      keyForm(hadKey ? "That key was not accepted by this broker." : null);
      return;
    }
    replace(content, failure(error, "The broker"));
    return;
  }
  showSession(me);
  document.body.classList.toggle("readonly", !isAdmin(me));
  const module = await import(`./pages/${page}.js`);
  try {
    await module.render(content, me);
  } catch (error) {
    replace(content, error instanceof ApiError ? failure(error, document.title.split(" · ")[0]) : notice("error", String(error)));
  }
}

document.addEventListener("jobbroker:unauthorized", () => {
  session.forget();
  keyForm("The broker no longer accepts this key.");
});

main();
