// The customer (issue 19): the card beside an open conversation, and the Customers page
// that searches the contacts of the agent's sites.
//
// The card reads GET /api/conversations/{id}/customer: name and e-mail with where each
// came from (signed by the site's identity token, the site's contact record, or typed
// by the visitor), the external id, and the attributes (the contact's, with the signed
// identity's on top), each marked with its source. The page reads GET /api/customers
// (?q=TEXT: a name part, an e-mail or an external id; ?q=KEY=VALUE: an attribute).
//
// Everything the customer, the site or a CRM wrote reaches the page through
// textContent (dom.js); a long value is cut, with the whole of it in the title.

import { get, query } from "./api.js";
import { t } from "./i18n.js";
import { fill, h } from "./dom.js";

/** Characters of a value shown before it is cut (the whole value is in its title). */
export const MAX_SHOWN = 60;

/** A value as text, cut to MAX_SHOWN characters: `{ text, title }`. */
export function shown(value) {
  const text = value === null || value === undefined ? "" : String(value);
  const chars = [...text];
  if (chars.length <= MAX_SHOWN) return { text, title: null };
  return { text: `${chars.slice(0, MAX_SHOWN - 1).join("")}…`, title: text };
}

/** A source badge: signed (verified), contact record, or typed by the visitor. */
function sourceBadge(source) {
  const known = ["signed", "contact", "visitor"].includes(source) ? source : "visitor";
  const className = { signed: "verified", contact: "contact", visitor: "unverified" }[known];
  return h("span", {
    class: `badge source ${className}`,
    data: { source: known },
    text: t(`customer_source_${known}`),
    title: t(`customer_source_${known}_hint`),
  });
}

/** A `dl` of attributes: `[{ key, value, source? }]`. */
function attributeList(entries, id) {
  return h("dl", { class: "attributes customer-attributes", id }, entries.map((entry) => {
    const value = shown(entry.value);
    return h("div", { class: "attribute", data: { key: entry.key, source: entry.source || "" } },
      h("dt", { dir: "auto", text: entry.key }),
      h("dd", {},
        h("span", { class: "attribute-value", dir: "auto", text: value.text, title: value.title }),
        entry.source ? [" ", sourceBadge(entry.source)] : null));
  }));
}

function field(label, className, sourced) {
  const value = sourced ? shown(sourced.value) : null;
  return h("div", { class: "detail", data: { field: className } },
    h("dt", { text: t(label) }),
    h("dd", {}, value
      ? [h("span", { class: `customer-${className}`, dir: "auto", text: value.text, title: value.title }), " ", sourceBadge(sourced.source)]
      : h("span", { class: "muted", text: t("none") })));
}

function cardBody(card) {
  const attributes = Array.isArray(card.attributes) ? card.attributes : [];
  const external = card.external_id ? shown(card.external_id) : null;
  return [
    h("h4", { text: t("customer") }),
    h("dl", {},
      field("name", "name", card.name),
      field("email", "email", card.email),
      h("div", { class: "detail", data: { field: "external_id" } },
        h("dt", { text: t("customer_external_id") }),
        h("dd", { class: "customer-external-id", dir: "auto", text: external ? external.text : t("customer_anonymous"), title: external?.title })),
      h("div", { class: "detail", data: { field: "contact" } },
        h("dt", { text: t("customer_contact") }),
        h("dd", { class: "customer-contact", text: card.contact_id ? t("customer_contact_yes") : t("customer_contact_no") })),
      h("div", { class: "detail" },
        h("dt", { text: t("customer_attributes") }),
        h("dd", {}, attributes.length
          ? attributeList(attributes, "customer-attributes")
          : h("span", { class: "muted", text: t("customer_no_attributes") })))),
  ];
}

/**
 * The customer card of a conversation: an element shown at once, filled when the hub
 * answers (a stale answer for a conversation no longer shown is dropped with its node).
 */
export function customerCard(conversationId) {
  const section = h("section", { class: "customer-card", id: "customer-card", data: { conversation: conversationId } },
    h("h4", { text: t("customer") }),
    h("p", { class: "muted", text: t("customer_loading") }));
  get(`/api/conversations/${encodeURIComponent(conversationId)}/customer`)
    .then((card) => fill(section, cardBody(card)))
    .catch(() => fill(section, h("h4", { text: t("customer") }), h("p", { class: "muted", text: t("customer_unavailable") })));
  return section;
}

// ---------------------------------------------------------------- the Customers page

/** The last search and what it found, kept across re-renders (a language change). */
let lastQuery = "";
let lastFound = null;

function resultItem(customer) {
  const entries = Object.entries(customer.attributes || {}).map(([key, value]) => ({ key, value }));
  const name = customer.name ? shown(customer.name) : null;
  return h("li", { class: "customer-result", data: { id: customer.id } },
    h("div", { class: "customer-result-head" },
      h("b", { class: "customer-result-name", dir: "auto", text: name ? name.text : t("customer_no_name"), title: name?.title }),
      customer.email ? h("span", { class: "customer-result-email", dir: "auto", text: shown(customer.email).text }) : null,
      customer.external_id ? h("code", { class: "customer-result-external", dir: "auto", text: shown(customer.external_id).text }) : null,
      h("span", { class: "badge customer-result-site", dir: "auto", text: customer.site_name || customer.site_id })),
    entries.length ? attributeList(entries) : null);
}

function renderFound(results) {
  if (lastFound === null) return fill(results);
  if (!lastFound.length) return fill(results, h("p", { class: "muted", id: "customer-none", text: t("customer_not_found") }));
  return fill(results, h("ul", { class: "customer-results", id: "customer-list" }, lastFound.map(resultItem)));
}

/** Renders the Customers page into `root`. */
export function renderCustomers(root, context) {
  const results = h("div", { id: "customer-results", attrs: { "aria-live": "polite" } });
  const input = h("input", {
    id: "customer-search",
    type: "search",
    dir: "auto",
    value: lastQuery,
    placeholder: t("customer_search_placeholder"),
    attrs: { "aria-label": t("customer_search_placeholder"), maxlength: "200" },
  });
  const form = h("form", {
    id: "customer-form",
    class: "customer-form",
    on: {
      submit: async (event) => {
        event.preventDefault();
        lastQuery = input.value.trim();
        try {
          const answer = await get(`/api/customers${query({ q: lastQuery })}`);
          lastFound = answer.customers || [];
        } catch (err) {
          context.toast(t("error", { message: err.message }));
          return;
        }
        renderFound(results);
      },
    },
  },
  input,
  h("button", { id: "customer-search-submit", class: "primary", type: "submit", text: t("customer_search") }));
  fill(root,
    h("h2", { text: t("nav_customers") }),
    form,
    h("p", { class: "muted hint", text: t("customer_search_hint") }),
    results);
  renderFound(results);
}
