// The live connection to /ws/agent. Nothing is lost across a dropped socket:
// - every reply is sent with a client_id and kept until its `ack`; after a reconnect
//   the unacknowledged ones are sent again (the hub answers a resend with the
//   original ack, so nothing doubles);
// - every conversation we have open is resumed (and so watched again) from the last
//   sequence seen.
// The hub keeps the agent's presence (the same in every console of theirs) and closes
// the socket with 4001 when the session ended (sign in again) or 4003 when the agent's
// role or sites changed (reconnect at once for the new scope).

import { randomId } from "./dom.js";

const PING_MS = 20_000;
const BACKOFF_MAX_MS = 15_000;
/** Errors after which a send is worth retrying with the same client_id. */
const RETRYABLE = new Set(["rate_limited", "store_unavailable", "internal"]);
/**
 * A refused send is resent at most this many times, after 1.5 s, 3 s, 6 s, ... (at most
 * 30 s apart); then live.js gives up and says so (`handlers.gaveUp`), and the console
 * shows the line as not sent. A reconnect starts the count again.
 */
export const MAX_RETRIES = 5;
const RETRY_FIRST_MS = 1_500;
const RETRY_MAX_MS = 30_000;

/** How long to wait before the `attempt`-th resend (1-based). */
export function retryDelay(attempt) {
  return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempt - 1));
}
/** Close codes: the session ended (sign in again); the role or sites changed. */
const SESSION_ENDED = 4001;
const ACCESS_CHANGED = 4003;

export class Live {
  /**
   * `handlers.frame(frame)` gets every frame from the hub; `handlers.status(s)` gets
   * "connecting", "connected" or "disconnected"; `handlers.welcome(frame)` runs after
   * each greeting, before the resumes are sent; `lastSeq(id)` tells where to resume;
   * `handlers.ended()` runs when the hub ended the session; `handlers.gaveUp(clientId,
   * code)` when a send was refused MAX_RETRIES times and is no longer resent.
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.pending = new Map(); // client_id -> send frame
    this.retries = new Map(); // client_id -> resends after an error so far
    this.attempt = 0;
    this.stopped = false;
    this.ready = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.handlers.status("connecting");
    const socket = new WebSocket(`${scheme}//${location.host}/ws/agent`);
    this.socket = socket;
    this.ready = false;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "hello", v: 1 }));
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "welcome") this.onWelcome(frame);
      else if (frame.type === "ack") this.settle(frame.client_id);
      else if (frame.type === "error" && frame.client_id && RETRYABLE.has(frame.code)) {
        this.retryLater(frame.client_id, frame.code);
      } else if (frame.type === "error" && frame.client_id) {
        this.settle(frame.client_id);
      }
      this.handlers.frame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.ready = false;
      clearInterval(this.pingTimer);
      this.handlers.status("disconnected");
      if (this.stopped) return;
      if (event.code === SESSION_ENDED) {
        this.stop();
        this.handlers.ended();
        return;
      }
      const delay = event.code === ACCESS_CHANGED
        ? 0
        : Math.min(BACKOFF_MAX_MS, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  onWelcome(frame) {
    this.attempt = 0;
    this.ready = true;
    this.handlers.status("connected");
    this.handlers.welcome(frame);
    for (const conversation of this.handlers.resumable()) {
      this.raw({ type: "resume", conversation, after: this.handlers.lastSeq(conversation) });
    }
    this.retries.clear();
    for (const clientId of this.pending.keys()) this.resend(clientId);
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.raw({ type: "ping" }), PING_MS);
  }

  /** Sends a frame now if connected (frames other than `send` are not kept). */
  raw(frame) {
    if (this.socket && this.ready && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** A send is done with (acknowledged, refused for good, or given up). */
  settle(clientId) {
    this.pending.delete(clientId);
    this.retries.delete(clientId);
  }

  /** Resends a refused send with the same client_id after a growing delay, or gives up. */
  retryLater(clientId, code) {
    if (!this.pending.has(clientId)) return;
    const attempt = (this.retries.get(clientId) || 0) + 1;
    if (attempt > MAX_RETRIES) {
      this.settle(clientId);
      this.handlers.gaveUp?.(clientId, code);
      return;
    }
    this.retries.set(clientId, attempt);
    setTimeout(() => this.resend(clientId), retryDelay(attempt));
  }

  resend(clientId) {
    const frame = this.pending.get(clientId);
    if (frame) this.raw(frame);
  }

  /** Sends a reply or note; returns its client_id. It is resent until acknowledged. */
  send(conversation, text, note) {
    const clientId = randomId();
    const frame = { type: "send", conversation, client_id: clientId, text };
    if (note) frame.note = true;
    this.pending.set(clientId, frame);
    this.raw(frame);
    return clientId;
  }

  /** Chooses a presence; the hub keeps it and tells every console of the agent. */
  setPresence(presence) {
    this.raw({ type: "presence", presence });
  }

  /** Stops the full stream of a conversation closed on screen. */
  unwatch(conversation) {
    this.raw({ type: "unwatch", conversation });
  }
}
