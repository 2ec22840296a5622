// i18n.js's plural forms (system lines such as "closed after N minutes without
// activity", the offer countdown): Arabic has six forms, English and Persian two, and
// Persian writes its own digits. A bare stand-in for `document` is all setLang needs.

import { test } from "node:test";
import assert from "node:assert/strict";

globalThis.document = { documentElement: {}, title: "", querySelectorAll: () => [] };
const { plural, setLang } = await import("../i18n.js");

test("English: one and other", () => {
  setLang("en");
  assert.equal(plural("event_closed_idle", 1), "closed after 1 minute without activity");
  assert.equal(plural("event_closed_idle", 30), "closed after 30 minutes without activity");
});

test("Arabic: the six plural forms", () => {
  setLang("ar");
  const forms = [0, 1, 2, 3, 10, 11, 99, 100].map((n) => plural("event_closed_idle", n));
  assert.match(forms[1], /دقيقة واحدة/);
  assert.match(forms[2], /دقيقتين/);
  assert.match(forms[3], /دقائق/, "3 takes the plural دقائق");
  assert.match(forms[4], /دقائق/, "10 takes the plural دقائق");
  assert.match(forms[5], /دقيقة دون/, "11 takes the singular دقيقة");
  assert.match(forms[6], /دقيقة دون/);
  assert.match(forms[7], /دقيقة دون/);
  assert.equal(new Set(forms.slice(1, 4)).size, 3, "one, two and few differ");
});

test("Persian: Persian digits", () => {
  setLang("fa");
  const text = plural("event_closed_idle", 15);
  assert.match(text, /۱۵/);
  assert.doesNotMatch(text, /[0-9]/);
});
