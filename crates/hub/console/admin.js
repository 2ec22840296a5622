// The admin area: agents (with password resets), departments and canned responses
// (each of one site), sites (the embed snippet, the identity secret and its rotation,
// the widget's settings), the bot's rules, offline requests and alerts (a page at a
// time). Every form talks to the REST API; the hub checks the admin role again on
// every request.

import { ApiError, del, get, patch, post, put, query } from "./api.js";
import { clock, lang, number, plural, t } from "./i18n.js";
import { fill, h } from "./dom.js";
import { copyButton } from "./copy.js";
import { renderTokens } from "./tokens.js";
import { renderWebhooks } from "./webhooks.js";
import { renderKeyAccounts } from "./key_accounts.js";
import { renderTriggers } from "./triggers.js";
import { replyByEmail } from "./email.js";

const SECTIONS = ["agents", "departments", "sites", "canned", "rules", "offline", "alerts", "triggers", "webhooks", "tokens", "key_accounts", "privacy"];
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

let section = "agents";
/** The site whose departments or canned responses are shown (kept across re-renders). */
let chosenSite = "";

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
    triggers: renderTriggers,
    webhooks: renderWebhooks,
    privacy: renderPrivacy,
    tokens: renderTokens,
    key_accounts: renderKeyAccounts,
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

/**
 * A small "are you sure?" strip: `question`, a button doing `action` and Cancel. It
 * replaces the contents of `slot` until answered (no native dialog: the console keeps
 * one look, and the strip is translated like the rest).
 */
function confirmIn(slot, question, yesLabel, action) {
  fill(slot, h("div", { class: "confirm", attrs: { role: "group" } },
    h("span", { text: question }),
    h("button", {
      class: "danger confirm-yes",
      text: yesLabel,
      on: {
        click: async () => {
          fill(slot);
          await action();
        },
      },
    }),
    h("button", { class: "confirm-no", text: t("cancel"), on: { click: () => fill(slot) } })));
  slot.querySelector(".confirm-yes").focus();
}

/**
 * A chooser of the site whose departments or canned responses are shown; `chosenSite`
 * keeps the choice. Returns the select (null without sites).
 */
function siteChooser(sites, id, onChange) {
  if (!sites.length) return null;
  if (!sites.some((site) => site.id === chosenSite)) chosenSite = sites[0].id;
  return h("select", {
    id,
    on: { change: (event) => { chosenSite = event.target.value; onChange(); } },
  }, sites.map((site) => h("option", { value: site.id, text: site.name, selected: site.id === chosenSite })));
}

// ---------------------------------------------------------------- agents

async function renderAgents(body, context) {
  const [{ agents }, { sites }] = await Promise.all([get("/api/admin/agents"), get("/api/sites")]);
  // A reset's new password, shown once, above the table.
  const passwordResult = h("div", { id: "password-result", attrs: { role: "status" } });
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
    const resetSlot = h("div", { class: "reset-slot" });
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
      }),
      h("button", {
        class: "reset-password",
        text: t("reset_password"),
        on: { click: () => askPasswordReset(agent, resetSlot, passwordResult, context) },
      }),
      resetSlot));
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
    passwordResult,
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

/**
 * Asks, in the agent's row, whether to reset their password: empty makes the hub
 * generate one (shown once); every session of theirs ends either way.
 */
function askPasswordReset(agent, slot, shown, context) {
  const typed = h("input", {
    class: "reset-password-input",
    type: "text",
    autocomplete: "off",
    attrs: { "aria-label": t("new_password_optional") },
    placeholder: t("new_password_optional"),
  });
  const problem = h("p", { class: "error reset-error", attrs: { role: "alert" } });
  fill(slot, h("div", { class: "confirm", attrs: { role: "group" } },
    h("span", { dir: "auto", text: t("reset_password_confirm", { name: agent.name }) }),
    typed,
    h("small", { class: "hint", text: t("password_policy") }),
    h("button", {
      class: "danger confirm-yes",
      text: t("reset_password"),
      on: {
        click: async () => {
          problem.textContent = "";
          const body = typed.value ? { password: typed.value } : {};
          try {
            const answer = await post(`/api/admin/agents/${encodeURIComponent(agent.id)}/password`, body);
            fill(slot);
            showNewPassword(shown, agent, answer.password, context);
          } catch (err) {
            problem.textContent = t("not_saved", { message: err.message });
          }
        },
      },
    }),
    h("button", { class: "confirm-no", text: t("cancel"), on: { click: () => fill(slot) } }),
    problem));
  typed.focus();
}

/** The outcome of a reset: a generated password is shown this once, with Copy. */
function showNewPassword(shown, agent, password, context) {
  if (!password) {
    fill(shown, h("p", { class: "result", dir: "auto", text: t("password_set", { email: agent.email }) }));
    return;
  }
  const code = h("code", { class: "new-password", text: password });
  fill(shown, h("div", { class: "card once" },
    h("p", { dir: "auto", text: t("password_reset_done", { email: agent.email }) }),
    h("p", {}, code, " ", copyButton(() => password, context)),
    h("p", { class: "muted", text: t("password_shown_once") }),
    h("button", { class: "link", text: t("hide"), on: { click: () => fill(shown) } })));
}

// ---------------------------------------------------------------- departments

async function renderDepartments(body, context) {
  const { sites } = await get("/api/sites");
  const chooser = siteChooser(sites, "departments-site", () => renderDepartments(body, context));
  if (!chooser) {
    fill(body, h("p", { class: "muted", text: t("no_sites") }));
    return;
  }
  const site = chosenSite;
  const { departments } = await get(`/api/departments${query({ site })}`);
  const name = h("input", { id: "new-department", dir: "auto" });
  fill(body,
    h("div", { class: "inline-form" }, field("site", chooser),
      h("p", { class: "muted", text: t("departments_per_site") })),
    departments.length
      ? h("ul", { class: "plain-list", id: "departments-list", data: { site } }, departments.map((department) => h("li", {},
        h("span", { dir: "auto", text: department.name }),
        h("button", {
          class: "danger",
          text: t("delete"),
          attrs: { "aria-label": `${t("delete")} ${department.name}` },
          on: {
            click: async () => {
              await attempt(context, () => del(`/api/departments/${encodeURIComponent(department.name)}${query({ site })}`));
              context.refreshReference();
              renderDepartments(body, context);
            },
          },
        }))))
      : h("p", { class: "muted", id: "departments-list", data: { site }, text: t("no_departments_site") }),
    h("form", {
      class: "inline-form",
      on: {
        submit: async (event) => {
          event.preventDefault();
          if (!name.value.trim()) return;
          await attempt(context, () => post("/api/departments", { site_id: site, name: name.value.trim() }));
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
  return h("div", { class: "snippet-box" },
    h("span", { class: "label", text: t("snippet") }), code, copyButton(() => text, context));
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
  const logo = h("input", { type: "url", class: "site-logo", placeholder: "https://shop.example/logo.png", value: settings.logo ?? "" });
  const prechat = h("input", { type: "checkbox", class: "site-prechat", checked: !!settings.prechat });
  const bot = h("input", { type: "checkbox", class: "site-bot", checked: settings.bot !== false });
  // Empty: the hub's default (600 s). Sent as typed: the hub says what it refuses.
  const callbackAfter = h("input", {
    type: "number", min: 0, step: 1, class: "narrow site-callback-after", placeholder: "600",
    value: settings.callback_after_secs ?? "",
  });
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
      logo: logo.value.trim() || null,
      greeting: { en: greetings.en.value, ar: greetings.ar.value, fa: greetings.fa.value },
      business_hours: Object.keys(open).length ? { utc_offset_minutes: Number(offset.value) || 0, open } : null,
      prechat: prechat.checked,
      bot: bot.checked,
      bot_identity: botIdentity(settings.bot_identity ?? null, identityFields),
    };
    if (callbackAfter.value.trim() === "") delete newSettings.callback_after_secs;
    else newSettings.callback_after_secs = Number(callbackAfter.value);
    // The hub's message (a bad colour, a logo that is not https://, ...) is shown
    // beside the Save button, where the admin is looking.
    problem.textContent = "";
    try {
      const answer = await patch(`/api/sites/${encodeURIComponent(site.id)}`, {
        name: name.value.trim(),
        origins: splitList(origins.value),
      });
      site.origins = answer.site.origins;
      const saved = await put(`/api/sites/${encodeURIComponent(site.id)}/settings`, newSettings);
      site.settings = saved.settings ?? newSettings;
      context.toast(t("saved"));
    } catch (err) {
      problem.textContent = t("not_saved", { message: err.message });
    }
  };
  const problem = h("p", { class: "error site-error", attrs: { role: "alert" } });
  return h("section", { class: "card site", data: { id: site.id } },
    h("h3", { dir: "auto", text: site.name }),
    h("p", {}, h("span", { class: "label", text: `${t("public_key")}: ` }), h("code", { class: "site-key", text: site.key })),
    snippetBox(snippetFor(site), context),
    refusedOrigins(site, origins, context),
    identityBlock(site, context),
    h("div", { class: "grid" },
      field("site_name", name), field("origins", origins), field("color", color),
      field("position_label", position), field("widget_locale", locale), field("logo", logo),
      ["en", "ar", "fa"].map((code) => h("label", { class: "field" }, h("span", { text: t("greeting", { lang: code }) }), greetings[code])),
      h("label", { class: "field check" }, prechat, h("span", { text: t("prechat") })),
      h("label", { class: "field check" }, bot, h("span", { text: t("bot_enabled") })),
      field("callback_after", callbackAfter)),
    h("fieldset", { class: "identity" },
      h("legend", { text: t("bot_identity") }),
      settings.bot_identity ? null : h("p", { class: "muted", text: t("bot_identity_pack") }),
      IDENTITY.map((key) => field(`identity_${key}`, identityFields[key]))),
    h("fieldset", { class: "hours" },
      h("legend", { text: t("business_hours") }),
      field("utc_offset", offset),
      WEEKDAYS.map((day, index) => h("label", { class: "field day" }, h("span", { text: weekdayName(index) }), days[day]))),
    h("div", { class: "actions" }, h("button", { class: "primary site-save", text: t("save"), on: { click: save } })),
    problem);
}

/**
 * Origins the hub refused the widget on for this site lately (newest first, from
 * `GET /api/sites/{id}/refused-origins`), each with Allow: the site's origins with it
 * added (`PATCH /api/sites/{id}`), after which the hub drops it from the list and the
 * widget on that page connects. `originsBox` (the card's origins field) follows.
 */
function refusedOrigins(site, originsBox, context) {
  const path = `/api/sites/${encodeURIComponent(site.id)}/refused-origins`;
  const block = h("section", { class: "refused-origins", data: { site: site.id } });
  const heading = () => h("h4", { text: t("refused_title") });
  const allow = async (origin, button) => {
    button.disabled = true;
    const origins = [...new Set([...(site.origins || []), origin])];
    const answer = await attempt(context, () => patch(`/api/sites/${encodeURIComponent(site.id)}`, { origins }));
    if (answer) {
      site.origins = answer.site.origins;
      originsBox.value = site.origins.join("\n");
      context.toast(t("refused_allowed", { origin }));
    }
    await load();
  };
  const load = async () => {
    let answer;
    try {
      answer = await get(path);
    } catch (err) {
      fill(block, heading(), h("p", { class: "error", text: t("error", { message: err.message }) }));
      return;
    }
    const refused = answer.origins || [];
    if (!refused.length) {
      fill(block, heading(), h("p", { class: "muted refused-none", text: t("refused_none") }));
      return;
    }
    fill(block, heading(),
      h("p", { class: "muted", text: t("refused_intro") }),
      h("ul", { class: "plain-list refused-list" }, refused.map((entry) => {
        const button = h("button", {
          class: "primary refused-allow",
          text: t("refused_allow"),
          attrs: { "aria-label": `${t("refused_allow")} ${entry.origin}` },
        });
        button.addEventListener("click", () => allow(entry.origin, button));
        return h("li", { data: { origin: entry.origin } },
          h("code", { class: "refused-origin", dir: "ltr", text: entry.origin }),
          h("span", { class: "muted refused-seen", text: plural("refused_seen", entry.count, { time: clock(entry.last_seen) }) }),
          button);
      })));
  };
  fill(block, heading());
  load();
  return block;
}

/**
 * The site's identity secret (identity v2): masked until shown, copyable, rotated on
 * confirmation; after a rotation, until when the previous one still verifies; and how
 * the site's backend signs a customer's identity with it.
 */
function identityBlock(site, context) {
  const block = h("fieldset", { class: "identity-secret" });
  const render = (current, revealed) => {
    const secret = current.identity_secret || "";
    const code = h("code", { class: "secret", dir: "ltr", data: { revealed: revealed ? "yes" : "no" }, text: revealed ? secret : "•".repeat(24) });
    const confirmSlot = h("div", { class: "confirm-slot" });
    const notes = [];
    if (current.identity_secret_rotated_at) {
      notes.push(h("p", { class: "muted secret-rotated", text: t("secret_rotated_at", { time: clock(current.identity_secret_rotated_at) }) }));
    }
    if (current.previous_secret_valid_until) {
      notes.push(h("p", { class: "secret-grace", text: t("secret_previous_until", { time: clock(current.previous_secret_valid_until) }) }));
    }
    fill(block,
      h("legend", { text: t("identity_secret") }),
      h("div", { class: "snippet-box" },
        code,
        h("button", {
          class: "secret-toggle",
          text: revealed ? t("hide") : t("show"),
          attrs: { "aria-pressed": revealed ? "true" : "false" },
          on: { click: () => render(current, !revealed) },
        }),
        copyButton(() => secret, context),
        h("button", {
          class: "danger secret-rotate",
          text: t("rotate_secret"),
          on: {
            click: () => confirmIn(confirmSlot, t("rotate_secret_confirm"), t("rotate_secret"), async () => {
              try {
                const answer = await post(`/api/sites/${encodeURIComponent(site.id)}/identity-secret`);
                Object.assign(site, answer.site);
                render(answer.site, true);
                context.toast(t("secret_rotated"));
              } catch (err) {
                fill(confirmSlot, h("p", { class: "error", attrs: { role: "alert" }, text: t("not_saved", { message: err.message }) }));
              }
            }),
          },
        })),
      confirmSlot,
      notes,
      h("details", { class: "identity-howto" },
        h("summary", { text: t("identity_howto_title") }),
        h("p", { text: t("identity_howto") }),
        h("pre", { class: "snippet", dir: "ltr", text: IDENTITY_EXAMPLE })));
  };
  render(site, false);
  return block;
}

/**
 * The claims of a token and how a page passes it on: code only, no prose (the
 * translated `identity_howto` above it says what each part means).
 */
const IDENTITY_EXAMPLE = `{ "alg": "HS256", "typ": "JWT" }
{ "sub": "42", "exp": 1767229200, "name": "Mona", "email": "mona@example.com",
  "attributes": { "plan": "gold" } }

Salam.identify({ token: jwt });`;

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
  const { sites } = await get("/api/sites");
  const chooser = siteChooser(sites, "canned-site", () => renderCanned(body, context));
  if (!chooser) {
    fill(body, h("p", { class: "muted", text: t("no_sites") }));
    return;
  }
  const site = chosenSite;
  const { canned } = await get(`/api/canned${query({ site })}`);
  const shortcut = h("input", { id: "new-canned-shortcut" });
  const text = h("textarea", { id: "new-canned-text", dir: "auto", rows: 2 });
  fill(body,
    h("div", { class: "inline-form" }, field("site", chooser),
      h("p", { class: "muted", text: t("canned_per_site") })),
    h("table", { class: "table", id: "canned-table", data: { site } },
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
            site_id: site,
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

/**
 * A list the hub serves a page at a time, newest first (`?before=ID&limit=N`, answered
 * with `next_before`): the pages loaded so far are kept while the section is shown,
 * and "Load more" fetches the next.
 */
function pagedList(path, name) {
  return {
    items: [],
    next: null,
    loaded: false,
    async more() {
      const answer = await get(`${path}${query({ before: this.loaded ? this.next : null })}`);
      const known = new Set(this.items.map((item) => item.id));
      this.items.push(...answer[name].filter((item) => !known.has(item.id)));
      this.next = answer.next_before ?? null;
      this.loaded = true;
    },
  };
}

let offline = null;

async function renderOffline(body, context, keep) {
  if (!keep || !offline) {
    offline = pagedList("/api/offline-requests", "requests");
    await offline.more();
  }
  const open = offline.items.filter((request) => !request.done_at);
  const more = loadMore("offline-more", offline, () => renderOffline(body, context, true), context);
  if (!open.length) {
    fill(body, h("p", { class: "muted", id: "offline-empty", text: t("requests_empty") }), more);
    return;
  }
  fill(body, h("table", { class: "table", id: "offline-table" },
    h("thead", {}, h("tr", {}, ["created", "name", "email", "phone", "message", ""].map((key) => h("th", { text: key ? t(key) : "" })))),
    h("tbody", {}, open.map((request) => h("tr", { data: { id: String(request.id) } },
      h("td", { text: clock(request.created_at) }),
      h("td", { dir: "auto", text: request.name || t("none") }),
      h("td", { dir: "auto", text: request.email || t("none") }),
      h("td", { dir: "auto", text: request.phone || t("none") }),
      h("td", { dir: "auto", class: "pre", text: request.message || t("none") }),
      h("td", {}, h("button", {
        text: t("done"),
        on: {
          click: async () => {
            if (await attempt(context, () => post(`/api/offline-requests/${encodeURIComponent(request.id)}/done`))) {
              request.done_at = Date.now();
            }
            renderOffline(body, context, true);
          },
        },
      }), replyByEmail(request, context, () => {
        request.done_at = Date.now();
        renderOffline(body, context, true);
      })))))),
  more);
}

/** "Load more" for a paged list, or nothing when the last page is in. */
function loadMore(id, list, rerender, context) {
  if (list.next === null) return null;
  return h("button", {
    id,
    class: "load-more",
    text: t("load_more"),
    on: {
      click: async () => {
        if (await attempt(context, () => list.more().then(() => true))) rerender();
      },
    },
  });
}

let alertPages = null;
/** Alerts acknowledged in this console since the list was loaded. */
const acknowledged = new Set();

/** The alert kinds the console puts in words (`alert_<kind>`). */
const ALERT_KINDS = ["low_rating", "webhook_disabled"];

/** An alert's kind in the UI language; one the console does not know shows as is. */
export function alertKind(alert) {
  return ALERT_KINDS.includes(alert.kind) ? t(`alert_${alert.kind}`) : alert.kind;
}

/**
 * What an alert says, in the UI language: `{text, comment}`. A low rating's detail is
 * written by the hub as `rated N/5` or `rated N/5: comment`; the visitor's comment is
 * kept as typed (it is shown with `dir="auto"`). Anything else shows as the hub wrote it.
 */
export function alertText(alert) {
  const rated = alert.kind === "low_rating" && /^rated (\d+)\/(\d+)(?:: ([\s\S]*))?$/.exec(alert.detail || "");
  if (rated) {
    return {
      text: t("alert_rated", { score: number(Number(rated[1])), max: number(Number(rated[2])) }),
      comment: rated[3] || "",
    };
  }
  return { text: alert.detail || "", comment: "" };
}

/** A one-line summary of an alert, for the live toast. */
export function alertSummary(alert) {
  const { text, comment } = alertText(alert);
  return [alertKind(alert), text, comment ? `“${comment}”` : ""].filter(Boolean).join(" · ");
}

async function renderAlerts(body, context, keep) {
  if (!keep || !alertPages) {
    alertPages = pagedList("/api/alerts", "alerts");
    await alertPages.more();
  }
  const open = alertPages.items.filter((alert) => !alert.acknowledged_at && !acknowledged.has(alert.id));
  const more = loadMore("alerts-more", alertPages, () => renderAlerts(body, context, true), context);
  if (!open.length) {
    fill(body, h("p", { class: "muted", id: "alerts-empty", text: t("alerts_empty") }), more);
    return;
  }
  fill(body, h("table", { class: "table", id: "alerts-table" },
    h("thead", {}, h("tr", {}, ["alert_when", "alert_what", "alert_details", "conversation", ""].map((key) =>
      h("th", { text: key ? t(key) : "" })))),
    h("tbody", {}, open.map((alert) => {
      const { text, comment } = alertText(alert);
      return h("tr", { data: { id: String(alert.id), kind: alert.kind } },
        h("td", { text: clock(alert.at) }),
        h("td", { class: "alert-kind", text: alertKind(alert) }),
        h("td", { class: "alert-detail" },
          h("span", { class: "alert-text", text }),
          comment ? h("q", { class: "alert-comment", dir: "auto", text: comment }) : null),
        h("td", {}, alert.conversation ? h("a", {
          class: "alert-conversation",
          // The inbox opens the conversation named after the view (`#inbox/ID`).
          href: `#inbox/${encodeURIComponent(alert.conversation)}`,
          data: { conversation: alert.conversation },
        }, t("alert_open"), " ", h("code", { text: alert.conversation })) : null),
        h("td", {}, h("button", {
          text: t("ack"),
          on: {
            click: async () => {
              if (await attempt(context, () => post(`/api/alerts/${encodeURIComponent(alert.id)}/ack`))) {
                acknowledged.add(alert.id);
              }
              renderAlerts(body, context, true);
            },
          },
        })));
    }))),
  more);
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
