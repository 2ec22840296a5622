// The customer timeline (issue 19; docs/console.md): "Customer history" in the
// conversation's header opens one list, newest first, of everything the customer did
// here: every conversation of theirs on every channel, on this browser and on every
// other browser or device where the site identified them as the same customer; their
// callback requests; the proactive messages shown to them; and the pages of their
// current session. A conversation in the list opens it (closed ones read-only).
//
// It reads `GET /api/visitors/{id}/timeline` a page at a time. Everything from visitors
// (titles, addresses, messages) goes in as text (textContent), with its own direction.

import { get, query } from "./api.js";
import { clock, number, plural, t } from "./i18n.js";
import { fill, h, svg } from "./dom.js";

/** Entries asked for per page. */
const PAGE = 50;

/** Icons (decorative: the label says the same in words), as SVG paths: no icon font. */
const ICONS = {
  conversation: "M3 4h14v9H8l-4 3v-3H3z",
  email: "M2 5h16v10H2z M2 5l8 6 8-6",
  page_view: "M5 2h7l4 4v12H5z M12 2v4h4",
  offline_request: "M10 3a3 3 0 1 0 0.01 0 M4 17c0-4.5 12-4.5 12 0",
  trigger: "M11 2L4 11h5l-1 7 7-9h-5z",
};

function icon(entry) {
  const name = entry.kind === "conversation" && entry.conversation?.channel === "email"
    ? "email"
    : entry.kind.startsWith("trigger_") ? "trigger" : entry.kind;
  return svg("svg", { class: "tl-icon", viewBox: "0 0 20 20", width: "18", height: "18", "aria-hidden": "true", focusable: "false" },
    svg("path", { d: ICONS[name] || ICONS.page_view, fill: "none", stroke: "currentColor", "stroke-width": "1.6", "stroke-linejoin": "round" }));
}

/** The one dialog, made on first use. */
function dialogElement() {
  let dialog = document.getElementById("timeline-dialog");
  if (!dialog) {
    dialog = h("dialog", { id: "timeline-dialog", class: "timeline-dialog", attrs: { "aria-labelledby": "timeline-title" } });
    document.body.appendChild(dialog);
  }
  return dialog;
}

/**
 * The "Customer history" button of a conversation (`summary`); `open(id, summary)`
 * opens a conversation of the list.
 */
export function timelineButton(summary, open) {
  const visitor = summary?.visitor?.id;
  if (!visitor) return null;
  dialogElement(); // what aria-controls names must exist
  return h("button", {
    id: "timeline-button",
    text: t("timeline"),
    attrs: { "aria-haspopup": "dialog", "aria-controls": "timeline-dialog" },
    on: { click: () => showTimeline(summary, open) },
  });
}

/** Opens the dialog with the first page of the customer's timeline. */
export async function showTimeline(summary, open) {
  const dialog = dialogElement();
  const list = h("ol", { id: "timeline-list", class: "timeline-list" });
  const status = h("p", { id: "timeline-status", class: "muted", attrs: { role: "status" }, text: t("tl_loading") });
  const linked = h("p", { id: "timeline-linked", class: "muted" });
  const more = h("button", { id: "timeline-more", class: "load-more", hidden: true, text: t("load_more") });
  fill(dialog,
    h("div", { class: "timeline-head" },
      h("h2", { id: "timeline-title", text: t("timeline") }),
      h("button", { id: "timeline-close", class: "link", text: t("tl_close"), on: { click: () => dialog.close() } })),
    linked,
    status,
    list,
    more);
  if (!dialog.open) dialog.showModal();
  const context = { current: summary.id, open: (id, conversation) => { dialog.close(); open(id, conversation); } };
  let before = null;
  const load = async () => {
    more.disabled = true;
    try {
      const answer = await get(`/api/visitors/${encodeURIComponent(summary.visitor.id)}/timeline${query({ limit: PAGE, before })}`);
      linked.textContent = answer.identified
        ? plural("timeline_linked", answer.visitors.length)
        : t("timeline_anonymous");
      for (const entry of answer.entries) list.appendChild(entryNode(entry, context));
      status.textContent = list.children.length ? "" : t("timeline_empty");
      status.hidden = Boolean(list.children.length);
      before = answer.next;
      more.hidden = !before;
    } catch (err) {
      status.hidden = false;
      status.textContent = t("error", { message: err.message });
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
}

/** When, as the reader's clock shows it. */
function when(ms) {
  return h("time", { class: "tl-time", dateTime: new Date(ms).toISOString(), text: clock(ms) });
}

/** One entry of the list. */
export function entryNode(entry, context) {
  const kind = entry.kind;
  return h("li", { class: `tl-entry tl-${kind}`, data: { kind } },
    icon(entry),
    h("div", { class: "tl-body" }, body(entry, context)));
}

function body(entry, context) {
  switch (entry.kind) {
    case "conversation":
      return conversationBody(entry, context);
    case "page_view":
      return [
        h("div", { class: "tl-line" }, h("span", { class: "tl-label", text: t("tl_page_view") }), when(entry.at)),
        h("div", { class: "tl-title", dir: "auto", text: entry.title || entry.url || "" }),
        entry.url ? h("div", { class: "tl-url", dir: "ltr", text: entry.url }) : null,
      ];
    case "offline_request":
      return [
        h("div", { class: "tl-line" },
          h("span", { class: "tl-label", text: t("tl_offline_request") }), when(entry.at),
          entry.done_at ? h("span", { class: "badge", text: t("tl_done") }) : null),
        h("div", { class: "tl-who", dir: "auto", text: [entry.name, entry.email, entry.phone].filter(Boolean).join(" · ") }),
        entry.message ? h("div", { class: "tl-text", dir: "auto", text: entry.message }) : null,
      ];
    case "trigger_shown":
    case "trigger_opened":
    case "trigger_replied":
    case "trigger_converted":
      return [
        h("div", { class: "tl-line" }, h("span", { class: "tl-label", text: t(`tl_${entry.kind}`) }), when(entry.at)),
        entry.text ? h("div", { class: "tl-text", dir: "auto", text: entry.text }) : null,
      ];
    default:
      return h("div", { class: "tl-line" }, h("span", { class: "tl-label", text: entry.kind }), when(entry.at));
  }
}

function conversationBody(entry, context) {
  const summary = entry.conversation;
  const current = summary.id === context.current;
  const label = `${t(summary.channel === "email" ? "tl_conversation_email" : "tl_conversation")} · ${t(`state_${summary.state}`)}`;
  const rating = entry.rating
    ? h("div", { class: "tl-rating", attrs: { "aria-label": t("tl_rating", { n: number(entry.rating.score) }) } },
      h("span", { attrs: { "aria-hidden": "true" }, text: `${"★".repeat(entry.rating.score)}${"☆".repeat(5 - entry.rating.score)}` }),
      entry.rating.comment ? h("span", { class: "tl-text", dir: "auto", text: ` ${entry.rating.comment}` }) : null)
    : null;
  return [
    h("div", { class: "tl-line" },
      current
        ? h("span", { class: "tl-label", text: label })
        : h("button", {
          class: "link tl-open",
          data: { conversation: summary.id },
          text: label,
          on: { click: () => context.open(summary.id, summary) },
        }),
      when(entry.at),
      current ? h("span", { class: "badge tl-current", text: t("tl_this_conversation") }) : null),
    summary.preview ? h("div", { class: "tl-text", dir: "auto", text: summary.preview.text }) : null,
    entry.closed_at ? h("div", { class: "tl-closed muted" }, t("tl_closed_at"), " ", when(entry.closed_at)) : null,
    rating,
  ];
}
