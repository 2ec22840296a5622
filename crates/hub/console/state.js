// The console's state and the one function that changes it: `reduce(state, event)`
// returns the next state and never touches the DOM, the network or the clock (time
// comes in on the events). The socket handlers and REST callbacks in app.js only turn
// what arrived into events; the views render from the state and compare the previous
// state with the next by reference to redraw only what changed: a collection that did
// not change is the same object, a conversation summary or message that did not change
// is the same object.
//
// Collections are Maps and Sets that are copied when they change (never mutated in
// place), so `previous.messages.get(id) !== next.messages.get(id)` says exactly
// whether that conversation's window changed.

/** Conversations whose window is kept at most; the least recently opened goes first. */
export const WINDOWS_KEPT = 12;

/** The state before anything arrived. */
export function initialState() {
  return {
    me: null,
    role: "agent",
    /** The ids of the sites the agent works on (from welcome). */
    sites: [],
    /** Open conversations of our sites (from welcome and `conversation` frames). */
    conversations: new Map(),
    /** Conversations seen outside the live set (closed, search results, past ones). */
    others: new Map(),
    /** conversation id -> Map(seq -> message): a window per open conversation. */
    messages: new Map(),
    /** conversation id -> the highest sequence in its window (kept, never recomputed). */
    maxSeq: new Map(),
    /** conversation id -> whether older messages than the window exist. */
    older: new Map(),
    /** Conversations whose window is loaded and watched, least recently opened first. */
    loaded: [],
    unread: new Map(),
    /** Conversations assigned to me and not opened since. */
    fresh: new Set(),
    /** conversation id -> when the visitor last said they were typing (ms), 0 when not. */
    typing: new Map(),
    /** conversation id -> the last sequence the visitor has seen. */
    visitorSeen: new Map(),
    /** conversation id -> the last sequence we told the hub we have seen. */
    seenSent: new Map(),
    /** conversation id -> queue entry (position, waiting_since, expected wait). */
    queue: new Map(),
    /** agent id -> {id, name, presence, load, capacity, departments}. */
    agents: new Map(),
    /** site id -> the ids of the agents who work on it. */
    siteAgents: new Map(),
    /** conversation id -> the REST details (visitor, past conversations, rating). */
    details: new Map(),
    /** client_id -> {conversation, text, note, error?} until the hub's message arrives. */
    outbox: new Map(),
    /** conversation id -> {conversation, deadline, declined} offered to me (accept mode). */
    offers: new Map(),
    /** Conversations opened by hand, kept in the chat strip. */
    pinned: [],
    active: null,
    tab: "queue",
    search: "",
    /** The REST list shown instead of a live tab (closed ones, search results), or null. */
    listed: null,
    presence: null,
  };
}

/** A copy of `map` with `key` set (or deleted when `value` is undefined). */
function withKey(map, key, value) {
  if (value === undefined ? !map.has(key) : map.get(key) === value) return map;
  const copy = new Map(map);
  if (value === undefined) copy.delete(key);
  else copy.set(key, value);
  return copy;
}

function withMember(set, key, present) {
  if (set.has(key) === present) return set;
  const copy = new Set(set);
  if (present) copy.add(key);
  else copy.delete(key);
  return copy;
}

/** The summary of a conversation, live or not. */
export function summaryOf(state, id) {
  return state.conversations.get(id) || state.others.get(id) || null;
}

/** Whether a summary is assigned to the signed-in agent. */
export function isMine(state, summary) {
  return Boolean(summary && summary.state === "assigned" && summary.agent && state.me
    && summary.agent.id === state.me.id);
}

/** The last sequence of a conversation's window (where a resume starts), 0 if none. */
export function lastSeq(state, id) {
  return state.maxSeq.get(id) || 0;
}

/** The messages of a conversation's window in order. */
export function messagesOf(state, id) {
  const window = state.messages.get(id);
  return window ? [...window.values()].sort((a, b) => a.seq - b.seq) : [];
}

/** The conversations of a live tab, in its order; null for the tabs read over REST. */
export function listFor(state, tab) {
  const all = [...state.conversations.values()];
  if (tab === "queue") {
    const since = (summary) => state.queue.get(summary.id)?.waiting_since || summary.updated_at;
    return all
      .filter((c) => c.state === "queued")
      .sort((a, b) => (b.priority || 0) - (a.priority || 0) || since(a) - since(b));
  }
  if (tab === "mine") return all.filter((c) => isMine(state, c)).sort((a, b) => a.created_at - b.created_at);
  if (tab === "open") return all.sort((a, b) => b.updated_at - a.updated_at);
  return null;
}

/** Puts one message into its conversation's window. */
function addMessage(state, message) {
  const id = message.conversation;
  const before = state.messages.get(id);
  if (before && before.get(message.seq) === message) return state;
  const window = new Map(before || []);
  window.set(message.seq, message);
  const next = { ...state, messages: withKey(state.messages, id, window) };
  if (message.seq > (state.maxSeq.get(id) || 0)) next.maxSeq = withKey(state.maxSeq, id, message.seq);
  return next;
}

/** Replaces a summary where it lives (live when open, `others` when closed). */
function putSummary(state, summary) {
  let { conversations, others, queue } = state;
  if (summary.state === "closed") {
    conversations = withKey(conversations, summary.id, undefined);
    others = withKey(others, summary.id, summary);
    queue = withKey(queue, summary.id, undefined);
  } else {
    conversations = withKey(conversations, summary.id, summary);
    if (others.has(summary.id)) others = withKey(others, summary.id, undefined);
    if (summary.state !== "queued") queue = withKey(queue, summary.id, undefined);
  }
  let { listed } = state;
  if (listed && listed.some((item) => item.id === summary.id)) {
    listed = listed.map((item) => (item.id === summary.id ? summary : item));
  }
  let { offers } = state;
  if (offers.has(summary.id) && summary.state !== "queued") offers = withKey(offers, summary.id, undefined);
  let { fresh } = state;
  const before = summaryOf(state, summary.id);
  if (isMine(state, summary) && !isMine(state, before) && summary.id !== state.active) {
    fresh = withMember(fresh, summary.id, true);
  }
  return { ...state, conversations, others, queue, listed, offers, fresh };
}

function onMessageFrame(state, message, event) {
  const id = message.conversation;
  const isNew = !state.messages.get(id)?.has(message.seq);
  let next = addMessage(state, message);
  if (message.client_id && next.outbox.has(message.client_id)) {
    next = { ...next, outbox: withKey(next.outbox, message.client_id, undefined) };
  }
  const summary = summaryOf(next, id);
  if (summary && message.seq > (summary.last_seq || 0)) {
    const moved = { ...summary, last_seq: message.seq, updated_at: Math.max(summary.updated_at || 0, message.at || 0) };
    if (message.kind !== "event") moved.preview = { author: message.author.kind, text: message.text, at: message.at };
    next = putSummary(next, moved);
  }
  if (isNew && message.author.kind === "visitor") {
    next = { ...next, typing: withKey(next.typing, id, 0) };
    if (id !== next.active || event.hidden) {
      next = { ...next, unread: withKey(next.unread, id, (next.unread.get(id) || 0) + 1) };
    }
  }
  return next;
}

function onWelcome(state, frame) {
  const sites = frame.sites || [];
  const ours = (summary) => !summary.site || sites.includes(summary.site);
  let next = { ...state, sites, role: frame.role || state.role };
  if (frame.presence) next.presence = frame.presence;
  const others = new Map([...state.others].filter(([, summary]) => ours(summary)));
  const conversations = new Map();
  let unread = state.unread;
  let fresh = state.fresh;
  for (const summary of frame.conversations || []) {
    conversations.set(summary.id, summary);
    if (summary.id !== state.active) unread = withKey(unread, summary.id, summary.unread || 0);
    // Chats assigned to me while the socket was down still count as new.
    const before = state.conversations.get(summary.id);
    if (before && isMine(state, summary) && !isMine(state, before) && summary.id !== state.active) {
      fresh = withMember(fresh, summary.id, true);
    }
    others.delete(summary.id);
  }
  next = { ...next, conversations, others, unread, fresh };
  // The role or sites may have narrowed while the socket was down: forget windows that
  // are no longer ours.
  for (const id of state.loaded) {
    const summary = summaryOf(state, id);
    if (summary && !ours(summary)) next = forget(next, id);
  }
  return next;
}

function forget(state, id) {
  if (!state.loaded.includes(id)) return state;
  return {
    ...state,
    loaded: state.loaded.filter((other) => other !== id),
    messages: withKey(state.messages, id, undefined),
    maxSeq: withKey(state.maxSeq, id, undefined),
    older: withKey(state.older, id, undefined),
  };
}

/** Marks `id` as the most recently opened window; forgets the oldest beyond the cap. */
function touch(state, id) {
  let next = { ...state, loaded: [...state.loaded.filter((other) => other !== id), id] };
  for (const old of [...next.loaded]) {
    if (next.loaded.length <= WINDOWS_KEPT) break;
    if (old !== next.active && !next.pinned.includes(old)) next = forget(next, old);
  }
  return next;
}

function onFrame(state, frame, event) {
  switch (frame.type) {
    case "message":
      return onMessageFrame(state, frame, event);
    case "ack": {
      const pending = state.outbox.get(frame.client_id);
      if (!pending || !state.me) return state;
      // The hub does not echo our own messages back: the ack is the delivery, and the
      // line is built from what we sent, with the committed sequence.
      const known = state.messages.get(frame.conversation)?.get(frame.seq);
      return onMessageFrame(state, known || {
        conversation: frame.conversation,
        seq: frame.seq,
        kind: pending.note ? "note" : "text",
        author: { kind: "agent", id: state.me.id, name: state.me.name },
        text: pending.text,
        at: event.now,
        client_id: frame.client_id,
      }, event);
    }
    case "conversation": {
      const summary = frame.conversation;
      let next = putSummary(state, summary);
      if (summary.id !== state.active) next = { ...next, unread: withKey(next.unread, summary.id, summary.unread || 0) };
      return next;
    }
    case "state": {
      const summary = summaryOf(state, frame.conversation);
      return summary ? putSummary(state, { ...summary, state: frame.state }) : state;
    }
    case "typing":
      if (frame.author?.kind !== "visitor") return state;
      return { ...state, typing: withKey(state.typing, frame.conversation, frame.typing ? event.now : 0) };
    case "seen": {
      if (frame.by?.kind !== "visitor") return state;
      const before = state.visitorSeen.get(frame.conversation) || 0;
      return frame.seq > before ? { ...state, visitorSeen: withKey(state.visitorSeen, frame.conversation, frame.seq) } : state;
    }
    case "activity": {
      const summary = summaryOf(state, frame.conversation);
      if (!summary) return state;
      let next = putSummary(state, {
        ...summary,
        last_seq: Math.max(summary.last_seq || 0, frame.last_seq),
        preview: frame.preview,
        unread: frame.unread,
        updated_at: Math.max(summary.updated_at || 0, frame.preview?.at || 0),
      });
      if (frame.preview?.author === "visitor" && frame.conversation !== state.active) {
        next = { ...next, unread: withKey(next.unread, frame.conversation, frame.unread) };
      }
      return next;
    }
    case "presence":
      return { ...state, presence: frame.presence === "offline" ? "away" : frame.presence };
    case "agents": {
      const agents = new Map(state.agents);
      for (const agent of frame.agents) agents.set(agent.id, agent);
      const siteAgents = frame.site
        ? withKey(state.siteAgents, frame.site, frame.agents.map((agent) => agent.id))
        : state.siteAgents;
      return { ...state, agents, siteAgents };
    }
    case "offer":
      if (!state.me || frame.agent !== state.me.id) return state;
      return {
        ...state,
        offers: withKey(state.offers, frame.conversation, { conversation: frame.conversation, deadline: frame.deadline, declined: false }),
      };
    case "error": {
      if (!frame.client_id) return state;
      const pending = state.outbox.get(frame.client_id);
      // Retryable errors are resent by live.js; it reports `gave_up` when it stops.
      if (!pending || ["rate_limited", "store_unavailable", "internal"].includes(frame.code)) return state;
      return { ...state, outbox: withKey(state.outbox, frame.client_id, { ...pending, error: frame.code, reason: frame.message }) };
    }
    default:
      return state;
  }
}

/**
 * The next state after `event`. Events: `signed_in {me}`, `frame {frame, now, hidden}`
 * (a frame from the hub), `welcome {frame}`, `gave_up {client_id, code}` (live.js
 * stopped resending), `send {client_id, conversation, text, note}`, `open {id, summary?}`,
 * `deselect`, `close_window {id}`, `history {id, conversation, messages, older}`, `details {id,
 * answer}`, `listed {conversations}`, `tab {tab}`, `search {text}`, `queue {sites}`,
 * `agents_rest {sites}`, `seen_sent {id, seq}`, `read {id}`, `decline {id}`,
 * `offer_expired {id}`, `typing_expired {id}`.
 */
export function reduce(state, event) {
  switch (event.type) {
    case "signed_in":
      return { ...state, me: event.me, role: event.me.role, presence: event.me.presence || state.presence,
        tab: event.me.role !== "admin" && state.tab === "open" ? "queue" : state.tab };
    case "welcome":
      return onWelcome(state, event.frame);
    case "frame":
      return onFrame(state, event.frame, event);
    case "gave_up": {
      const pending = state.outbox.get(event.client_id);
      if (!pending) return state;
      return { ...state, outbox: withKey(state.outbox, event.client_id, { ...pending, error: event.code, gaveUp: true }) };
    }
    case "send":
      return {
        ...state,
        outbox: withKey(state.outbox, event.client_id, { conversation: event.conversation, text: event.text, note: Boolean(event.note) }),
      };
    case "open": {
      const id = event.id;
      const next = {
        ...state,
        active: id,
        pinned: state.pinned.includes(id) ? state.pinned : [...state.pinned, id],
        fresh: withMember(state.fresh, id, false),
        unread: withKey(state.unread, id, 0),
      };
      if (event.summary && !summaryOf(next, id)) next.others = withKey(next.others, id, event.summary);
      return next;
    }
    case "deselect":
      return state.active === null ? state : { ...state, active: null };
    case "close_window": {
      let next = { ...state, pinned: state.pinned.filter((other) => other !== event.id) };
      if (next.active === event.id) next.active = null;
      return forget(next, event.id);
    }
    case "history": {
      let next = state;
      if (event.conversation && !summaryOf(next, event.id)) next = { ...next, others: withKey(next.others, event.id, event.conversation) };
      const window = new Map(next.messages.get(event.id) || []);
      let max = next.maxSeq.get(event.id) || 0;
      for (const message of event.messages) {
        window.set(message.seq, message);
        if (message.seq > max) max = message.seq;
      }
      next = {
        ...next,
        messages: withKey(next.messages, event.id, window),
        maxSeq: withKey(next.maxSeq, event.id, max),
        older: withKey(next.older, event.id, Boolean(event.older)),
      };
      return touch(next, event.id);
    }
    case "touch":
      return touch(state, event.id);
    case "details": {
      // Details are re-read when the conversation changes; the same answer keeps its
      // object, so nothing that shows them is redrawn.
      const before = state.details.get(event.id);
      if (before && JSON.stringify(before) === JSON.stringify(event.answer)) return state;
      let next = { ...state, details: withKey(state.details, event.id, event.answer) };
      const summary = event.answer.conversation;
      if (summary && !next.conversations.has(event.id)) next = { ...next, others: withKey(next.others, event.id, summary) };
      return next;
    }
    case "listed": {
      const others = new Map(state.others);
      for (const summary of event.conversations) if (!state.conversations.has(summary.id)) others.set(summary.id, summary);
      return { ...state, listed: event.conversations, others };
    }
    case "tab":
      return { ...state, tab: event.tab };
    case "search":
      return { ...state, search: event.text, listed: event.text || state.tab === "closed" ? state.listed : null };
    case "queue": {
      // Re-read every few seconds: an entry that did not change keeps its object (and
      // the map stays the same when nothing changed), so its list item is not redrawn.
      const queue = new Map();
      let changed = false;
      for (const entries of Object.values(event.sites || {})) {
        for (const entry of entries) {
          const before = state.queue.get(entry.conversation);
          const same = before && Object.keys(entry).length === Object.keys(before).length
            && Object.keys(entry).every((key) => before[key] === entry[key]);
          queue.set(entry.conversation, same ? before : entry);
          if (!same) changed = true;
        }
      }
      if (!changed && queue.size === state.queue.size) return state;
      return { ...state, queue };
    }
    case "agents_rest": {
      const agents = new Map(state.agents);
      let siteAgents = state.siteAgents;
      for (const [site, list] of Object.entries(event.sites || {})) {
        for (const agent of list) agents.set(agent.id, agent);
        siteAgents = withKey(siteAgents, site, list.map((agent) => agent.id));
      }
      return { ...state, agents, siteAgents };
    }
    case "seen_sent":
      return { ...state, seenSent: withKey(state.seenSent, event.id, event.seq) };
    case "read":
      return { ...state, unread: withKey(state.unread, event.id, 0), fresh: withMember(state.fresh, event.id, false) };
    case "decline": {
      const offer = state.offers.get(event.id);
      return offer ? { ...state, offers: withKey(state.offers, event.id, { ...offer, declined: true }) } : state;
    }
    case "offer_expired":
      return { ...state, offers: withKey(state.offers, event.id, undefined) };
    case "typing_expired":
      return state.typing.get(event.id) ? { ...state, typing: withKey(state.typing, event.id, 0) } : state;
    default:
      return state;
  }
}

/**
 * The departments a transfer of `summary` may name: the site's own (from
 * `/api/departments`) and those the site's chats carry (the bot's rules hand chats to
 * departments the site may not list), sorted. Each says whether it is one of the
 * site's (`ofSite`: the hub takes only those, since the visitor sees the name) and
 * whether some agent of the site serves it (`served`: routing takes a department only
 * then); only one that is both can be picked.
 */
export function transferDepartments(state, departments, summary) {
  const ofSite = new Set(departments.filter((department) => department.site_id === summary.site).map((department) => department.name));
  const names = new Set(ofSite);
  for (const other of [...state.conversations.values(), ...state.others.values()]) {
    if (other.site === summary.site && other.department) names.add(other.department);
  }
  const agentsOfSite = state.siteAgents.get(summary.site);
  const served = new Set();
  for (const agent of state.agents.values()) {
    if (!agentsOfSite || agentsOfSite.includes(agent.id)) for (const name of agent.departments || []) served.add(name);
  }
  return [...names].sort().map((name) => ({ name, ofSite: ofSite.has(name), served: served.has(name) }));
}

/**
 * What names a visitor in the inbox, best first: the name they gave (identity, or the
 * contact form once its details are loaded), their e-mail, a
 * city a signed identity carried, their locale; the end of their id as a last resort.
 * Returns `{kind: "name" | "email" | "city" | "locale" | "id", value}`.
 */
export function visitorLabel(summary, details) {
  const visitor = details?.visitor || {};
  const contact = details?.contact || {};
  const name = summary?.visitor?.name || visitor.name || contact.name;
  if (name) return { kind: "name", value: name };
  const email = summary?.visitor_email || visitor.email || contact.email;
  if (email) return { kind: "email", value: email };
  const city = visitor.attributes && typeof visitor.attributes === "object" ? visitor.attributes.city : null;
  if (typeof city === "string" && city) return { kind: "city", value: city };
  const locale = summary?.visitor_locale || visitor.locale;
  if (locale) return { kind: "locale", value: locale };
  return { kind: "id", value: (summary?.visitor?.id || "").slice(-5) };
}
