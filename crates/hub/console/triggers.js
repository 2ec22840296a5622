// The admin area's proactive triggers page (issue 19): a site's triggers (list, add,
// edit, remove: page conditions, customer-attribute conditions, the message and who it
// is from, open the panel, hand off, frequency caps, business hours only), saved as the
// site setting `triggers` through PUT /api/sites/{id}/settings (the hub validates it and
// answers 400 with the reason), and how often each was shown, opened, replied to and
// turned into a conversation in the last 30 days (GET /api/triggers/report).
// docs/protocol.md, "Proactive triggers", has the rule format.

import { get, put } from "./api.js";
import { number, t } from "./i18n.js";
import { fill, h } from "./dom.js";

/** The site shown (kept across re-renders). */
let chosenSite = "";

const KINDS = ["url", "time_on_page", "scroll", "exit_intent", "visitor", "language", "event"];
/** The field each kind of page condition takes, and whether it is a number. */
const KIND_FIELD = {
  url: ["pattern", false],
  time_on_page: ["seconds", true],
  scroll: ["percent", true],
  exit_intent: null,
  visitor: ["is", false],
  language: ["is", false],
  event: ["name", false],
};
const OPS = ["eq", "ne", "gt", "ge", "lt", "le", "in", "exists"];

async function attempt(context, action) {
  try {
    return await action();
  } catch (err) {
    context.toast(t("error", { message: err.message }));
    return null;
  }
}

const field = (label, input) => h("label", { class: "field" }, h("span", { text: t(label) }), input);
const check = (label, input) => h("label", { class: "check" }, input, h("span", { text: t(label) }));

/** One page condition's row; returns [element, () => condition]. */
function conditionRow(condition, onRemove) {
  const kind = h("select", { class: "trigger-kind", attrs: { "aria-label": t("trigger_condition") } },
    KINDS.map((k) => h("option", { value: k, text: t(`trigger_kind_${k}`), selected: condition.kind === k })));
  const slot = h("span", { class: "trigger-value" });
  let read = () => ({ kind: kind.value });
  const draw = () => {
    const spec = KIND_FIELD[kind.value];
    if (!spec) {
      fill(slot);
      read = () => ({ kind: kind.value });
      return;
    }
    const [name, numeric] = spec;
    const previous = condition.kind === kind.value ? condition[name] : undefined;
    let input;
    if (kind.value === "visitor") {
      input = h("select", { attrs: { "aria-label": t("trigger_kind_visitor") } }, ["new", "returning"].map((v) =>
        h("option", { value: v, text: t(`trigger_visitor_${v}`), selected: previous === v })));
    } else {
      input = h("input", {
        type: numeric ? "number" : "text",
        dir: "ltr",
        class: numeric ? "narrow" : "",
        min: numeric ? 1 : undefined,
        value: previous ?? "",
        placeholder: { url: "/pricing*", language: "ar", event: "checkout_failed" }[kind.value] ?? "",
        attrs: { "aria-label": t(`trigger_kind_${kind.value}`) },
      });
    }
    fill(slot, input);
    read = () => ({ kind: kind.value, [name]: numeric ? Number(input.value) : input.value.trim() });
  };
  kind.addEventListener("change", draw);
  draw();
  const row = h("div", { class: "trigger-condition inline-form" }, kind, slot,
    h("button", { class: "link", text: t("delete"), on: { click: () => { row.remove(); onRemove(); } } }));
  return [row, () => read()];
}

/** One attribute condition's row; returns [element, () => condition]. */
function attributeRow(condition, onRemove) {
  const attribute = h("input", { class: "trigger-attribute", dir: "ltr", value: condition.attribute ?? "", placeholder: "plan",
    attrs: { "aria-label": t("trigger_attribute") } });
  const op = h("select", { class: "trigger-op", attrs: { "aria-label": t("trigger_op") } }, OPS.map((o) => h("option", { value: o, text: o, selected: condition.op === o })));
  const shown = Array.isArray(condition.value) ? condition.value.join(", ") : (condition.value ?? "");
  const value = h("input", { class: "trigger-attribute-value", dir: "ltr", value: shown, placeholder: "enterprise",
    attrs: { "aria-label": t("trigger_value") } });
  const row = h("div", { class: "trigger-condition inline-form" }, attribute, op, value,
    h("button", { class: "link", text: t("delete"), on: { click: () => { row.remove(); onRemove(); } } }));
  const scalar = (text) => (text !== "" && !Number.isNaN(Number(text)) ? Number(text)
    : text === "true" ? true : text === "false" ? false : text);
  return [row, () => ({
    attribute: attribute.value.trim(),
    op: op.value,
    value: op.value === "in" ? value.value.split(",").map((v) => scalar(v.trim())).filter((v) => v !== "")
      : op.value === "exists" ? null : scalar(value.value.trim()),
  })];
}

/** One trigger's card; returns [element, () => trigger]. */
function triggerCard(trigger, agents, onRemove) {
  const conditions = [];
  const attributes = [];
  const id = h("input", { class: "trigger-id", dir: "ltr", value: trigger.id ?? "", placeholder: "pricing", required: true });
  const enabled = h("input", { type: "checkbox", class: "trigger-enabled", checked: trigger.enabled !== false });
  const message = h("textarea", { class: "trigger-message", dir: "auto", rows: 2, value: trigger.message ?? "" });
  const from = h("select", { class: "trigger-from" },
    h("option", { value: "bot", text: t("trigger_from_bot"), selected: (trigger.from ?? "bot") === "bot" }),
    agents.map((agent) => h("option", { value: agent.id, text: agent.name, selected: trigger.from === agent.id })));
  const open = h("input", { type: "checkbox", class: "trigger-open", checked: !!trigger.open });
  const handoff = h("input", { type: "checkbox", class: "trigger-handoff", checked: !!trigger.handoff });
  const hours = h("input", { type: "checkbox", class: "trigger-hours", checked: !!trigger.only_when_open });
  const perVisitor = h("input", { type: "number", min: 0, max: 100, class: "narrow trigger-per-visitor", value: trigger.per_visitor ?? 1 });
  const perSession = h("input", { type: "number", min: 0, max: 100, class: "narrow trigger-per-session", value: trigger.per_session ?? 1 });
  const conditionList = h("div", { class: "trigger-conditions" });
  const attributeList = h("div", { class: "trigger-attributes" });
  const addCondition = (condition) => {
    const entry = conditionRow(condition, () => conditions.splice(conditions.indexOf(entry), 1));
    conditions.push(entry);
    conditionList.appendChild(entry[0]);
  };
  const addAttribute = (condition) => {
    const entry = attributeRow(condition, () => attributes.splice(attributes.indexOf(entry), 1));
    attributes.push(entry);
    attributeList.appendChild(entry[0]);
  };
  (trigger.when?.length ? trigger.when : [{ kind: "url", pattern: "" }]).forEach(addCondition);
  (trigger.attributes ?? []).forEach(addAttribute);
  const card = h("fieldset", { class: "card form trigger" },
    h("legend", { text: trigger.id || t("trigger_new") }),
    h("div", { class: "inline-form" }, field("trigger_id", id), check("trigger_enabled", enabled)),
    field("trigger_message", message),
    field("trigger_from", from),
    h("h4", { text: t("trigger_when") }), conditionList,
    h("button", { class: "link trigger-add-condition", text: t("trigger_add_condition"), on: { click: () => addCondition({ kind: "time_on_page", seconds: 30 }) } }),
    h("h4", { text: t("trigger_attributes") }), attributeList,
    h("button", { class: "link trigger-add-attribute", text: t("trigger_add_attribute"), on: { click: () => addAttribute({ op: "eq" }) } }),
    h("div", { class: "inline-form" },
      check("trigger_open", open), check("trigger_handoff", handoff), check("trigger_only_when_open", hours)),
    h("div", { class: "inline-form" }, field("trigger_per_visitor", perVisitor), field("trigger_per_session", perSession)),
    h("button", { class: "danger trigger-remove", text: t("delete"), on: { click: () => { card.remove(); onRemove(); } } }));
  return [card, () => ({
    id: id.value.trim(),
    enabled: enabled.checked,
    when: conditions.map(([, read]) => read()),
    attributes: attributes.map(([, read]) => read()),
    message: message.value,
    from: from.value,
    open: open.checked,
    handoff: handoff.checked,
    per_visitor: Number(perVisitor.value || 0),
    per_session: Number(perSession.value || 0),
    only_when_open: hours.checked,
  })];
}

function reportTable(rows) {
  if (!rows.length) return h("p", { class: "muted", id: "triggers-report-empty", text: t("triggers_report_empty") });
  const keys = ["shown", "opened", "replied", "converted"];
  return h("table", { class: "table", id: "triggers-report" },
    h("thead", {}, h("tr", {}, h("th", { text: t("trigger_id") }), keys.map((key) => h("th", { text: t(`trigger_${key}`) })))),
    h("tbody", {}, rows.map((row) => h("tr", { data: { id: row.id } },
      h("td", {}, h("code", { text: row.id })),
      keys.map((key) => h("td", { class: `num trigger-${key}`, text: number(row[key]) }))))));
}

export async function renderTriggers(body, context) {
  const { sites } = await get("/api/sites");
  if (!sites.length) {
    fill(body, h("p", { class: "muted", text: t("no_sites") }));
    return;
  }
  if (!sites.some((site) => site.id === chosenSite)) chosenSite = sites[0].id;
  const site = sites.find((s) => s.id === chosenSite);
  const chooser = h("select", {
    id: "triggers-site",
    on: { change: (event) => { chosenSite = event.target.value; renderTriggers(body, context); } },
  }, sites.map((s) => h("option", { value: s.id, text: s.name, selected: s.id === site.id })));
  const [report, online] = await Promise.all([
    get(`/api/triggers/report?site=${encodeURIComponent(site.id)}`),
    get(`/api/agents?site=${encodeURIComponent(site.id)}`),
  ]);
  const agents = online.sites?.[site.id] ?? [];
  const cards = [];
  const list = h("div", { id: "triggers-list" });
  const add = (trigger) => {
    const entry = triggerCard(trigger, agents, () => cards.splice(cards.indexOf(entry), 1));
    cards.push(entry);
    list.appendChild(entry[0]);
  };
  (site.settings?.triggers ?? []).forEach(add);
  fill(body,
    h("div", { class: "inline-form" }, field("site", chooser),
      h("p", { class: "muted", text: t("triggers_intro") })),
    h("h3", { text: t("triggers_report") }),
    reportTable(report.triggers ?? []),
    h("h3", { text: t("admin_triggers") }),
    list,
    h("div", { class: "inline-form" },
      h("button", { id: "trigger-add", text: t("trigger_add"), on: { click: () => add({}) } }),
      h("button", {
        class: "primary",
        id: "triggers-save",
        text: t("save"),
        on: {
          click: async () => {
            const settings = { ...site.settings, triggers: cards.map(([, read]) => read()) };
            const saved = await attempt(context, () => put(`/api/sites/${encodeURIComponent(site.id)}/settings`, settings));
            if (saved) {
              context.toast(t("saved"));
              renderTriggers(body, context);
            }
          },
        },
      })));
}
