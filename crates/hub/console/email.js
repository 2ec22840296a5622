// E-mail as a channel (issue 17; docs/email.md): the badge of a conversation that
// reaches its visitor by e-mail, and "Reply by e-mail" on an offline request (the
// answer becomes an agent message of an e-mail conversation and goes out by mail).

import { post } from "./api.js";
import { t } from "./i18n.js";
import { h } from "./dom.js";

/** The e-mail badge of a conversation summary (nothing for a chat). */
export function channelBadge(summary) {
  if (!summary || summary.channel !== "email") return null;
  return h("span", { class: "badge channel-email", text: t("channel_email"), title: t("channel_email_hint") });
}

/**
 * "Reply by e-mail" for an offline request with an address: a button that opens a
 * small form; on success `done()` runs (the request is done then).
 */
export function replyByEmail(request, context, done) {
  if (!request.email) return null;
  const text = h("textarea", { rows: 3, dir: "auto", class: "email-reply-text", attrs: { "aria-label": t("reply_by_email") } });
  const form = h("form", {
    class: "email-reply",
    hidden: true,
    on: {
      submit: async (event) => {
        event.preventDefault();
        if (!text.value.trim()) return;
        try {
          await post(`/api/offline-requests/${encodeURIComponent(request.id)}/reply`, { text: text.value });
          context.toast(t("email_reply_sent", { email: request.email }));
          done();
        } catch (err) {
          context.toast(t("error", { message: err.message }));
        }
      },
    },
  }, text, h("button", { type: "submit", class: "primary", text: t("send_email") }));
  const open = h("button", {
    class: "reply-email",
    text: t("reply_by_email"),
    on: { click: () => { form.hidden = !form.hidden; if (!form.hidden) text.focus(); } },
  });
  return h("div", { class: "email-reply-box" }, open, form);
}
