// The trigger module's pure evaluation (widget/loader/triggers.js, issue 19): URL
// globs, each page condition, and the frequency caps. The browser tests
// (tests/tests/browser/triggers.rs) run the module for real in Chromium.

import { test } from "node:test";
import assert from "node:assert/strict";

const { glob, holds, due } = await import("../loader/triggers.js");

const page = (over = {}) => ({
  path: "/pricing/team?x=1", href: "https://shop.example/pricing/team?x=1", secs: 0,
  scroll: 0, exit: 0, returning: false, lang: "ar-EG", ev: {}, ...over,
});

test("globs: * is any characters, everything else literal", () => {
  assert.ok(glob("/pricing*", "/pricing/team?x=1"));
  assert.ok(glob("*", ""));
  assert.ok(glob("https://*.example/*", "https://shop.example/a"));
  assert.ok(!glob("/pricing", "/pricing/team"));
  assert.ok(!glob("/a.c", "/abc"), "a dot is a dot");
  assert.ok(!glob("/(a)", "/a"), "brackets are literal");
  assert.ok(glob("/(a)+", "/(a)+"));
});

test("each page condition", () => {
  assert.ok(holds({ kind: "url", pattern: "/pricing*" }, page()));
  assert.ok(!holds({ kind: "url", pattern: "/about*" }, page()));
  assert.ok(holds({ kind: "url", pattern: "https://shop.example/*" }, page()));
  assert.ok(!holds({ kind: "time_on_page", seconds: 30 }, page({ secs: 29.9 })));
  assert.ok(holds({ kind: "time_on_page", seconds: 30 }, page({ secs: 30 })));
  assert.ok(!holds({ kind: "scroll", percent: 50 }, page({ scroll: 49 })));
  assert.ok(holds({ kind: "scroll", percent: 50 }, page({ scroll: 50 })));
  assert.ok(!holds({ kind: "exit_intent" }, page()));
  assert.ok(holds({ kind: "exit_intent" }, page({ exit: 1 })));
  assert.ok(holds({ kind: "visitor", is: "new" }, page()));
  assert.ok(!holds({ kind: "visitor", is: "returning" }, page()));
  assert.ok(holds({ kind: "visitor", is: "returning" }, page({ returning: true })));
  assert.ok(holds({ kind: "language", is: "ar" }, page()));
  assert.ok(holds({ kind: "language", is: "AR-eg" }, page()));
  assert.ok(!holds({ kind: "language", is: "a" }, page()), "a prefix of a subtag is no match");
  assert.ok(!holds({ kind: "language", is: "fa" }, page()));
  assert.ok(!holds({ kind: "event", name: "checkout_failed" }, page()));
  assert.ok(holds({ kind: "event", name: "checkout_failed" }, page({ ev: { checkout_failed: 1 } })));
  assert.ok(!holds({ kind: "newer_kind" }, page()), "an unknown kind never holds");
});

test("all conditions must hold, within both caps", () => {
  const t = { id: "t", when: [{ kind: "url", pattern: "/pricing*" }, { kind: "scroll", percent: 50 }],
    per_visitor: 2, per_session: 1 };
  const none = { v: {}, s: {} };
  assert.ok(!due(t, page(), none));
  assert.ok(due(t, page({ scroll: 80 }), none));
  assert.ok(!due(t, page({ scroll: 80 }), { v: {}, s: { t: 1 } }), "session cap");
  assert.ok(due(t, page({ scroll: 80 }), { v: { t: 1 }, s: {} }));
  assert.ok(!due(t, page({ scroll: 80 }), { v: { t: 2 }, s: {} }), "visitor cap");
  const unlimited = { ...t, per_visitor: 0, per_session: 0 };
  assert.ok(due(unlimited, page({ scroll: 80 }), { v: { t: 99 }, s: { t: 99 } }));
});
