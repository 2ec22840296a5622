// live.js's resends, with a fake WebSocket and node's mock timers: a send refused with
// `internal` is resent a bounded number of times with a growing delay, then given up
// and reported (it used to be resent every 1.5 s for ever).

import { test, mock } from "node:test";
import assert from "node:assert/strict";

class FakeSocket {
  static OPEN = 1;
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = FakeSocket.OPEN;
    this.sent = [];
    this.listeners = {};
    FakeSocket.last = this;
  }
  addEventListener(name, fn) {
    (this.listeners[name] ||= []).push(fn);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {}
  emit(name, event) {
    for (const fn of this.listeners[name] || []) fn(event);
  }
  receive(frame) {
    this.emit("message", { data: JSON.stringify(frame) });
  }
}

globalThis.WebSocket = FakeSocket;
globalThis.location = { protocol: "http:", host: "hub.test" };

const { Live, MAX_RETRIES, retryDelay } = await import("../live.js");

function started() {
  const gaveUp = [];
  const frames = [];
  const live = new Live({
    frame: (frame) => frames.push(frame),
    status: () => {},
    welcome: () => {},
    resumable: () => [],
    lastSeq: () => 0,
    ended: () => {},
    gaveUp: (clientId, code) => gaveUp.push([clientId, code]),
  });
  live.start();
  const socket = FakeSocket.last;
  socket.emit("open", {});
  socket.receive({ type: "welcome", v: 1, conversations: [] });
  return { live, socket, gaveUp, frames };
}

test("retry delays grow and are capped", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(retryDelay), [1500, 3000, 6000, 12000, 24000, 30000, 30000]);
});

test("an internal error is resent a bounded number of times, then given up", () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  try {
    const { live, socket, gaveUp } = started();
    const clientId = live.send("c1", "hello");
    const sends = () => socket.sent.filter((frame) => frame.type === "send" && frame.client_id === clientId).length;
    assert.equal(sends(), 1);
    for (let attempt = 1; attempt <= MAX_RETRIES; attempt += 1) {
      socket.receive({ type: "error", code: "internal", message: "internal error", client_id: clientId });
      mock.timers.tick(retryDelay(attempt) - 1);
      assert.equal(sends(), attempt, `no resend before ${retryDelay(attempt)} ms`);
      mock.timers.tick(1);
      assert.equal(sends(), attempt + 1, `resend number ${attempt}`);
    }
    socket.receive({ type: "error", code: "internal", message: "internal error", client_id: clientId });
    assert.deepEqual(gaveUp, [[clientId, "internal"]]);
    mock.timers.tick(120_000);
    assert.equal(sends(), MAX_RETRIES + 1, "nothing is resent after giving up");
    assert.equal(live.pending.size, 0);
    live.stop();
  } finally {
    mock.timers.reset();
  }
});

test("an ack ends the retries; a refusal for good is not resent", () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  try {
    const { live, socket, gaveUp } = started();
    const first = live.send("c1", "one");
    socket.receive({ type: "error", code: "store_unavailable", message: "x", client_id: first });
    mock.timers.tick(retryDelay(1));
    socket.receive({ type: "ack", client_id: first, conversation: "c1", seq: 3 });
    assert.equal(live.pending.size, 0);
    assert.equal(live.retries.size, 0);
    const second = live.send("c1", "two");
    socket.receive({ type: "error", code: "conversation_closed", message: "closed", client_id: second });
    mock.timers.tick(60_000);
    assert.equal(socket.sent.filter((frame) => frame.client_id === second).length, 1);
    assert.deepEqual(gaveUp, []);
    live.stop();
  } finally {
    mock.timers.reset();
  }
});
