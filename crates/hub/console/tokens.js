// The admin area's API tokens (issue 17): the tokens of one site for other systems
// (the REST API v1, /api/docs). Create one with a name and a scope (read, write or
// admin; each includes the ones before); its secret is shown once, with a Copy button,
// and never again (the hub keeps only its hash). The list shows each token's scope,
// creation, last use and whether it is revoked; revoking takes effect at once.

import { del, get, post } from "./api.js";
import { clock, t } from "./i18n.js";
import { fill, h } from "./dom.js";
import { copyButton } from "./copy.js";

const SCOPES = ["read", "write", "admin"];

/** The site whose tokens are shown (kept across re-renders). */
let chosenSite = "";

async function attempt(context, action) {
  try {
    return await action();
  } catch (err) {
    context.toast(t("error", { message: err.message }));
    return null;
  }
}

/** Renders the tokens section into `body`; `created` is a token just made (shown once). */
export async function renderTokens(body, context, created) {
  const { sites } = await get("/api/sites");
  if (!sites.length) {
    fill(body, h("p", { class: "muted", text: t("tokens_no_sites") }));
    return;
  }
  if (!sites.some((site) => site.id === chosenSite)) chosenSite = sites[0].id;
  const site = encodeURIComponent(chosenSite);
  const { tokens } = await get(`/api/sites/${site}/tokens`);
  const rerender = (made) => renderTokens(body, context, made).catch((err) => context.toast(t("error", { message: err.message })));

  const chooser = h("select", {
    id: "tokens-site",
    attrs: { "aria-label": t("site") },
    on: { change: (event) => { chosenSite = event.target.value; rerender(); } },
  }, sites.map((each) => h("option", { value: each.id, text: each.name, selected: each.id === chosenSite })));

  const name = h("input", { id: "token-name", maxLength: 100, required: true, attrs: { autocomplete: "off" } });
  const scope = h("select", { id: "token-scope" }, SCOPES.map((each) => h("option", { value: each, text: t(`token_scope_${each}`) })));
  const form = h("form", {
    class: "card",
    id: "token-form",
    on: {
      submit: async (event) => {
        event.preventDefault();
        const made = await attempt(context, () => post(`/api/sites/${site}/tokens`, { name: name.value.trim(), scope: scope.value }));
        if (made) rerender(made);
      },
    },
  },
  h("h3", { text: t("token_new") }),
  h("label", { class: "field" }, h("span", { text: t("token_name") }), name),
  h("label", { class: "field" }, h("span", { text: t("token_scope") }), scope),
  h("p", { class: "muted", text: t("token_scopes_help") }),
  h("button", { type: "submit", id: "token-create", text: t("token_create") }));
  // `h` makes buttons plain; this one submits the form.
  form.querySelector("#token-create").type = "submit";

  const shown = created ? h("section", { class: "card", id: "token-secret", attrs: { role: "status" } },
    h("h3", { text: t("token_created", { name: created.token.name }) }),
    h("p", { text: t("token_shown_once") }),
    h("code", { id: "token-secret-value", dir: "ltr", text: created.secret }),
    " ",
    copyButton(() => created.secret, context, { id: "token-copy" })) : null;

  const list = tokens.length ? h("table", { class: "table", id: "tokens-table" },
    h("thead", {}, h("tr", {}, ["token_name", "token_scope", "created", "token_last_used", "token_status", ""].map((key) => h("th", { text: key ? t(key) : "" })))),
    h("tbody", {}, tokens.map((token) => {
      const confirm = h("span", { class: "confirm-slot" });
      return h("tr", { data: { id: token.id } },
        h("td", { dir: "auto", text: token.name }),
        h("td", { text: t(`token_scope_${token.scope}`) }),
        h("td", { text: clock(token.created_at) }),
        h("td", { text: token.last_used_at ? clock(token.last_used_at) : t("token_never_used") }),
        h("td", { text: token.revoked_at ? t("token_revoked_at", { time: clock(token.revoked_at) }) : t("token_live") }),
        h("td", {}, token.revoked_at ? null : h("button", {
          class: "danger token-revoke",
          text: t("token_revoke"),
          on: {
            click: () => {
              fill(confirm, h("span", { text: t("token_revoke_confirm", { name: token.name }) }), " ",
                h("button", {
                  class: "danger confirm-yes",
                  text: t("token_revoke"),
                  on: {
                    click: async () => {
                      if (await attempt(context, () => del(`/api/sites/${site}/tokens/${encodeURIComponent(token.id)}`))) rerender();
                    },
                  },
                }),
                h("button", { class: "confirm-no", text: t("cancel"), on: { click: () => fill(confirm) } }));
            },
          },
        }), confirm));
    }))) : h("p", { class: "muted", id: "tokens-empty", text: t("tokens_empty") });

  fill(body,
    h("p", {}, t("tokens_intro"), " ", h("a", { href: "/api/docs", target: "_blank", rel: "noopener", text: t("tokens_docs") })),
    sites.length > 1 ? h("label", { class: "field" }, h("span", { text: t("site") }), chooser) : null,
    shown,
    form,
    list);
  if (shown) shown.querySelector("#token-copy").focus();
}
