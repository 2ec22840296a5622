// Reports for a date range, with charts drawn as inline SVG (no chart library; the
// CSP forbids inline styles in markup, so sizes go through attributes and
// element.style).

import { get, post, query } from "./api.js";
import { duration, number, plural, t } from "./i18n.js";
import { fill, h, svg } from "./dom.js";

const DAY_MS = 86_400_000;

/** The form's values survive re-renders (language switch, navigation). */
const range = { from: null, to: null, site: "" };

/** YYYY-MM-DD in local time (what <input type=date> shows). */
function isoDate(ms) {
  const date = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export function renderReports(root, context) {
  if (!range.from) {
    range.to = isoDate(Date.now());
    range.from = isoDate(Date.now() - 29 * DAY_MS);
  }
  const from = h("input", { type: "date", id: "report-from", value: range.from });
  const to = h("input", { type: "date", id: "report-to", value: range.to });
  const site = h("select", { id: "report-site" }, h("option", { value: "", text: t("all_sites") }));
  const output = h("div", { id: "report", class: "report" });
  const load = async () => {
    range.from = from.value;
    range.to = to.value;
    range.site = site.value;
    const fromMs = Date.parse(`${from.value}T00:00:00`);
    const toMs = Date.parse(`${to.value}T00:00:00`) + DAY_MS;
    try {
      const report = await get(`/api/reports${query({ from: fromMs, to: toMs, site: site.value })}`);
      // Admins may teach the bot a grouped question as an example of a rule.
      const rules = context.store.role === "admin" ? (await get("/api/rules")).rules || [] : [];
      drawReport(output, report, rules, context);
    } catch (err) {
      fill(output, h("p", { class: "error", text: t("error", { message: err.message }) }));
    }
  };
  fill(root,
    h("form", {
      class: "inline-form report-form",
      on: { submit: (event) => { event.preventDefault(); load(); } },
    },
    h("label", { class: "field" }, h("span", { text: t("from") }), from),
    h("label", { class: "field" }, h("span", { text: t("to") }), to),
    h("label", { class: "field" }, h("span", { text: t("sites") }), site),
    h("button", { class: "primary", type: "submit", id: "report-load", text: t("load_report") })),
    output);
  get("/api/sites").then(({ sites }) => {
    for (const entry of sites) site.appendChild(h("option", { value: entry.id, text: entry.name }));
    site.value = range.site;
  }).catch(() => {});
  load();
}

function drawReport(output, report, rules, context) {
  const first = report.first_response_ms;
  const resolution = report.resolution_ms;
  const satisfaction = report.satisfaction;
  fill(output,
    h("div", { class: "cards" },
      stat("r_conversations", number(report.conversations), "r-conversations",
        plural("r_with_bot", report.bot_conversations)),
      stat("r_deflection", report.deflection_rate === null || report.deflection_rate === undefined
        ? t("r_no_data") : `${number(report.deflection_rate * 100, 1)}%`, "r-deflection",
      plural("r_settled", report.deflected)),
      stat("r_satisfaction", satisfaction.average === null || satisfaction.average === undefined
        ? t("r_no_data") : number(satisfaction.average, 2), "r-satisfaction-average",
      plural("r_ratings", satisfaction.count, {
        avg: satisfaction.average === null || satisfaction.average === undefined ? t("none") : number(satisfaction.average, 2),
        max: number(5),
      }))),
    h("div", { class: "charts" },
      h("section", { class: "card" },
        h("h3", { text: t("r_first_response") }),
        timingChart(first, first.target_ms),
        h("p", { class: "muted", text: t("r_target", { time: duration(first.target_ms), within: number(first.within_target), count: number(first.count) }) })),
      keyAccountsCard(report.key_accounts, first.target_ms),
      h("section", { class: "card" },
        h("h3", { text: t("r_resolution") }),
        timingChart(resolution, null)),
      h("section", { class: "card", id: "r-distribution" },
        h("h3", { text: t("r_satisfaction") }),
        distributionChart(satisfaction.distribution)),
      h("section", { class: "card", id: "r-handoffs" },
        h("h3", { text: t("r_handoffs") }),
        barList(report.handoffs_by_reason.map(([reason, count]) => [reasonLabel(reason), count, reason])))),
    h("section", { class: "card", id: "r-unanswered" },
      h("h3", { text: t("r_unanswered") }),
      (report.unanswered_clusters || []).length
        ? h("table", { class: "table" }, h("tbody", {}, report.unanswered_clusters.map((cluster) => clusterRow(cluster, rules, context))))
        : h("p", { class: "muted", text: t("r_no_data") })));
}

/**
 * One group of unanswered questions: the most asked, how often the group was asked,
 * the other spellings, and (admins) a rule to add the question to as an example.
 */
function clusterRow(cluster, rules, context) {
  const others = cluster.questions.slice(1).map(([question]) => question);
  const teach = rules.length && cluster.lang ? (() => {
    const rule = h("select", { class: "example-rule", attrs: { "aria-label": t("r_example_rule") } },
      h("option", { value: "", text: t("choose") }),
      rules.map((entry) => h("option", { value: entry.id, text: `${entry.id} (${entry.intent})` })));
    const button = h("button", {
      class: "example-add",
      text: t("add_example"),
      on: {
        click: async () => {
          if (!rule.value) return;
          button.disabled = true;
          try {
            const answer = await post("/api/rules/examples", { rule: rule.value, lang: cluster.lang, text: cluster.text });
            context.toast(answer.ok ? t("example_added", { rule: rule.value }) : t("error", { message: (answer.errors || []).join("; ") }));
          } catch (err) {
            context.toast(t("error", { message: err.message }));
          } finally {
            button.disabled = false;
          }
        },
      },
    });
    return h("td", { class: "teach" }, rule, button);
  })() : null;
  return h("tr", { class: "cluster" },
    h("td", {},
      h("div", { dir: "auto", class: "cluster-text", text: cluster.text }),
      others.length ? h("div", { dir: "auto", class: "muted cluster-others", text: others.join(" · ") }) : null),
    h("td", { class: "num", text: plural("r_times", cluster.total) }),
    teach);
}

function stat(label, value, id, sub) {
  return h("div", { class: "card stat" },
    h("span", { text: t(label) }),
    h("b", { id, text: value }),
    sub ? h("small", { text: sub }) : null);
}

/** First responses of key accounts (issue 19) apart from the rest's. */
function keyAccountsCard(split, targetMs) {
  if (!split) return null;
  const part = (key, figures, id) => h("div", { id },
    h("h4", { text: t(key) }),
    timingChart(figures, targetMs),
    figures.count ? h("p", { class: "muted", text: t("r_target", { time: duration(targetMs), within: number(figures.within_target), count: number(figures.count) }) }) : null);
  return h("section", { class: "card", id: "r-key-accounts" },
    h("h3", { text: t("r_key_accounts") }),
    part("r_key_accounts_first", split.first_response_ms, "r-key-accounts-first"),
    part("r_others_first", split.others_first_response_ms, "r-others-first"));
}

/** Two horizontal bars (median, p90) with an optional target line. */
function timingChart(figures, targetMs) {
  if (!figures.count) return h("p", { class: "muted", text: t("r_no_data") });
  const values = [["r_median", figures.median], ["r_p90", figures.p90]];
  const max = Math.max(figures.p90 || 0, figures.median || 0, targetMs || 0, 1) * 1.1;
  const width = 320;
  const rowHeight = 28;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${rowHeight * 2 + 10}`, class: "chart", role: "img",
    "aria-label": values.map(([label, value]) => `${t(label)} ${duration(value)}`).join(", "),
  });
  const rtl = document.documentElement.dir === "rtl";
  values.forEach(([label, value], index) => {
    const y = index * rowHeight + 4;
    const barWidth = ((value || 0) / max) * (width - 110);
    const x = rtl ? width - 70 - barWidth : 70;
    // The SVG inherits the page's direction: "start" is the right end of a right-to-left text.
    chart.appendChild(svg("text", { x: rtl ? width - 4 : 4, y: y + 15, class: "chart-label", "text-anchor": "start", text: t(label) }));
    chart.appendChild(svg("rect", { x, y, width: Math.max(1, barWidth), height: 20, rx: 3, class: targetMs && value > targetMs ? "svg-bar over" : "svg-bar" }));
    chart.appendChild(svg("text", { x: rtl ? x - 4 : x + barWidth + 4, y: y + 15, class: "chart-value", "text-anchor": "start", text: duration(value) }));
  });
  if (targetMs) {
    const offset = (targetMs / max) * (width - 110);
    const x = rtl ? width - 70 - offset : 70 + offset;
    chart.appendChild(svg("line", { x1: x, x2: x, y1: 0, y2: rowHeight * 2 + 8, class: "target-line" }));
  }
  return chart;
}

/** Five vertical bars, one per score. */
function distributionChart(distribution) {
  const total = distribution.reduce((sum, n) => sum + n, 0);
  if (!total) return h("p", { class: "muted", text: t("r_no_data") });
  const max = Math.max(...distribution, 1);
  const chart = svg("svg", {
    viewBox: "0 0 260 150", class: "chart", role: "img",
    "aria-label": distribution.map((count, index) => `★${number(index + 1)}: ${number(count)}`).join(", "),
  });
  distribution.forEach((count, index) => {
    const height = (count / max) * 100;
    const x = 15 + index * 50;
    chart.appendChild(svg("rect", { x, y: 115 - height, width: 34, height: Math.max(1, height), rx: 3, class: `svg-bar score-${index + 1}`, "data-score": index + 1, "data-count": count }));
    chart.appendChild(svg("text", { x: x + 17, y: 110 - height, "text-anchor": "middle", class: "chart-value", text: number(count) }));
    chart.appendChild(svg("text", { x: x + 17, y: 135, "text-anchor": "middle", class: "chart-label", text: `${"★".repeat(1)}${number(index + 1)}` }));
  });
  return chart;
}

/** Why the bot handed off, as the hub records it (the bot's reasons, and the hub's). */
const REASONS = ["requested", "complaint", "misses", "rule_action", "repeated", "vip", "key_account", "direct", "taken", "transferred"];

/** A hand-off reason in the UI language; one the console does not know shows as is. */
function reasonLabel(reason) {
  if (!reason) return t("reason_other");
  return REASONS.includes(reason) ? t(`reason_${reason}`) : reason;
}

/** CSS bars for [label, count, code] triples (the code names the row for tests). */
function barList(rows) {
  if (!rows.length) return h("p", { class: "muted", text: t("r_no_data") });
  const max = Math.max(...rows.map(([, n]) => n), 1);
  return h("ul", { class: "bar-list" }, rows.map(([label, count, code]) => {
    const fillBar = h("span", { class: "bar-fill" });
    fillBar.style.inlineSize = `${(count / max) * 100}%`;
    return h("li", { data: { reason: code ?? "" } },
      h("span", { class: "bar-label", dir: "auto", text: label }),
      h("span", { class: "bar" }, fillBar),
      h("span", { class: "num", text: number(count) }));
  }));
}
