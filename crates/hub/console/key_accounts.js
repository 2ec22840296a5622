// The admin area's key accounts (issue 19): per-site priority rules on the customer's
// attributes (from contacts and signed identities), next to the VIP list. A rule has a
// name, conditions that must all hold (attribute, operator, value), how much it raises
// the queue priority, whether the chat skips the bot, a department and an account
// owner who is offered the chat first. The first matching rule applies, so the list
// is shown in order. Rules are saved with the rest of the site's settings
// (PUT /api/sites/{id}/settings); the hub's message says what it refuses.

import { get, put, query } from "./api.js";
import { t } from "./i18n.js";
import { fill, h } from "./dom.js";

const OPS = ["eq", "ne", "gt", "ge", "lt", "le", "in", "exists"];

/** The site whose rules are shown (kept across re-renders). */
let chosenSite = "";

/** A condition's value as the hub wants it, from what was typed. */
export function conditionValue(op, text) {
  const trimmed = text.trim();
  if (op === "exists") return null;
  if (op === "in") return trimmed.split(",").map((item) => item.trim()).filter(Boolean);
  if (["gt", "ge", "lt", "le"].includes(op)) return trimmed === "" ? trimmed : Number(trimmed);
  return trimmed;
}

/** A condition in words: `plan in enterprise, business`. */
export function conditionText(condition) {
  const value = condition.op === "exists" ? ""
    : Array.isArray(condition.value) ? condition.value.join(", ") : String(condition.value ?? "");
  return `${condition.attribute} ${t(`ka_op_${condition.op}`)} ${value}`.trim();
}

/** Renders the key-accounts section into `body`. */
export async function renderKeyAccounts(body, context) {
  const { sites } = await get("/api/sites");
  if (!sites.length) {
    fill(body, h("p", { class: "muted", text: t("tokens_no_sites") }));
    return;
  }
  if (!sites.some((site) => site.id === chosenSite)) chosenSite = sites[0].id;
  const site = sites.find((each) => each.id === chosenSite);
  const [{ departments }, { agents }] = await Promise.all([
    get(`/api/departments${query({ site: site.id })}`),
    get("/api/admin/agents"),
  ]);
  const settings = site.settings || {};
  const rules = settings.key_accounts || [];
  const rerender = () => renderKeyAccounts(body, context).catch((err) => context.toast(t("error", { message: err.message })));
  const problem = h("p", { class: "error", id: "ka-error", attrs: { role: "alert" } });

  /** Saves the site's settings with `next` as its rules; true when stored. */
  const save = async (next) => {
    problem.textContent = "";
    try {
      const saved = await put(`/api/sites/${encodeURIComponent(site.id)}/settings`, { ...settings, key_accounts: next });
      site.settings = saved.settings ?? { ...settings, key_accounts: next };
      context.toast(t("saved"));
      return true;
    } catch (err) {
      problem.textContent = t("not_saved", { message: err.message });
      return false;
    }
  };

  const chooser = h("select", {
    id: "ka-site",
    attrs: { "aria-label": t("site") },
    on: { change: (event) => { chosenSite = event.target.value; rerender(); } },
  }, sites.map((each) => h("option", { value: each.id, text: each.name, selected: each.id === chosenSite })));

  const list = rules.length ? h("table", { class: "table", id: "ka-table" },
    h("thead", {}, h("tr", {}, ["ka_name", "ka_conditions", "ka_priority", "ka_skip_bot", "department_label", "ka_owner", ""]
      .map((key) => h("th", { text: key ? t(key) : "" })))),
    h("tbody", {}, rules.map((rule, index) => h("tr", { class: "ka-rule", data: { index } },
      h("td", { dir: "auto", class: "ka-rule-name", text: rule.name }),
      h("td", { dir: "ltr", text: rule.conditions.map(conditionText).join(" · ") }),
      h("td", { class: "num", text: String(rule.priority) }),
      h("td", { text: rule.skip_bot ? t("yes") : t("no") }),
      h("td", { dir: "auto", text: rule.department || "" }),
      h("td", { dir: "auto", text: rule.owner || "" }),
      h("td", {}, h("button", {
        class: "danger ka-remove",
        text: t("delete"),
        attrs: { "aria-label": `${t("delete")} ${rule.name}` },
        on: { click: async () => { if (await save(rules.filter((_, other) => other !== index))) rerender(); } },
      })))))) : h("p", { class: "muted", id: "ka-empty", text: t("ka_empty") });

  // The form for a new rule, with one condition row to start.
  const name = h("input", { id: "ka-name", dir: "auto", maxLength: 100 });
  const priority = h("input", { id: "ka-priority", type: "number", min: 1, max: 1000, step: 1, value: 50, class: "narrow" });
  const skipBot = h("input", { id: "ka-skip-bot", type: "checkbox" });
  const department = h("select", { id: "ka-department" },
    h("option", { value: "", text: t("ka_none") }),
    departments.map((each) => h("option", { value: each.name, text: each.name })));
  const ofSite = (agent) => agent.role === "admin" || agent.all_sites || (agent.site_ids || []).includes(site.id);
  const owner = h("select", { id: "ka-owner" },
    h("option", { value: "", text: t("ka_none") }),
    agents.filter((agent) => !agent.disabled && ofSite(agent))
      .map((agent) => h("option", { value: agent.email, text: `${agent.name} <${agent.email}>` })));
  const conditions = h("div", { id: "ka-conditions" });
  const addCondition = () => {
    const attribute = h("input", { class: "ka-attribute", dir: "ltr", placeholder: "plan", attrs: { "aria-label": t("ka_attribute") } });
    const op = h("select", { class: "ka-op", attrs: { "aria-label": t("ka_op") } },
      OPS.map((each) => h("option", { value: each, text: t(`ka_op_${each}`) })));
    const value = h("input", { class: "ka-value", dir: "auto", placeholder: "enterprise", attrs: { "aria-label": t("ka_value") } });
    const row = h("div", { class: "inline-form ka-condition" }, attribute, op, value,
      h("button", { class: "ka-condition-remove", text: t("delete"), on: { click: () => row.remove() } }));
    conditions.appendChild(row);
  };
  addCondition();
  const form = h("form", {
    class: "card",
    id: "ka-form",
    data: { site: site.id },
    on: {
      submit: async (event) => {
        event.preventDefault();
        const rule = {
          name: name.value.trim(),
          conditions: [...conditions.querySelectorAll(".ka-condition")].map((row) => {
            const op = row.querySelector(".ka-op").value;
            return {
              attribute: row.querySelector(".ka-attribute").value.trim(),
              op,
              value: conditionValue(op, row.querySelector(".ka-value").value),
            };
          }),
          priority: Number(priority.value),
          skip_bot: skipBot.checked,
          department: department.value || null,
          owner: owner.value || null,
        };
        if (await save([...rules, rule])) rerender();
      },
    },
  },
  h("h3", { text: t("ka_new") }),
  h("label", { class: "field" }, h("span", { text: t("ka_name") }), name),
  h("fieldset", {}, h("legend", { text: t("ka_conditions") }), conditions,
    h("button", { id: "ka-add-condition", text: t("ka_add_condition"), on: { click: addCondition } })),
  h("label", { class: "field" }, h("span", { text: t("ka_priority") }), priority),
  h("label", { class: "field check" }, skipBot, h("span", { text: t("ka_skip_bot") })),
  h("label", { class: "field" }, h("span", { text: t("department_label") }), department),
  h("label", { class: "field" }, h("span", { text: t("ka_owner") }), owner),
  h("button", { id: "ka-save", text: t("ka_add") }));
  // `h` makes buttons plain; this one submits the form.
  form.querySelector("#ka-save").type = "submit";

  fill(body,
    h("p", { text: t("ka_intro") }),
    sites.length > 1 ? h("label", { class: "field" }, h("span", { text: t("site") }), chooser) : null,
    list,
    problem,
    form);
}
