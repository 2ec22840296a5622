// key_accounts.js's pure parts: a typed condition value becomes what the hub's
// `Condition` decodes (numbers for the ordering operators, a list for `in`, nothing for
// `exists`), and a stored condition reads back in words.

import { test } from "node:test";
import assert from "node:assert/strict";

globalThis.document = { documentElement: {}, title: "", querySelectorAll: () => [] };
globalThis.localStorage = { getItem: () => null, setItem: () => {} };
const { conditionValue, conditionText } = await import("../key_accounts.js");
const { setLang } = await import("../i18n.js");

test("typed values take the shape the hub decodes", () => {
  assert.equal(conditionValue("gt", " 5000 "), 5000);
  assert.equal(conditionValue("le", "12.5"), 12.5);
  assert.deepEqual(conditionValue("in", "enterprise, business,, "), ["enterprise", "business"]);
  assert.equal(conditionValue("eq", " gold "), "gold");
  assert.equal(conditionValue("exists", "anything"), null);
  // Left for the hub to refuse with its own message, not turned into 0.
  assert.equal(conditionValue("gt", ""), "");
});

test("conditions read back in the UI language", () => {
  setLang("en");
  assert.equal(conditionText({ attribute: "plan", op: "in", value: ["enterprise", "business"] }), "plan is one of enterprise, business");
  assert.equal(conditionText({ attribute: "lifetime_value", op: "gt", value: 5000 }), "lifetime_value > 5000");
  assert.equal(conditionText({ attribute: "vip", op: "exists", value: null }), "vip is set");
});
