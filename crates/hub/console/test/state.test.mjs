// The console's reducer (state.js), run with `node --test crates/hub/console/test/`.
// No DOM and no network: events in, state out.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  initialState, reduce, lastSeq, listFor, messagesOf, summaryOf, transferDepartments, visitorLabel, WINDOWS_KEPT,
} from "../state.js";

const ME = { id: "a_me", name: "Sara", role: "agent" };

function summary(id, extra = {}) {
  return {
    id, site: "s1", state: "queued", last_seq: 1, visitor: { kind: "visitor", id: `v_${id}` },
    created_at: 1000, updated_at: 1000, ...extra,
  };
}

function message(conversation, seq, extra = {}) {
  return { type: "message", conversation, seq, kind: "text", author: { kind: "visitor" }, text: `m${seq}`, at: 2000 + seq, ...extra };
}

function signedIn(conversations = []) {
  let state = reduce(initialState(), { type: "signed_in", me: ME });
  state = reduce(state, { type: "welcome", frame: { type: "welcome", role: "agent", sites: ["s1"], conversations } });
  return state;
}

const frame = (state, value, now = 5000) => reduce(state, { type: "frame", frame: value, now, hidden: false });

test("the initial state is empty and reduce ignores unknown events", () => {
  const state = initialState();
  assert.equal(state.conversations.size, 0);
  assert.equal(reduce(state, { type: "nonsense" }), state);
  assert.equal(frame(state, { type: "pong" }), state);
});

test("reduce never mutates the state it is given", () => {
  const before = signedIn([summary("c1")]);
  const conversations = before.conversations;
  const copy = new Map(conversations);
  const after = frame(before, message("c1", 2));
  assert.notEqual(after, before);
  assert.deepEqual([...before.conversations], [...copy]);
  assert.equal(before.messages.size, 0);
  assert.equal(after.messages.get("c1").size, 1);
});

test("a message changes only its own conversation: the others keep their objects", () => {
  const state = signedIn([summary("c1"), summary("c2")]);
  const c2 = state.conversations.get("c2");
  const next = frame(state, message("c1", 2));
  assert.equal(next.conversations.get("c2"), c2, "c2's summary is the same object");
  assert.notEqual(next.conversations.get("c1"), state.conversations.get("c1"));
  assert.equal(next.conversations.get("c1").preview.text, "m2");
  assert.equal(next.unread.get("c1"), 1);
  assert.equal(next.unread.get("c2"), 0);
  // A message for an unchanged window leaves the other windows alone.
  const withTwo = frame(next, message("c2", 2));
  assert.equal(withTwo.messages.get("c1"), next.messages.get("c1"));
});

test("lastSeq is the highest sequence seen, kept as messages arrive in any order", () => {
  let state = signedIn([summary("c1")]);
  assert.equal(lastSeq(state, "c1"), 0);
  for (const seq of [3, 1, 7, 5]) state = frame(state, message("c1", seq));
  assert.equal(lastSeq(state, "c1"), 7);
  assert.deepEqual(messagesOf(state, "c1").map((m) => m.seq), [1, 3, 5, 7]);
  // A long window does not go through Math.max(...keys): 200,000 messages are fine.
  const messages = Array.from({ length: 200_000 }, (_, i) => message("c1", i + 1));
  state = reduce(state, { type: "history", id: "c1", messages, older: false });
  assert.equal(lastSeq(state, "c1"), 200_000);
});

test("a duplicate message is not counted twice as unread", () => {
  let state = signedIn([summary("c1")]);
  state = frame(state, message("c1", 2));
  state = frame(state, message("c1", 2));
  assert.equal(state.unread.get("c1"), 1);
});

test("the open conversation gets no unread count; opening one clears it", () => {
  let state = signedIn([summary("c1")]);
  state = frame(state, message("c1", 2));
  state = reduce(state, { type: "open", id: "c1" });
  assert.equal(state.unread.get("c1"), 0);
  state = frame(state, message("c1", 3));
  assert.equal(state.unread.get("c1"), 0);
  assert.deepEqual(state.pinned, ["c1"]);
});

test("an ack turns the outbox entry into a line of ours", () => {
  let state = signedIn([summary("c1", { state: "assigned", agent: { kind: "agent", id: "a_me" } })]);
  state = reduce(state, { type: "send", client_id: "k1", conversation: "c1", text: "hello", note: false });
  assert.equal(state.outbox.size, 1);
  state = frame(state, { type: "ack", client_id: "k1", conversation: "c1", seq: 4 }, 9000);
  assert.equal(state.outbox.size, 0);
  const line = state.messages.get("c1").get(4);
  assert.equal(line.text, "hello");
  assert.equal(line.author.id, "a_me");
  assert.equal(line.at, 9000);
  assert.equal(lastSeq(state, "c1"), 4);
});

test("a refused send is marked; retryable errors wait for live.js to give up", () => {
  let state = signedIn([summary("c1")]);
  state = reduce(state, { type: "send", client_id: "k1", conversation: "c1", text: "x" });
  const retry = frame(state, { type: "error", code: "internal", client_id: "k1", message: "internal error" });
  assert.equal(retry.outbox.get("k1").error, undefined);
  const gaveUp = reduce(retry, { type: "gave_up", client_id: "k1", code: "internal" });
  assert.equal(gaveUp.outbox.get("k1").error, "internal");
  assert.equal(gaveUp.outbox.get("k1").gaveUp, true);
  const refused = frame(state, { type: "error", code: "conversation_closed", client_id: "k1", message: "closed" });
  assert.equal(refused.outbox.get("k1").error, "conversation_closed");
});

test("a closed conversation leaves the live set and the queue", () => {
  let state = signedIn([summary("c1")]);
  state = reduce(state, { type: "queue", sites: { s1: [{ conversation: "c1", position: 1, waiting_since: 10 }] } });
  assert.equal(state.queue.size, 1);
  state = frame(state, { type: "conversation", conversation: summary("c1", { state: "closed" }) });
  assert.equal(state.conversations.has("c1"), false);
  assert.equal(summaryOf(state, "c1").state, "closed");
  assert.equal(state.queue.size, 0);
});

test("tabs: the queue by priority then wait, mine by age", () => {
  const state = signedIn([
    summary("c1", { updated_at: 30 }),
    summary("c2", { updated_at: 10 }),
    summary("c3", { priority: 2, updated_at: 50 }),
    summary("c4", { state: "assigned", agent: { kind: "agent", id: "a_me" }, created_at: 5 }),
    summary("c5", { state: "assigned", agent: { kind: "agent", id: "a_other" } }),
  ]);
  assert.deepEqual(listFor(state, "queue").map((c) => c.id), ["c3", "c2", "c1"]);
  assert.deepEqual(listFor(state, "mine").map((c) => c.id), ["c4"]);
  assert.equal(listFor(state, "closed"), null);
});

test("a chat assigned to me is fresh until opened", () => {
  let state = signedIn([summary("c1")]);
  state = frame(state, { type: "conversation", conversation: summary("c1", { state: "assigned", agent: { kind: "agent", id: "a_me" } }) });
  assert.ok(state.fresh.has("c1"));
  state = reduce(state, { type: "open", id: "c1" });
  assert.ok(!state.fresh.has("c1"));
});

test("activity moves a summary's preview and unread count", () => {
  let state = signedIn([summary("c1")]);
  state = frame(state, { type: "activity", conversation: "c1", last_seq: 9, preview: { author: "visitor", text: "hi", at: 7000 }, unread: 3 });
  const moved = state.conversations.get("c1");
  assert.equal(moved.preview.text, "hi");
  assert.equal(moved.last_seq, 9);
  assert.equal(moved.updated_at, 7000);
  assert.equal(state.unread.get("c1"), 3);
});

test("offers: only mine, declined on request, gone once assigned or expired", () => {
  let state = signedIn([summary("c1"), summary("c2")]);
  state = frame(state, { type: "offer", conversation: "c1", agent: "a_other", deadline: 99 });
  assert.equal(state.offers.size, 0);
  state = frame(state, { type: "offer", conversation: "c1", agent: "a_me", deadline: 99 });
  state = frame(state, { type: "offer", conversation: "c2", agent: "a_me", deadline: 99 });
  assert.equal(state.offers.get("c1").deadline, 99);
  state = reduce(state, { type: "decline", id: "c2" });
  assert.equal(state.offers.get("c2").declined, true);
  state = frame(state, { type: "conversation", conversation: summary("c1", { state: "assigned", agent: { kind: "agent", id: "a_me" } }) });
  assert.equal(state.offers.has("c1"), false);
  state = reduce(state, { type: "offer_expired", id: "c2" });
  assert.equal(state.offers.size, 0);
});

test("welcome forgets windows of sites no longer ours", () => {
  let state = signedIn([summary("c1"), summary("c9", { site: "s2" })]);
  state = reduce(state, { type: "welcome", frame: { sites: ["s1", "s2"], conversations: [summary("c1"), summary("c9", { site: "s2" })] } });
  state = reduce(state, { type: "history", id: "c9", messages: [message("c9", 1)], older: false });
  assert.deepEqual(state.loaded, ["c9"]);
  state = reduce(state, { type: "welcome", frame: { sites: ["s1"], conversations: [summary("c1")] } });
  assert.deepEqual(state.loaded, []);
  assert.equal(state.messages.has("c9"), false);
});

test("at most WINDOWS_KEPT windows are kept, the least recently opened goes first", () => {
  let state = signedIn([]);
  for (let i = 0; i < WINDOWS_KEPT + 3; i += 1) {
    state = reduce(state, { type: "history", id: `c${i}`, messages: [message(`c${i}`, 1)], older: false });
  }
  assert.equal(state.loaded.length, WINDOWS_KEPT);
  assert.equal(state.loaded[0], "c3");
  assert.equal(state.messages.has("c0"), false);
});

test("transfer departments: the site's own and those its chats carry, each with whether it can be picked", () => {
  let state = signedIn([summary("c1", { department: "returns" }), summary("c2", { site: "s2", department: "other" })]);
  state = reduce(state, { type: "agents_rest", sites: { s1: [{ id: "a1", name: "A", departments: ["billing", "returns", "vip"] }] } });
  const departments = [{ site_id: "s1", name: "billing" }, { site_id: "s2", name: "elsewhere" }, { site_id: "s1", name: "sales" }];
  assert.deepEqual(transferDepartments(state, departments, state.conversations.get("c1")), [
    { name: "billing", ofSite: true, served: true },
    { name: "returns", ofSite: false, served: true },
    { name: "sales", ofSite: true, served: false },
  ]);
});

test("visitor labels: name, then e-mail, city, locale, then the id", () => {
  const base = { id: "c1", visitor: { kind: "visitor", id: "v_abcdefgh" } };
  assert.deepEqual(visitorLabel({ ...base, visitor: { ...base.visitor, name: "Layla" } }), { kind: "name", value: "Layla" });
  assert.deepEqual(visitorLabel({ ...base, visitor_email: "l@example.com", visitor_locale: "ar" }), { kind: "email", value: "l@example.com" });
  assert.deepEqual(visitorLabel(base, { visitor: { attributes: { city: "Shiraz" }, locale: "fa" } }), { kind: "city", value: "Shiraz" });
  assert.deepEqual(visitorLabel({ ...base, visitor_locale: "fa-IR" }), { kind: "locale", value: "fa-IR" });
  assert.deepEqual(visitorLabel(base, { visitor: {}, contact: { name: "Reza", email: "r@example.com" } }), { kind: "name", value: "Reza" });
  assert.deepEqual(visitorLabel(base), { kind: "id", value: "defgh" });
});

test("re-reading an unchanged queue changes nothing", () => {
  let state = signedIn([summary("c1"), summary("c2")]);
  const sites = () => ({ s1: [{ conversation: "c1", position: 1, waiting_since: 10 }, { conversation: "c2", position: 2, waiting_since: 20 }] });
  state = reduce(state, { type: "queue", sites: sites() });
  const again = reduce(state, { type: "queue", sites: sites() });
  assert.equal(again, state);
  const moved = reduce(state, { type: "queue", sites: { s1: [{ conversation: "c2", position: 1, waiting_since: 20 }] } });
  assert.equal(moved.queue.size, 1);
  assert.equal(moved.queue.get("c2").position, 1);
});
