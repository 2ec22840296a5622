// The admin area's webhooks page (issue 17): a site's endpoints (add, choose events,
// include notes, enable or disable, rotate the secret — the new secret is shown once —
// delete) and each endpoint's delivery log (status, response code, duration, time,
// attempts) with a Redeliver button. Everything goes through the REST API
// (/api/sites/{site}/webhooks, /api/webhooks/{id}/…); docs/webhooks.md says what the
// receiver gets.

import { del, get, patch, post } from "./api.js";
import { clock, t } from "./i18n.js";
import { fill, h } from "./dom.js";

/** The site shown, and the endpoint whose log is open (kept across re-renders). */
let chosenSite = "";
let openLog = "";

async function attempt(context, action) {
  try {
    return await action();
  } catch (err) {
    context.toast(t("error", { message: err.message }));
    return null;
  }
}

const field = (label, input) => h("label", { class: "field" }, h("span", { text: t(label) }), input);

/** A secret shown once, in a read-only field that selects itself for copying. */
function secretOnce(secret) {
  const input = h("input", {
    class: "webhook-secret",
    id: "webhook-secret",
    value: secret,
    readOnly: true,
    dir: "ltr",
    on: { focus: (event) => event.target.select() },
  });
  return h("div", { class: "card notice", id: "webhook-secret-box" },
    h("label", { class: "field" }, h("span", { text: t("webhook_secret_once") }), input));
}

/** Checkboxes for the event types; returns [element, () => chosen types]. */
function eventChooser(types, chosen, id) {
  const boxes = types.map((type) => h("input", { type: "checkbox", value: type, checked: chosen.includes(type) }));
  const element = h("fieldset", { class: "webhook-events", id },
    h("legend", { text: t("webhook_events") }),
    types.map((type, index) => h("label", { class: "check" }, boxes[index], h("code", { text: type }))));
  return [element, () => boxes.filter((box) => box.checked).map((box) => box.value)];
}

export async function renderWebhooks(body, context, shown = null) {
  const { sites } = await get("/api/sites");
  if (!sites.length) {
    fill(body, h("p", { class: "muted", text: t("no_sites") }));
    return;
  }
  if (!sites.some((site) => site.id === chosenSite)) chosenSite = sites[0].id;
  const site = chosenSite;
  const chooser = h("select", {
    id: "webhooks-site",
    on: { change: (event) => { chosenSite = event.target.value; openLog = ""; renderWebhooks(body, context); } },
  }, sites.map((s) => h("option", { value: s.id, text: s.name, selected: s.id === site })));
  const { endpoints, event_types: types } = await get(`/api/sites/${encodeURIComponent(site)}/webhooks`);
  const rerender = (secret = null) => renderWebhooks(body, context, secret);

  const url = h("input", { id: "new-webhook-url", type: "url", dir: "ltr", placeholder: "https://", required: true });
  const notes = h("input", { id: "new-webhook-notes", type: "checkbox" });
  const [events, chosenEvents] = eventChooser(types, types.filter((type) => type !== "alert.created"), "new-webhook-events");
  const log = h("div", { id: "webhook-log" });

  fill(body,
    h("div", { class: "inline-form" }, field("site", chooser),
      h("p", { class: "muted", text: t("webhooks_intro") })),
    shown ? secretOnce(shown) : null,
    endpoints.length
      ? h("table", { class: "table", id: "webhooks-table" },
        h("thead", {}, h("tr", {}, ["webhook_url", "webhook_events", "webhook_state", ""].map((key) =>
          h("th", { text: key ? t(key) : "" })))),
        h("tbody", {}, endpoints.map((endpoint) => endpointRow(endpoint, types, context, rerender, log))))
      : h("p", { class: "muted", id: "webhooks-empty", text: t("webhooks_empty") }),
    log,
    h("form", {
      class: "card form",
      id: "new-webhook",
      on: {
        submit: async (event) => {
          event.preventDefault();
          const created = await attempt(context, () => post(`/api/sites/${encodeURIComponent(site)}/webhooks`, {
            url: url.value.trim(),
            events: chosenEvents(),
            include_notes: notes.checked,
          }));
          if (created) rerender(created.secret);
        },
      },
    },
    h("h3", { text: t("webhook_add") }),
    field("webhook_url", url),
    events,
    h("label", { class: "check" }, notes, h("span", { text: t("webhook_include_notes") })),
    h("button", { class: "primary", type: "submit", id: "new-webhook-submit", text: t("add") })));
  if (openLog && endpoints.some((endpoint) => endpoint.id === openLog)) {
    await renderLog(log, openLog, context);
  }
}

function endpointRow(endpoint, types, context, rerender, log) {
  const slot = h("div", { class: "webhook-edit" });
  const state = endpoint.enabled
    ? t("webhook_enabled")
    : endpoint.disabled_reason === "failing" ? t("webhook_disabled_failing") : t("webhook_disabled");
  return h("tr", { data: { id: endpoint.id } },
    h("td", {}, h("code", { dir: "ltr", text: endpoint.url }),
      endpoint.include_notes ? h("span", { class: "chip", text: t("webhook_notes") }) : null,
      endpoint.previous_secret_valid_until
        ? h("p", { class: "muted", text: t("secret_previous_until", { time: clock(endpoint.previous_secret_valid_until) }) })
        : null,
      slot),
    h("td", {}, endpoint.events.map((type) => h("code", { class: "chip", text: type }))),
    h("td", { class: "webhook-state", text: state }),
    h("td", { class: "actions" },
      h("button", {
        class: "webhook-toggle",
        text: endpoint.enabled ? t("webhook_disable") : t("webhook_enable"),
        on: {
          click: async () => {
            if (await attempt(context, () => patch(`/api/webhooks/${encodeURIComponent(endpoint.id)}`, { enabled: !endpoint.enabled }))) rerender();
          },
        },
      }),
      h("button", {
        class: "webhook-edit-events",
        text: t("webhook_edit_events"),
        on: {
          click: () => {
            const [events, chosen] = eventChooser(types, endpoint.events, `webhook-events-${endpoint.id}`);
            const notes = h("input", { type: "checkbox", checked: endpoint.include_notes });
            fill(slot, h("form", {
              class: "form",
              on: {
                submit: async (event) => {
                  event.preventDefault();
                  const saved = await attempt(context, () => patch(`/api/webhooks/${encodeURIComponent(endpoint.id)}`,
                    { events: chosen(), include_notes: notes.checked }));
                  if (saved) rerender();
                },
              },
            }, events,
            h("label", { class: "check" }, notes, h("span", { text: t("webhook_include_notes") })),
            h("button", { class: "primary", type: "submit", text: t("save") }),
            h("button", { text: t("cancel"), on: { click: () => fill(slot) } })));
          },
        },
      }),
      h("button", {
        class: "webhook-rotate",
        text: t("rotate_secret"),
        on: {
          click: async () => {
            const rotated = await attempt(context, () => post(`/api/webhooks/${encodeURIComponent(endpoint.id)}/rotate`));
            if (rotated) rerender(rotated.secret);
          },
        },
      }),
      h("button", {
        class: "webhook-log-open",
        text: t("webhook_log"),
        on: { click: () => { openLog = endpoint.id; renderLog(log, endpoint.id, context); } },
      }),
      h("button", {
        class: "danger webhook-delete",
        text: t("delete"),
        on: {
          click: () => {
            fill(slot, h("div", { class: "confirm", attrs: { role: "group" } },
              h("span", { text: t("webhook_delete_confirm") }),
              h("button", {
                class: "danger confirm-yes",
                text: t("delete"),
                on: {
                  click: async () => {
                    if (await attempt(context, () => del(`/api/webhooks/${encodeURIComponent(endpoint.id)}`))) rerender();
                  },
                },
              }),
              h("button", { class: "confirm-no", text: t("cancel"), on: { click: () => fill(slot) } })));
          },
        },
      })));
}

async function renderLog(log, endpointId, context) {
  const { deliveries } = await get(`/api/webhooks/${encodeURIComponent(endpointId)}/deliveries?limit=100`);
  fill(log, h("section", { class: "card" },
    h("h3", { text: t("webhook_log") }),
    deliveries.length ? h("table", { class: "table", id: "webhook-deliveries" },
      h("thead", {}, h("tr", {}, ["webhook_event", "webhook_status", "webhook_code", "webhook_duration", "webhook_time", "webhook_attempts", ""]
        .map((key) => h("th", { text: key ? t(key) : "" })))),
      h("tbody", {}, deliveries.map((delivery) => h("tr", { data: { id: String(delivery.id), status: delivery.status } },
        h("td", {}, h("code", { text: delivery.event_type }), " ", h("code", { class: "muted", text: delivery.event_id })),
        h("td", { class: "delivery-status", text: t(`webhook_status_${delivery.status}`) }),
        h("td", { text: delivery.last_status ?? (delivery.last_error ? "—" : "") }),
        h("td", { text: delivery.last_duration_ms === null ? "" : `${delivery.last_duration_ms} ms` }),
        h("td", { text: clock(delivery.delivered_at ?? delivery.last_attempt_at ?? delivery.created_at) }),
        h("td", { text: String(delivery.attempts) }),
        h("td", {}, h("button", {
          class: "webhook-redeliver",
          text: t("webhook_redeliver"),
          on: {
            click: async () => {
              if (await attempt(context, () => post(`/api/webhook-deliveries/${encodeURIComponent(delivery.id)}/redeliver`))) {
                context.toast(t("webhook_redelivered"));
                renderLog(log, endpointId, context);
              }
            },
          },
        }))))))
      : h("p", { class: "muted", text: t("webhook_log_empty") })));
}
