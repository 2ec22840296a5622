// customer.js's pure part: how a value is shown (cut, with the whole of it kept).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_SHOWN, shown } from "../customer.js";

test("short values are shown whole, long ones cut with the whole in the title", () => {
  assert.deepEqual(shown("gold"), { text: "gold", title: null });
  assert.deepEqual(shown(42), { text: "42", title: null });
  assert.deepEqual(shown(true), { text: "true", title: null });
  assert.deepEqual(shown(null), { text: "", title: null });
  const long = "x".repeat(MAX_SHOWN + 10);
  const cut = shown(long);
  assert.equal(cut.title, long);
  assert.equal([...cut.text].length, MAX_SHOWN);
  assert.ok(cut.text.endsWith("…"));
  // Cut by characters, never inside a surrogate pair.
  const emoji = "😀".repeat(MAX_SHOWN + 1);
  assert.equal([...shown(emoji).text].length, MAX_SHOWN);
});
