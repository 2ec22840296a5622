// The admin area: agents, departments, sites (with the embed snippet), canned
// responses, the bot's rules, offline requests and alerts. Every form talks to the
// REST API; the hub checks the admin role again on every request.

import { ApiError, del, get, patch, post, put, query } from "./api.js";
import { clock, lang, t } from "./i18n.js";
import { fill, h } from "./dom.js";

const SECTIONS = ["agents", "departments", "sites", "canned", "rules", "offline", "alerts", "privacy"];
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

let section = "agents";

/** The weekday's short name in the UI language (0 = Monday; 2024-01-01 was one). */
function weekdayName(index) {
  return new Intl.DateTimeFormat(lang(), { weekday: "short" }).format(new Date(2024, 0, 1 + index));
}

export function renderAdmin(root, context) {
  const body = h("div", { class: "admin-body", id: "admin-body" });
  fill(root,
    h("nav", { class: "subnav", id: "admin-nav" }, SECTIONS.map((name) => h("button", {
      id: `admin-tab-${name}`,
      class: name === section ? "active" : "",
      text: t(`admin_${name}`),
      on: { click: () => { section = name; renderAdmin(root, context); } },
    }))),
    body);
  const render = {
    agents: renderAgents,
    departments: renderDepartments,
    sites: renderSites,
    canned: renderCanned,
    rules: renderRules,
    offline: renderOffline,
    alerts: renderAlerts,
    privacy: renderPrivacy,
  }[section];
  render(body, context).catch((err) => {
    fill(body, h("p", { class: "error", text: t("error", { message: err.message }) }));
  });
}

/** Runs `action`; shows its error in `context.toast` and returns null on failure. */
async function attempt(context, action) {
  try {
    return await action();
  } catch (err) {
    context.toast(t("error", { message: err.message }));
    return null;
  }
}

const field = (label, input) => h("label", { class: "field" }, h("span", { text: t(label) }), input);
const splitList = (text) => text.split(/[,\n]/).map((item) => item.trim()).filter(Boolean);

// ---------------------------------------------------------------- agents

async function renderAgents(body, context) {
  const [{ agents }, { sites }] = await Promise.all([get("/api/admin/agents"), get("/api/sites")]);
  // "All sites" is a membership of its own: it includes sites created later.
  const siteBoxes = (selected, all, prefix) => {
    const every = h("input", { type: "checkbox", value: "*", checked: all, class: `${prefix}-all-sites` });
    const boxes = sites.map((site) => h("input", {
      type: "checkbox", value: site.id, checked: all || selected.includes(site.id), disabled: all, class: `${prefix}-site`,
    }));
    every.addEventListener("change", () => {
      for (const box of boxes) {
        box.disabled = every.checked;
        if (every.checked) box.checked = true;
      }
    });
    return h("span", { class: "checks" },
      h("label", {}, every, h("span", { text: t("all_sites") })),
      sites.map((site, index) => h("label", {}, boxes[index], h("span", { dir: "auto", text: site.name }))));
  };
  /** `{all_sites: true}` or `{all_sites: false, site_ids: [...]}` from the boxes. */
  const membership = (checks) => {
    const all = checks.querySelector("input[value='*']").checked;
    if (all) return { all_sites: true };
    return {
      all_sites: false,
      site_ids: [...checks.querySelectorAll("input:checked")].map((box) => box.value).filter((id) => id !== "*"),
    };
  };
  const roleSelect = (value) => h("select", {},
    h("option", { value: "agent", text: t("role_agent"), selected: value === "agent" }),
    h("option", { value: "admin", text: t("role_admin"), selected: value === "admin" }));
  const rows = agents.map((agent) => {
    const name = h("input", { value: agent.name, dir: "auto" });
    const role = roleSelect(agent.role);
    const capacity = h("input", { type: "number", min: 0, value: agent.capacity ?? "", class: "narrow" });
    const departments = h("input", { value: (agent.departments || []).join(", ") });
    const disabled = h("input", { type: "checkbox", checked: agent.disabled });
    const siteChecks = siteBoxes(agent.site_ids || [], agent.all_sites, "edit");
    return h("tr", { data: { id: agent.id } },
      h("td", {}, name, h("div", { class: "muted", text: agent.email })),
      h("td", {}, role),
      h("td", {}, capacity),
      h("td", {}, departments),
      h("td", {}, siteChecks),
      h("td", {}, disabled),
      h("td", {}, h("button", {
        text: t("save"),
        on: {
          click: async () => {
            const change = {
              name: name.value.trim(),
              role: role.value,
              capacity: capacity.value === "" ? null : Number(capacity.value),
              departments: splitList(departments.value),
              disabled: disabled.checked,
              ...membership(siteChecks),
            };
            if (await attempt(context, () => patch(`/api/admin/agents/${encodeURIComponent(agent.id)}`, change))) {
              context.toast(t("saved"));
            }
          },
        },
      })));
  });
  const email = h("input", { id: "new-agent-email", type: "email" });
  const name = h("input", { id: "new-agent-name", dir: "auto" });
  const role = roleSelect("agent");
  const capacity = h("input", { id: "new-agent-capacity", type: "number", min: 0, class: "narrow" });
  const departments = h("input", { id: "new-agent-departments" });
  // Nothing is granted by default; a hub with a single site pre-checks it (visibly).
  const newSites = siteBoxes(sites.length === 1 ? [sites[0].id] : [], false, "new");
  const result = h("p", { id: "new-agent-result", class: "result" });
  fill(body,
    h("table", { class: "table", id: "agents-table" },
      h("thead", {}, h("tr", {}, ["name", "role", "capacity", "departments", "sites", "disabled", ""].map((key) => h("th", { text: key ? t(key) : "" })))),
      h("tbody", {}, rows)),
    h("form", {
      class: "card form",
      id: "agents-form",
      on: {
        submit: async (event) => {
          event.preventDefault();
          const request = {
            email: email.value.trim(),
            name: name.value.trim(),
            role: role.value,
            departments: splitList(departments.value),
            ...membership(newSites),
          };
          if (capacity.value !== "") request.capacity = Number(capacity.value);
          const answer = await attempt(context, () => post("/api/admin/agents", request));
          if (!answer) return;
          await renderAgents(body, context);
          if (answer.password) {
            const shown = body.querySelector("#new-agent-result");
            shown.textContent = t("generated_password", { email: answer.agent.email, password: answer.password });
          }
        },
      },
    },
    h("h3", { text: t("new_agent") }),
    field("email", email), field("name", name), field("role", role), field("capacity", capacity),
    field("departments", departments), field("sites", newSites),
    h("button", { class: "primary", type: "submit", text: t("add") }),
    result));
}

// ---------------------------------------------------------------- departments

async function renderDepartments(body, context) {
  const { departments } = await get("/api/departments");
  const name = h("input", { id: "new-department", dir: "auto" });
  fill(body,
    h("ul", { class: "plain-list", id: "departments-list" }, departments.map((department) => h("li", {},
      h("span", { dir: "auto", text: department }),
      h("button", {
        class: "danger",
        text: t("delete"),
        on: {
          click: async () => {
            await attempt(context, () => del(`/api/departments/${encodeURIComponent(department)}`));
            context.refreshReference();
            renderDepartments(body, context);
          },
        },
      })))),
    h("form", {
      class: "inline-form",
      on: {
        submit: async (event) => {
          event.preventDefault();
          if (!name.value.trim()) return;
          await attempt(context, () => post("/api/departments", { name: name.value.trim() }));
          context.refreshReference();
          renderDepartments(body, context);
        },
      },
    }, field("new_department", name), h("button", { class: "primary", type: "submit", text: t("add") })));
}

// ---------------------------------------------------------------- sites

function snippetFor(site) {
  const script = document.createElement("script");
  script.src = `${location.origin}/widget.js`;
  script.dataset.site = site.key;
  script.async = true;
  // outerHTML of a freshly built element: the key is escaped by the browser.
  return script.outerHTML.replace(' async=""', " async");
}

function snippetBox(text, context) {
  const code = h("code", { class: "snippet", text });
  const copy = h("button", {
    class: "copy-button",
    text: t("copy"),
    on: {
      click: async () => {
        let ok = false;
        try {
          await navigator.clipboard.writeText(text);
          ok = true;
        } catch {
          // No clipboard permission (plain http, an embedded browser): select it instead.
          const range = document.createRange();
          range.selectNodeContents(code);
          const selection = getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          ok = document.execCommand("copy");
        }
        copy.textContent = ok ? t("copied") : t("copy");
        copy.dataset.copied = ok ? "yes" : "no";
        if (ok) context.toast(t("copied"));
      },
    },
  });
  return h("div", { class: "snippet-box" }, h("span", { class: "label", text: t("snippet") }), code, copy);
}

async function renderSites(body, context, created) {
  const { sites } = await get("/api/sites");
  const name = h("input", { id: "new-site-name", dir: "auto" });
  const origins = h("textarea", { id: "new-site-origins", rows: 2, placeholder: "https://shop.example" });
  const form = h("form", {
    class: "card form",
    id: "new-site-form",
    on: {
      submit: async (event) => {
        event.preventDefault();
        const answer = await attempt(context, () => post("/api/sites", {
          name: name.value.trim(),
          origins: splitList(origins.value),
        }));
        if (answer) renderSites(body, context, answer);
      },
    },
  },
  h("h3", { text: t("new_site") }),
  field("site_name", name), field("origins", origins),
  h("button", { class: "primary", type: "submit", id: "new-site-submit", text: t("add") }),
  created ? h("div", { id: "new-site-result" },
    h("p", { dir: "auto", text: `${created.site.name} · ${created.site.key}` }),
    snippetBox(created.snippet, context)) : null);
  fill(body, form, sites.map((site) => siteCard(site, context)));
}

function siteCard(site, context) {
  const settings = site.settings || {};
  const name = h("input", { value: site.name, dir: "auto" });
  const origins = h("textarea", { rows: 2, value: (site.origins || []).join("\n") });
  const color = h("input", { type: "color", value: /^#[0-9a-f]{6}$/i.test(settings.color || "") ? settings.color : "#0f766e" });
  const position = h("select", {},
    ["right", "left"].map((value) => h("option", { value, text: t(value), selected: settings.position === value })));
  const locale = h("select", {},
    [["", t("auto")], ["en", "English"], ["ar", "العربية"], ["fa", "فارسی"]].map(([value, label]) =>
      h("option", { value, text: label, selected: (settings.locale || "") === value })));
  const greetings = Object.fromEntries(["en", "ar", "fa"].map((code) =>
    [code, h("input", { dir: "auto", value: settings.greeting?.[code] ?? "" })]));
  const hours = settings.business_hours || { utc_offset_minutes: 0, open: {} };
  const offset = h("input", { type: "number", class: "narrow", value: hours.utc_offset_minutes ?? 0 });
  const days = Object.fromEntries(WEEKDAYS.map((day) =>
    [day, h("input", { class: "narrow-wide", placeholder: "09:00-17:00", value: hours.open?.[day] ?? "" })]));
  const prechat = h("input", { type: "checkbox", class: "site-prechat", checked: !!settings.prechat });
  const bot = h("input", { type: "checkbox", class: "site-bot", checked: settings.bot !== false });
  // Who the bot speaks for: the rule pack's {placeholders}. Empty: the site's name and
  // first origin for the store name and website, nothing for the rest.
  const identity = settings.bot_identity || {};
  const identityText = (value) => (typeof value === "string" ? value : value?.en ?? "");
  const identityFields = Object.fromEntries(IDENTITY.map((key) =>
    [key, h("input", { dir: "auto", class: `identity-${key}`, value: identityText(identity[key]) })]));
  const save = async () => {
    const open = {};
    for (const day of WEEKDAYS) if (days[day].value.trim()) open[day] = days[day].value.trim();
    const newSettings = {
      ...settings,
      color: color.value,
      position: position.value,
      locale: locale.value || null,
      greeting: { en: greetings.en.value, ar: greetings.ar.value, fa: greetings.fa.value },
      business_hours: Object.keys(open).length ? { utc_offset_minutes: Number(offset.value) || 0, open } : null,
      prechat: prechat.checked,
      bot: bot.checked,
      bot_identity: botIdentity(settings.bot_identity ?? null, identityFields),
    };
    const renamed = await attempt(context, () => patch(`/api/sites/${encodeURIComponent(site.id)}`, {
      name: name.value.trim(),
      origins: splitList(origins.value),
    }));
    const stored = renamed && await attempt(context, () => put(`/api/sites/${encodeURIComponent(site.id)}/settings`, newSettings));
    if (stored) context.toast(t("saved"));
  };
  return h("section", { class: "card site", data: { id: site.id } },
    h("h3", { dir: "auto", text: site.name }),
    h("p", {}, h("span", { class: "label", text: `${t("public_key")}: ` }), h("code", { class: "site-key", text: site.key })),
    snippetBox(snippetFor(site), context),
    h("div", { class: "grid" },
      field("site_name", name), field("origins", origins), field("color", color),
      field("position_label", position), field("widget_locale", locale),
      ["en", "ar", "fa"].map((code) => h("label", { class: "field" }, h("span", { text: t("greeting", { lang: code }) }), greetings[code])),
      h("label", { class: "field check" }, prechat, h("span", { text: t("prechat") })),
      h("label", { class: "field check" }, bot, h("span", { text: t("bot_enabled") }))),
    h("fieldset", { class: "identity" },
      h("legend", { text: t("bot_identity") }),
      settings.bot_identity ? null : h("p", { class: "muted", text: t("bot_identity_pack") }),
      IDENTITY.map((key) => field(`identity_${key}`, identityFields[key]))),
    h("fieldset", { class: "hours" },
      h("legend", { text: t("business_hours") }),
      field("utc_offset", offset),
      WEEKDAYS.map((day, index) => h("label", { class: "field day" }, h("span", { text: weekdayName(index) }), days[day]))),
    h("button", { class: "primary site-save", text: t("save"), on: { click: save } }));
}

/** The placeholders of the default rule pack a site fills in. */
const IDENTITY = ["store_name", "site_url", "email", "phone", "whatsapp", "social_handle", "address"];

/**
 * The identity to store: the fields as typed (per-language values kept where a field
 * was left as it was), or the pack's own (`null`) for a site that never had one and
 * whose fields stay empty.
 */
function botIdentity(previous, fields) {
  const next = {};
  for (const key of IDENTITY) {
    const typed = fields[key].value.trim();
    const before = previous?.[key];
    const shown = typeof before === "string" ? before : before?.en ?? "";
    if (typed === shown && before !== undefined) next[key] = before;
    else if (typed) next[key] = typed;
  }
  if (previous === null && Object.keys(next).length === 0) return null;
  return next;
}

// ---------------------------------------------------------------- canned responses

async function renderCanned(body, context) {
  const { canned } = await get("/api/canned");
  const shortcut = h("input", { id: "new-canned-shortcut" });
  const text = h("textarea", { id: "new-canned-text", dir: "auto", rows: 2 });
  fill(body,
    h("table", { class: "table", id: "canned-table" },
      h("thead", {}, h("tr", {}, h("th", { text: t("shortcut") }), h("th", { text: t("text") }), h("th", {}))),
      h("tbody", {}, canned.map((item) => h("tr", {},
        h("td", {}, h("code", { text: `/${item.shortcut}` })),
        h("td", { dir: "auto", text: item.text }),
        h("td", {}, h("button", {
          class: "danger",
          text: t("delete"),
          on: {
            click: async () => {
              await attempt(context, () => del(`/api/canned/${encodeURIComponent(item.id)}`));
              await context.refreshReference();
              renderCanned(body, context);
            },
          },
        })))))),
    h("form", {
      class: "card form",
      on: {
        submit: async (event) => {
          event.preventDefault();
          const answer = await attempt(context, () => post("/api/canned", {
            shortcut: shortcut.value.trim().replace(/^\//, ""),
            text: text.value.trim(),
          }));
          if (!answer) return;
          await context.refreshReference();
          renderCanned(body, context);
        },
      },
    },
    field("shortcut", shortcut), field("text", text),
    h("button", { class: "primary", type: "submit", id: "new-canned-submit", text: t("add") })));
}

// ---------------------------------------------------------------- bot rules

async function renderRules(body, context) {
  const answer = await get("/api/rules");
  const sentence = h("input", { id: "try-text", dir: "auto" });
  const language = h("select", { id: "try-lang" },
    [["", t("auto")], ["en", "English"], ["ar", "العربية"], ["fa", "فارسی"]].map(([value, label]) => h("option", { value, text: label })));
  const result = h("dl", { class: "try-result", id: "try-result" });
  const reloadStatus = h("span", { class: "result", id: "reload-result" });
  fill(body,
    h("section", { class: "card" },
      h("h3", { text: t("try_sentence") }),
      h("form", {
        class: "inline-form",
        on: {
          submit: async (event) => {
            event.preventDefault();
            const request = { text: sentence.value };
            if (language.value) request.lang = language.value;
            const decision = await attempt(context, () => post("/api/rules/try", request));
            if (!decision) return;
            const rows = [
              ["decision", decision.decision], ["rule", decision.rule], ["intent", decision.intent],
              ["score", decision.score], ["language", decision.lang], ["departments", decision.department],
              ["handoff_reason", decision.handoff_reason], ["normalized", decision.normalized],
              ["bot_reply", decision.reply],
            ];
            fill(result, rows.filter(([, value]) => value !== null && value !== undefined && value !== "")
              .map(([key, value]) => h("div", { class: "detail" },
                h("dt", { text: key === "rule" ? "rule" : t(key) }),
                h("dd", { dir: "auto", text: typeof value === "number" ? value.toFixed(3) : String(value) }))));
            if (decision.quick_replies?.length) {
              result.appendChild(h("div", { class: "quick-replies" }, decision.quick_replies.map((reply) =>
                h("span", { class: "chip", dir: "auto", text: reply.label ?? String(reply) }))));
            }
          },
        },
      }, sentence, language, h("button", { class: "primary", type: "submit", id: "try-submit", text: t("try_button") })),
      result),
    h("section", { class: "card" },
      h("p", { text: t("rules_source", { source: answer.source }) }),
      answer.last_error ? h("pre", { class: "error", text: t("rules_error", { error: answer.last_error }) }) : null,
      context.store.role === "admin" ? h("button", {
        id: "reload-rules",
        text: t("reload"),
        on: {
          click: async () => {
            const reloaded = await attempt(context, () => post("/api/rules/reload"));
            if (reloaded) reloadStatus.textContent = t("reloaded", { n: reloaded.rules });
          },
        },
      }) : null,
      reloadStatus,
      h("table", { class: "table", id: "rules-table" },
        h("thead", {}, h("tr", {}, h("th", { text: "id" }), h("th", { text: t("intent") }), h("th", { text: "file" }))),
        h("tbody", {}, answer.rules.map((rule) => h("tr", {},
          h("td", {}, h("code", { text: rule.id })), h("td", { text: rule.intent }), h("td", { text: rule.file })))))));
}

// ---------------------------------------------------------------- offline requests and alerts

async function renderOffline(body, context) {
  const { requests } = await get("/api/offline-requests");
  const open = requests.filter((request) => !request.done_at);
  if (!open.length) {
    fill(body, h("p", { class: "muted", text: t("requests_empty") }));
    return;
  }
  fill(body, h("table", { class: "table", id: "offline-table" },
    h("thead", {}, h("tr", {}, ["created", "name", "email", "phone", "message", ""].map((key) => h("th", { text: key ? t(key) : "" })))),
    h("tbody", {}, open.map((request) => h("tr", {},
      h("td", { text: clock(request.created_at) }),
      h("td", { dir: "auto", text: request.name || t("none") }),
      h("td", { dir: "auto", text: request.email || t("none") }),
      h("td", { dir: "auto", text: request.phone || t("none") }),
      h("td", { dir: "auto", class: "pre", text: request.message || t("none") }),
      h("td", {}, h("button", {
        text: t("done"),
        on: {
          click: async () => {
            await attempt(context, () => post(`/api/offline-requests/${encodeURIComponent(request.id)}/done`));
            renderOffline(body, context);
          },
        },
      })))))));
}

async function renderAlerts(body, context) {
  const { alerts } = await get("/api/alerts");
  const open = alerts.filter((alert) => !alert.acked_at);
  if (!open.length) {
    fill(body, h("p", { class: "muted", text: t("alerts_empty") }));
    return;
  }
  fill(body, h("table", { class: "table", id: "alerts-table" },
    h("tbody", {}, open.map((alert) => h("tr", {},
      h("td", { text: clock(alert.at) }),
      h("td", { text: alert.kind }),
      h("td", { dir: "auto", text: alert.detail }),
      h("td", {}, alert.conversation ? h("code", { text: alert.conversation }) : null),
      h("td", {}, h("button", {
        text: t("ack"),
        on: {
          click: async () => {
            await attempt(context, () => post(`/api/alerts/${encodeURIComponent(alert.id)}/ack`));
            renderAlerts(body, context);
          },
        },
      })))))));
}

// ---------------------------------------------------------------- a visitor's data, retention, audit log

async function renderPrivacy(body, context) {
  const [{ entries }, { sites }] = await Promise.all([get("/api/admin/audit?limit=50"), get("/api/sites")]);
  const kind = h("select", { id: "privacy-kind" },
    [["email", t("email")], ["external_id", t("privacy_external_id")], ["visitor", t("privacy_visitor_id")]]
      .map(([value, label]) => h("option", { value, text: label })));
  const value = h("input", { id: "privacy-value", dir: "ltr" });
  const result = h("div", { id: "privacy-result", class: "result" });
  const who = () => ({ [kind.value]: value.value.trim() });
  /** Like `attempt`, but "no visitor matches" is an answer, not an error. */
  const ask = async (action) => {
    try {
      return await action();
    } catch (err) {
      const text = err instanceof ApiError && err.status === 404 ? t("privacy_not_found") : t("error", { message: err.message });
      fill(result, h("p", { class: "error", text }));
      return null;
    }
  };
  const confirm = h("button", {
    id: "privacy-confirm",
    class: "danger",
    hidden: true,
    text: t("privacy_confirm"),
    on: {
      click: async () => {
        confirm.hidden = true;
        const answer = await ask(() => post("/api/admin/visitors/erase", who()));
        if (!answer) return;
        const total = answer.erased.total;
        await renderPrivacy(body, context);
        body.querySelector("#privacy-result").appendChild(h("p", {
          id: "privacy-erased",
          text: t("privacy_erased", {
            visitors: total.visitors, conversations: total.conversations,
            messages: total.messages, requests: total.offline_requests,
          }),
        }));
      },
    },
  });
  const exportButton = h("button", {
    id: "privacy-export",
    class: "primary",
    type: "submit",
    text: t("privacy_export"),
  });
  const eraseButton = h("button", {
    id: "privacy-erase",
    class: "danger",
    text: t("privacy_erase"),
    on: { click: () => { if (value.value.trim()) confirm.hidden = false; } },
  });
  const form = h("form", {
    class: "card form",
    id: "privacy-form",
    on: {
      submit: async (event) => {
        event.preventDefault();
        if (!value.value.trim()) return;
        const answer = await ask(() => get(`/api/admin/visitors/export${query(who())}`));
        if (!answer) return;
        const conversations = answer.visitors.reduce((n, visitor) => n + visitor.conversations.length, 0);
        const file = new Blob([JSON.stringify(answer, null, 2)], { type: "application/json" });
        fill(result,
          h("p", { id: "privacy-exported", text: t("privacy_exported", { visitors: answer.visitors.length, conversations }) }),
          h("a", { id: "privacy-download", href: URL.createObjectURL(file), download: "salam-visitor-export.json", text: t("privacy_download") }));
      },
    },
  },
  h("h3", { text: t("admin_privacy") }),
  h("p", { class: "muted", text: t("privacy_intro") }),
  field("privacy_by", kind), field("privacy_value", value),
  h("div", { class: "actions" }, exportButton, eraseButton, confirm),
  result);
  fill(body,
    form,
    h("section", { class: "card", id: "retention" },
      h("h3", { text: t("retention") }),
      h("p", { class: "muted", text: t("retention_intro") }),
      sites.map((site) => retentionRow(site, context))),
    h("section", { class: "card" },
      h("h3", { text: t("audit_log") }),
      entries.length ? h("table", { class: "table", id: "audit-table" },
        h("thead", {}, h("tr", {}, ["audit_when", "audit_who", "audit_what", "audit_subject", ""].map((key) => h("th", { text: key ? t(key) : "" })))),
        h("tbody", {}, entries.map((entry) => h("tr", {},
          h("td", { text: clock(entry.at) }),
          h("td", { dir: "ltr", text: entry.actor }),
          h("td", {}, h("code", { text: entry.action })),
          h("td", {}, h("code", { text: entry.subject })),
          h("td", { class: "muted", dir: "ltr", text: JSON.stringify(entry.detail) })))))
        : h("p", { class: "muted", text: t("audit_empty") })));
}

function retentionRow(site, context) {
  const days = h("input", { type: "number", min: 1, class: "narrow retention-days", value: site.settings?.retention_days ?? "" });
  return h("form", {
    class: "inline-form",
    data: { id: site.id },
    on: {
      submit: async (event) => {
        event.preventDefault();
        const settings = { ...site.settings, retention_days: days.value === "" ? null : Math.max(1, Number(days.value)) };
        if (await attempt(context, () => put(`/api/sites/${encodeURIComponent(site.id)}/settings`, settings))) {
          site.settings = settings;
          context.toast(t("saved"));
        }
      },
    },
  }, h("span", { dir: "auto", text: site.name }), field("retention_days", days),
  h("button", { type: "submit", class: "retention-save", text: t("save") }));
}
