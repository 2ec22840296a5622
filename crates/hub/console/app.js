// The agent console: sign-in, the live inbox, conversations, and the views for
// supervisors and admins. Plain ES modules, no framework and no build step; the hub
// embeds these files and serves them under a strict Content-Security-Policy.
//
// Data flow: one WebSocket (live.js) feeds `store` with conversation summaries of the
// agent's sites (`conversation` and `activity` frames: state, preview, unread count),
// and with the full stream (messages, typing, seen) of the conversations assigned to
// the agent and of those open on screen (a `resume` watches one, `unwatch` lets it go);
// the REST API (api.js) loads a window of history, details, lists that are not live
// (closed, search) and everything in the admin and report views. The console keeps a
// window of messages for a few conversations, not the whole site. Views re-render from
// `store`; text from visitors only ever reaches the page through textContent (dom.js).

import { get, post, query, setUnauthorizedHandler } from "./api.js";
import { clock, duration, LANGUAGES, number, setLang, t } from "./i18n.js";
import { fill, h } from "./dom.js";
import { Live } from "./live.js";
import { alertSummary, renderAdmin } from "./admin.js";
import { renderReports } from "./reports.js";

const $ = (id) => document.getElementById(id);

/** Everything the console knows. */
const store = {
  me: null,
  role: "agent",
  /** Open conversations of our sites (from welcome and `conversation` frames). */
  conversations: new Map(),
  /** Conversations seen outside the live set (closed, search results). */
  others: new Map(),
  /** conversation id -> Map(seq -> message): a window per open conversation. */
  messages: new Map(),
  /** Conversations whose window is loaded and watched (resumed after a reconnect),
   * least recently opened first. */
  loaded: new Set(),
  /** conversation id -> whether older messages than the window exist. */
  older: new Map(),
  /** The ids of the sites the agent works on (from welcome). */
  sites: [],
  unread: new Map(),
  /** Conversations assigned to me and not opened since. */
  fresh: new Set(),
  typing: new Map(),
  visitorSeen: new Map(),
  seenSent: new Map(),
  /** conversation id -> queue entry (position, waiting_since, expected wait). */
  queue: new Map(),
  /** agent id -> {id, name, presence, load, capacity, departments}. */
  agents: new Map(),
  /** site id -> Set of the ids of the agents who work on it (a transfer stays in the site). */
  siteAgents: new Map(),
  details: new Map(),
  drafts: new Map(),
  /** client_id -> {conversation, text, note, error?} until the hub's message arrives. */
  outbox: new Map(),
  /** Conversations opened by hand, kept in the chat strip. */
  pinned: [],
  /** Canned responses of every site of ours: `{id, site_id, shortcut, text}`. */
  canned: [],
  /** Departments of every site of ours: `{site_id, name}`. */
  departments: [],
  active: null,
  tab: "queue",
  view: "inbox",
  search: "",
  listed: null,
  alerts: [],
};

let live = null;

// ---------------------------------------------------------------- start and sign-in

function initLanguage() {
  const saved = localStorage.getItem("salam.lang");
  const guess = (navigator.language || "en").slice(0, 2);
  const code = saved || (["ar", "fa"].includes(guess) ? guess : "en");
  for (const select of [$("lang"), $("login-lang")]) {
    fill(select, LANGUAGES.map(([value, label]) => h("option", { value, text: label })));
    select.value = code;
    select.addEventListener("change", () => switchLanguage(select.value));
  }
  setLang(code);
}

function switchLanguage(code) {
  localStorage.setItem("salam.lang", code);
  $("lang").value = code;
  $("login-lang").value = code;
  setLang(code);
  renderAll();
}

async function start() {
  initLanguage();
  setUnauthorizedHandler(() => showLogin());
  $("login-form").addEventListener("submit", onLogin);
  try {
    const me = await get("/api/me");
    enter(me);
  } catch {
    showLogin();
  }
}

function showLogin() {
  if ($("account-dialog").open) $("account-dialog").close();
  if (live) live.stop();
  live = null;
  store.me = null;
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-email").focus();
}

async function onLogin(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  $("login-submit").disabled = true;
  try {
    const answer = await post("/api/login", {
      email: $("login-email").value.trim(),
      password: $("login-password").value,
    });
    $("login-password").value = "";
    enter(answer.agent);
  } catch (err) {
    $("login-error").textContent = loginProblem(err);
  } finally {
    $("login-submit").disabled = false;
  }
}

/** What a refused sign-in tells the person: throttled ones say how long to wait. */
function loginProblem(err) {
  if (err.status === 401) return t("wrong_login");
  if (err.status === 429) {
    return err.retryAfter ? t("login_throttled", { time: duration(err.retryAfter * 1000) }) : t("login_busy");
  }
  return t("error", { message: err.message });
}

function enter(me) {
  store.me = me;
  store.role = me.role;
  document.body.classList.toggle("is-admin", me.role === "admin");
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("me-name").textContent = me.name;
  if (me.role !== "admin" && store.tab === "open") store.tab = "queue";
  if (me.presence) $("presence").value = me.presence;
  live = new Live({
    frame: onFrame,
    status: onStatus,
    welcome: onWelcome,
    resumable: () => [...store.loaded],
    lastSeq,
    ended: () => showLogin(),
  });
  live.start();
  loadReference();
  refreshQueue();
  refreshAgents();
  routeHash();
}

async function logout() {
  try {
    await post("/api/logout");
  } catch {
    // The session may already be gone; signing out locally is what matters.
  }
  location.hash = "";
  location.reload();
}

/**
 * Canned responses and departments of all our sites (each names its site): the
 * composer offers those of the conversation's site, the transfer form its departments.
 */
async function loadReference() {
  try {
    store.canned = (await get("/api/canned")).canned || [];
  } catch {
    store.canned = [];
  }
  try {
    store.departments = (await get("/api/departments")).departments || [];
  } catch {
    store.departments = [];
  }
}

// ---------------------------------------------------------------- live frames

function onStatus(status) {
  const element = $("conn-status");
  element.className = `conn conn-${status}`;
  element.textContent = t(status);
  element.dataset.i18n = status;
}

function onWelcome(frame) {
  // The role and sites may have changed while the socket was down (the hub closes the
  // socket with 4003 when they narrow): forget what is no longer ours.
  if (frame.role && frame.role !== store.role) {
    store.role = frame.role;
    document.body.classList.toggle("is-admin", frame.role === "admin");
    if (frame.role !== "admin" && store.view === "admin") showView("inbox");
  }
  store.sites = frame.sites || [];
  const ours = (summary) => !summary.site || store.sites.includes(summary.site);
  for (const [id, summary] of [...store.others]) if (!ours(summary)) store.others.delete(id);
  for (const id of [...store.loaded]) {
    const summary = summaryOf(id);
    if (summary && !ours(summary)) forget(id);
  }
  if (frame.presence) $("presence").value = frame.presence;
  const previous = store.conversations;
  store.conversations = new Map();
  for (const summary of frame.conversations) {
    store.conversations.set(summary.id, summary);
    if (summary.id !== store.active) store.unread.set(summary.id, summary.unread || 0);
  }
  // Chats assigned to me while the socket was down still count as new.
  for (const summary of frame.conversations) {
    const before = previous.get(summary.id);
    if (before && isMine(summary) && !isMine(before)) announceNew(summary);
  }
  renderInbox();
}

function onFrame(frame) {
  switch (frame.type) {
    case "message":
      onMessage(frame);
      break;
    case "ack":
      onAck(frame);
      break;
    case "conversation":
      onConversation(frame.conversation);
      break;
    case "state": {
      const summary = summaryOf(frame.conversation);
      if (summary) onConversation({ ...summary, state: frame.state });
      break;
    }
    case "typing":
      if (frame.author.kind === "visitor") {
        store.typing.set(frame.conversation, frame.typing ? Date.now() : 0);
        if (frame.conversation === store.active) renderTyping();
        setTimeout(() => frame.conversation === store.active && renderTyping(), 6500);
      }
      break;
    case "seen":
      if (frame.by.kind === "visitor") {
        const before = store.visitorSeen.get(frame.conversation) || 0;
        store.visitorSeen.set(frame.conversation, Math.max(before, frame.seq));
        if (frame.conversation === store.active) renderMessages();
      }
      break;
    case "activity":
      onActivity(frame);
      break;
    case "presence":
      $("presence").value = frame.presence === "offline" ? "away" : frame.presence;
      break;
    case "agents":
      for (const agent of frame.agents) store.agents.set(agent.id, agent);
      if (frame.site) store.siteAgents.set(frame.site, new Set(frame.agents.map((agent) => agent.id)));
      if (store.view === "live") renderLive();
      break;
    case "alert":
      store.alerts.unshift(frame);
      toast(alertSummary(frame));
      if (store.view === "admin") renderView();
      break;
    case "error":
      onError(frame);
      break;
    default:
      break;
  }
}

function onError(frame) {
  if (frame.client_id) {
    const pending = store.outbox.get(frame.client_id);
    if (pending && !["rate_limited", "store_unavailable", "internal"].includes(frame.code)) {
      pending.error = frame.message || frame.code;
      if (pending.conversation === store.active) renderMessages();
    }
    return;
  }
  const taken = takeAsked && summaryOf(takeAsked);
  if (taken && (isMine(taken) || frame.code === "forbidden")) {
    takeAsked = null;
    // Refused because routing assigned it first: to us (fine) or someone else (say so).
    setTimeout(() => {
      if (!isMine(summaryOf(taken.id) || taken)) toast(t("error", { message: frame.message || frame.code }));
    }, 500);
    return;
  }
  toast(t("error", { message: frame.message || frame.code }));
}

function onMessage(message) {
  const id = message.conversation;
  let messages = store.messages.get(id);
  if (!messages) {
    messages = new Map();
    store.messages.set(id, messages);
  }
  const isNew = !messages.has(message.seq);
  messages.set(message.seq, message);
  if (message.client_id) store.outbox.delete(message.client_id);
  const summary = summaryOf(id);
  if (summary && message.seq > (summary.last_seq || 0)) summary.last_seq = message.seq;
  if (isNew && message.author.kind === "visitor") {
    store.typing.set(id, 0);
    if (id !== store.active || document.hidden) {
      store.unread.set(id, (store.unread.get(id) || 0) + 1);
      if (summary && isMine(summary)) chime();
    }
  }
  if (id === store.active) {
    renderMessages();
    markSeen();
  }
  renderListSoon();
}

/** A message in a conversation we do not follow: its summary moves. */
function onActivity(frame) {
  const summary = summaryOf(frame.conversation);
  if (!summary) return;
  summary.last_seq = Math.max(summary.last_seq || 0, frame.last_seq);
  summary.preview = frame.preview;
  summary.unread = frame.unread;
  summary.updated_at = Math.max(summary.updated_at || 0, frame.preview.at);
  if (frame.preview.author === "visitor" && frame.conversation !== store.active) {
    store.unread.set(frame.conversation, frame.unread);
  }
  renderListSoon();
}

/**
 * The hub does not echo our own messages back to this connection: the `ack` is the
 * delivery. The line is built from what we sent, with the committed sequence.
 */
function onAck(ack) {
  const pending = store.outbox.get(ack.client_id);
  if (!pending) return;
  const known = store.messages.get(ack.conversation)?.get(ack.seq);
  onMessage(known || {
    conversation: ack.conversation,
    seq: ack.seq,
    kind: pending.note ? "note" : "text",
    author: { kind: "agent", id: store.me.id, name: store.me.name },
    text: pending.text,
    at: Date.now(),
    client_id: ack.client_id,
  });
}

function onConversation(summary) {
  const before = summaryOf(summary.id);
  if (summary.id !== store.active) store.unread.set(summary.id, summary.unread || 0);
  if (summary.state === "closed") {
    store.conversations.delete(summary.id);
    store.others.set(summary.id, summary);
    store.queue.delete(summary.id);
  } else {
    store.conversations.set(summary.id, summary);
  }
  if (isMine(summary) && !(before && isMine(before))) announceNew(summary);
  if (summary.state !== "queued") store.queue.delete(summary.id);
  else refreshQueueSoon();
  if (summary.id === store.active) {
    renderChatHeader();
    loadDetails(summary.id);
  }
  if (store.view === "live") renderLive();
  renderListSoon();
}

// ---------------------------------------------------------------- helpers

function summaryOf(id) {
  return store.conversations.get(id) || store.others.get(id) || null;
}

function isMine(summary) {
  return summary.state === "assigned" && summary.agent && store.me && summary.agent.id === store.me.id;
}

function lastSeq(id) {
  const messages = store.messages.get(id);
  if (!messages || messages.size === 0) return 0;
  return Math.max(...messages.keys());
}

function visitorName(summary) {
  const details = store.details.get(summary.id);
  const name = summary.visitor?.name || details?.visitor?.name;
  return name || t("anonymous", { id: (summary.visitor?.id || "").slice(-5) });
}

function toast(text) {
  const element = $("toast");
  element.textContent = text;
  element.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => {
    element.hidden = true;
  }, 4000);
}

let listTimer = null;
function renderListSoon() {
  if (listTimer) return;
  listTimer = setTimeout(() => {
    listTimer = null;
    renderInbox();
  }, 50);
}

// ---------------------------------------------------------------- new chats: sound, notification, title

let audio = null;
function chime() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [offset, pitch] of [[0, 660], [0.16, 880]]) {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.frequency.value = pitch;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.15);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(now + offset);
      oscillator.stop(now + offset + 0.16);
    }
  } catch {
    // No audio device (or not allowed before a gesture): the title and list still tell.
  }
}

function announceNew(summary) {
  if (summary.id !== store.active || document.hidden) store.fresh.add(summary.id);
  chime();
  if ("Notification" in window && Notification.permission === "granted") {
    try {
      const notification = new Notification(t("new_chat"), {
        body: t("new_chat_body", { name: visitorName(summary) }),
        tag: summary.id,
      });
      notification.onclick = () => {
        window.focus();
        showView("inbox");
        openConversation(summary.id);
      };
    } catch {
      // Some browsers allow notifications only from a service worker; the title and
      // the sound still tell.
    }
  }
  updateTitle();
}

function updateTitle() {
  let count = 0;
  for (const summary of store.conversations.values()) {
    if (isMine(summary) && (store.fresh.has(summary.id) || (store.unread.get(summary.id) || 0) > 0)) count += 1;
  }
  document.title = count > 0 ? `(${count}) ${t("title")}` : t("title");
}

function setupNotifications() {
  const button = $("notify-button");
  const ask = "Notification" in window && Notification.permission === "default";
  button.hidden = !ask;
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";
  });
  // Browsers start audio only after a gesture: unlock it on the first click.
  document.addEventListener("click", () => {
    if (!audio) {
      try {
        audio = new AudioContext();
      } catch {
        audio = null;
      }
    }
  }, { once: true });
}

// ---------------------------------------------------------------- views

function showView(view) {
  if (!["inbox", "live", "reports", "admin"].includes(view)) view = "inbox";
  if (view === "admin" && store.role !== "admin") view = "inbox";
  store.view = view;
  if (location.hash.slice(1) !== view) history.replaceState(null, "", `#${view}`);
  for (const button of $("nav").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.view === view);
  }
  for (const name of ["inbox", "live", "reports", "admin"]) $(`view-${name}`).hidden = name !== view;
  renderView();
}

/** The view the address names; `#inbox/ID` (an alert's link) opens that conversation. */
async function routeHash() {
  const [view, id] = location.hash.slice(1).split("/");
  showView(view || "inbox");
  if (store.view !== "inbox" || !id) return;
  const conversation = decodeURIComponent(id);
  await openConversation(conversation);
  // One in no list (closed, say) has its summary only now that its history came.
  if (store.active === conversation) {
    renderChat();
    renderInbox();
  }
}

function renderView() {
  const context = { store, live, toast, refreshReference: loadReference };
  if (store.view === "inbox") renderInbox();
  else if (store.view === "live") renderLive();
  else if (store.view === "reports") renderReports($("view-reports"), context);
  else if (store.view === "admin") renderAdmin($("view-admin"), context);
}

function renderAll() {
  onStatus($("conn-status").dataset.i18n || "connecting");
  updateTitle();
  if (store.view === "inbox") {
    renderInbox();
    if (store.active) renderChat();
  } else {
    renderView();
  }
}

// ---------------------------------------------------------------- inbox list

function listFor(tab) {
  const all = [...store.conversations.values()];
  if (tab === "queue") {
    return all
      .filter((c) => c.state === "queued")
      .sort((a, b) => (b.priority || 0) - (a.priority || 0) || waitingSince(a) - waitingSince(b));
  }
  if (tab === "mine") return all.filter(isMine).sort((a, b) => a.created_at - b.created_at);
  if (tab === "open") return all.sort((a, b) => b.updated_at - a.updated_at);
  return null;
}

function waitingSince(summary) {
  return store.queue.get(summary.id)?.waiting_since || summary.updated_at;
}

function renderInbox() {
  if (!store.me) return;
  updateTitle();
  for (const tab of ["queue", "mine", "open"]) {
    const list = listFor(tab);
    const element = $(`count-${tab}`);
    element.textContent = list.length ? number(list.length) : "";
    const unread = list.some((c) => (store.unread.get(c.id) || 0) > 0);
    element.classList.toggle("has-unread", unread);
  }
  for (const button of $("inbox-tabs").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.tab === store.tab);
  }
  const items = store.search || store.tab === "closed" ? store.listed || [] : listFor(store.tab);
  const list = $("conversation-list");
  if (!items.length) {
    fill(list, h("li", { class: "empty", text: t("empty_list") }));
  } else {
    fill(list, items.map(listItem));
  }
  renderChatTabs();
}

function listItem(summary) {
  const unread = store.unread.get(summary.id) || 0;
  const entry = store.queue.get(summary.id);
  const facts = [];
  if (summary.state === "queued") {
    facts.push(t("waiting_for", { time: duration(Date.now() - waitingSince(summary)) }));
    if (entry?.position) facts.push(t("position", { n: number(entry.position) }));
    if (entry?.expected_wait_secs) facts.push(t("expected_wait", { time: duration(entry.expected_wait_secs * 1000) }));
  } else if (summary.agent && !isMine(summary)) {
    facts.push(t("assigned_to", { name: summary.agent.name || "" }));
  }
  if (summary.department) facts.push(t("department", { name: summary.department }));
  const preview = summary.preview;
  return h("li", {
    class: `item state-${summary.state}${summary.id === store.active ? " active" : ""}${unread ? " unread" : ""}`,
    data: { id: summary.id, state: summary.state },
    tabIndex: 0,
    on: {
      click: () => openConversation(summary.id),
      keydown: (event) => event.key === "Enter" && openConversation(summary.id),
    },
  },
  h("div", { class: "item-top" },
    h("span", { class: "item-name", dir: "auto", text: visitorName(summary) }),
    summary.priority ? h("span", { class: "badge priority", text: t("priority", { n: summary.priority }) }) : null,
    unread ? h("span", { class: "badge unread-count", text: number(unread) }) : null),
  preview ? h("div", { class: "item-preview", dir: "auto", text: preview.text }) : null,
  h("div", { class: "item-facts" },
    h("span", { class: `state state-${summary.state}`, text: t(`state_${summary.state}`) }),
    facts.map((fact) => h("span", { text: fact })),
    h("time", { text: clock(summary.updated_at) })));
}

let searchTimer = null;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    store.search = $("search").value.trim();
    await reloadListed();
  }, 250);
}

/** Loads the lists the socket does not keep: closed ones and search results. */
async function reloadListed() {
  if (!store.search && store.tab !== "closed") {
    store.listed = null;
    renderInbox();
    return;
  }
  const state = store.tab === "open" ? "open" : store.tab === "queue" ? "queued" : store.tab;
  try {
    const answer = await get(`/api/conversations${query({ state, q: store.search })}`);
    store.listed = answer.conversations;
    for (const summary of answer.conversations) {
      if (!store.conversations.has(summary.id)) store.others.set(summary.id, summary);
    }
  } catch (err) {
    store.listed = [];
    toast(t("error", { message: err.message }));
  }
  renderInbox();
}

function selectTab(tab) {
  store.tab = tab;
  reloadListed();
}

let queueTimer = null;
function refreshQueueSoon() {
  clearTimeout(queueTimer);
  queueTimer = setTimeout(refreshQueue, 300);
}

async function refreshQueue() {
  try {
    const answer = await get("/api/queue");
    store.queue.clear();
    for (const entries of Object.values(answer.sites || {})) {
      for (const entry of entries) store.queue.set(entry.conversation, entry);
    }
    renderListSoon();
    if (store.view === "live") renderLive();
  } catch {
    // The next tick tries again.
  }
}

async function refreshAgents() {
  try {
    const answer = await get("/api/agents");
    for (const [site, agents] of Object.entries(answer.sites || {})) {
      for (const agent of agents) store.agents.set(agent.id, agent);
      store.siteAgents.set(site, new Set(agents.map((agent) => agent.id)));
    }
    if (store.view === "live") renderLive();
  } catch {
    // The next tick tries again.
  }
}

// ---------------------------------------------------------------- several chats at once

/** The chat strip: my chats, then the ones opened by hand. */
function stripIds() {
  const mine = listFor("mine").map((c) => c.id);
  const ids = [...mine];
  for (const id of store.pinned) if (!ids.includes(id) && summaryOf(id)) ids.push(id);
  return ids;
}

function renderChatTabs() {
  const ids = stripIds();
  fill($("chat-tabs"), ids.map((id, index) => {
    const summary = summaryOf(id);
    const unread = store.unread.get(id) || 0;
    return h("button", {
      class: `chat-tab${id === store.active ? " active" : ""}${store.fresh.has(id) ? " fresh" : ""}`,
      data: { id },
      title: `Alt+${index + 1}`,
      on: { click: () => openConversation(id) },
    },
    h("span", { dir: "auto", text: visitorName(summary) }),
    unread ? h("b", { class: "badge unread-count", text: number(unread) }) : null,
    summary.state === "closed" ? h("span", {
      class: "unpin",
      text: "×",
      on: { click: (event) => { event.stopPropagation(); unpin(id); } },
    }) : null);
  }));
}

function unpin(id) {
  store.pinned = store.pinned.filter((other) => other !== id);
  if (store.active === id) {
    store.active = null;
    renderChat();
  }
  forget(id);
  renderChatTabs();
}

/** Conversations whose window is kept at most; the least recently opened goes first. */
const WINDOWS_KEPT = 12;
/** Messages loaded per window, and per "earlier" page. */
const WINDOW = 100;

/** Drops a conversation's window and stops watching it (unless it is ours). */
function forget(id) {
  if (!store.loaded.delete(id)) return;
  store.messages.delete(id);
  store.older.delete(id);
  const summary = summaryOf(id);
  if (!(summary && isMine(summary))) live?.unwatch(id);
}

/** Marks `id` as the most recently opened window; forgets the oldest beyond the cap. */
function touchWindow(id) {
  store.loaded.delete(id);
  store.loaded.add(id);
  for (const old of [...store.loaded]) {
    if (store.loaded.size <= WINDOWS_KEPT) break;
    if (old !== store.active && !store.pinned.includes(old)) forget(old);
  }
}

function onShortcut(event) {
  if (!event.altKey || store.view !== "inbox") return;
  const ids = stripIds();
  if (!ids.length) return;
  let index = ids.indexOf(store.active);
  if (event.key === "ArrowDown") index = (index + 1) % ids.length;
  else if (event.key === "ArrowUp") index = (index - 1 + ids.length) % ids.length;
  else if (/^[1-9]$/.test(event.key)) index = Number(event.key) - 1;
  else return;
  if (ids[index]) {
    event.preventDefault();
    openConversation(ids[index]);
  }
}

// ---------------------------------------------------------------- one conversation

async function openConversation(id) {
  saveDraft();
  store.active = id;
  if (!store.pinned.includes(id)) store.pinned.push(id);
  store.fresh.delete(id);
  store.unread.set(id, 0);
  renderChat();
  renderInbox();
  await Promise.all([loadHistory(id), loadDetails(id)]);
  if (store.active === id) {
    renderMessages();
    markSeen();
  }
}

/** Loads the last messages of a conversation and watches it (its stream comes live). */
async function loadHistory(id) {
  if (store.loaded.has(id)) {
    touchWindow(id);
    return;
  }
  try {
    const answer = await get(`/api/conversations/${encodeURIComponent(id)}/messages${query({ before: Number.MAX_SAFE_INTEGER, limit: WINDOW })}`);
    if (!summaryOf(id)) store.others.set(id, answer.conversation);
    for (const message of answer.messages) onMessageQuiet(message);
    store.older.set(id, answer.messages.length === WINDOW && answer.messages[0].seq > 1);
    touchWindow(id);
    // Watch it, closing the gap between the REST answer and live delivery.
    live?.raw({ type: "resume", conversation: id, after: lastSeq(id) });
  } catch (err) {
    toast(t("error", { message: err.message }));
  }
}

/** Loads the page of messages before the window's first. */
async function loadEarlier(id) {
  const messages = store.messages.get(id);
  if (!messages || messages.size === 0) return;
  const first = Math.min(...messages.keys());
  try {
    const answer = await get(`/api/conversations/${encodeURIComponent(id)}/messages${query({ before: first, limit: WINDOW })}`);
    for (const message of answer.messages) onMessageQuiet(message);
    store.older.set(id, answer.messages.length === WINDOW && answer.messages[0].seq > 1);
    if (store.active === id) renderMessages();
  } catch (err) {
    toast(t("error", { message: err.message }));
  }
}

function onMessageQuiet(message) {
  let messages = store.messages.get(message.conversation);
  if (!messages) {
    messages = new Map();
    store.messages.set(message.conversation, messages);
  }
  messages.set(message.seq, message);
}

let detailsTimer = null;
function loadDetails(id) {
  clearTimeout(detailsTimer);
  return new Promise((resolve) => {
    detailsTimer = setTimeout(async () => {
      try {
        const answer = await get(`/api/conversations/${encodeURIComponent(id)}`);
        store.details.set(id, answer);
        if (!store.conversations.has(id)) store.others.set(id, answer.conversation);
        if (store.active === id) {
          renderDetails();
          renderChatHeader();
        }
      } catch {
        // Details are a convenience; the conversation still works without them.
      }
      resolve();
    }, 30);
  });
}

function renderChat() {
  const chat = $("chat");
  const id = store.active;
  if (!id || !summaryOf(id)) {
    fill(chat, h("p", { class: "placeholder", text: t("no_selection") }));
    fill($("details"));
    return;
  }
  const noteMode = store.drafts.get(`${id}:mode`) === "note";
  const composer = h("textarea", {
    id: "composer",
    dir: "auto",
    rows: 3,
    placeholder: t(noteMode ? "note_placeholder" : "reply_placeholder"),
    value: store.drafts.get(id) || "",
    on: { keydown: onComposerKey, input: onComposerInput, blur: () => stopTyping() },
  });
  fill(chat,
    h("div", { id: "chat-header", class: "chat-header" }),
    h("div", { id: "transfer-panel", class: "transfer-panel", hidden: true }),
    h("div", { id: "messages", class: "messages", attrs: { "aria-live": "polite" } }),
    h("div", { id: "typing", class: "typing" }),
    h("div", { class: `composer${noteMode ? " note-mode" : ""}`, id: "composer-box" },
      h("div", { class: "modes" },
        h("button", { id: "mode-reply", class: noteMode ? "" : "active", text: t("reply"), on: { click: () => setMode("reply") } }),
        h("button", { id: "mode-note", class: noteMode ? "active" : "", text: t("note"), on: { click: () => setMode("note") } })),
      h("ul", { id: "canned-menu", class: "canned-menu", hidden: true }),
      composer,
      h("button", { id: "send-button", class: "primary", text: t("send"), on: { click: sendComposer } })));
  renderChatHeader();
  renderMessages();
  renderTyping();
  renderDetails();
  composer.focus();
}

function setMode(mode) {
  saveDraft();
  store.drafts.set(`${store.active}:mode`, mode);
  renderChat();
}

function saveDraft() {
  const composer = $("composer");
  if (composer && store.active) store.drafts.set(store.active, composer.value);
}

function renderChatHeader() {
  const header = $("chat-header");
  const summary = summaryOf(store.active);
  if (!header || !summary) return;
  const actions = [];
  if (summary.state === "queued" || summary.state === "bot") {
    actions.push(h("button", { id: "take-button", class: "primary", text: t("take"), on: { click: () => take(summary.id) } }));
  }
  if (summary.state !== "closed") {
    actions.push(h("button", { id: "transfer-button", text: t("transfer"), on: { click: toggleTransfer } }));
    actions.push(h("button", { id: "close-button", class: "danger", text: t("close"), on: { click: () => live?.raw({ type: "close", conversation: summary.id }) } }));
  }
  fill(header,
    h("div", { class: "chat-title" },
      h("h2", { id: "chat-visitor-name", dir: "auto", text: visitorName(summary) }),
      h("span", { id: "chat-state", class: `state state-${summary.state}`, data: { state: summary.state }, text: t(`state_${summary.state}`) }),
      summary.agent ? h("span", { class: "fact", text: t("assigned_to", { name: summary.agent.name || "" }) }) : null,
      summary.department ? h("span", { class: "fact", text: t("department", { name: summary.department }) }) : null,
      summary.priority ? h("span", { class: "badge priority", text: t("priority", { n: summary.priority }) }) : null),
    h("div", { class: "actions" }, actions));
  const composerBox = $("composer-box");
  if (composerBox) composerBox.classList.toggle("closed", summary.state === "closed");
}

/** A take asked for by hand; its refusal is not shown once the chat is ours anyway. */
let takeAsked = null;

function take(id) {
  // Routing gives chats only to online agents, so taking one means being back online.
  // (Going online may assign this very chat from the backlog before the take arrives.)
  if ($("presence").value !== "online") {
    $("presence").value = "online";
    live?.setPresence("online");
  }
  takeAsked = id;
  live?.raw({ type: "take", conversation: id });
}

async function toggleTransfer() {
  const panel = $("transfer-panel");
  if (!panel.hidden) {
    panel.hidden = true;
    return;
  }
  await Promise.all([refreshAgents(), loadReference()]);
  const summary = summaryOf(store.active);
  // Only the conversation's site: the hub refuses an agent or a department it lacks.
  const ofSite = store.siteAgents.get(summary.site);
  const agents = [...store.agents.values()]
    .filter((agent) => agent.id !== store.me.id && (!ofSite || ofSite.has(agent.id)));
  const departments = new Set(store.departments
    .filter((department) => department.site_id === summary.site)
    .map((department) => department.name));
  // Routing takes a department only while some agent of the site serves it.
  const served = new Set();
  for (const agent of store.agents.values()) {
    if (!ofSite || ofSite.has(agent.id)) for (const name of agent.departments || []) served.add(name);
  }
  const agentSelect = h("select", { id: "transfer-agent" },
    h("option", { value: "", text: t("choose") }),
    agents.map((agent) => h("option", {
      value: agent.id,
      text: `${agent.name} · ${t(agent.presence)} · ${agent.load}/${agent.capacity}`,
    })));
  const departmentSelect = h("select", { id: "transfer-department" },
    h("option", { value: "", text: t("choose") }),
    [...departments].sort().map((name) => h("option", {
      value: name,
      text: served.has(name) ? name : t("department_unserved", { name }),
      disabled: !served.has(name),
    })));
  const note = h("textarea", { id: "transfer-note", dir: "auto", rows: 2 });
  fill(panel,
    h("label", {}, h("span", { text: t("transfer_to_agent") }), agentSelect),
    h("label", {}, h("span", { text: t("transfer_to_department") }), departmentSelect,
      departments.size ? null : h("small", { class: "muted", id: "transfer-no-departments", text: t("no_departments_site") })),
    h("label", { class: "wide" }, h("span", { text: t("transfer_note") }), note),
    h("div", { class: "actions" },
      h("button", { text: t("cancel"), on: { click: () => { panel.hidden = true; } } }),
      h("button", {
        id: "transfer-submit",
        class: "primary",
        text: t("transfer"),
        on: {
          click: () => {
            const frame = { type: "transfer", conversation: summary.id };
            if (agentSelect.value) frame.agent = agentSelect.value;
            else if (departmentSelect.value) frame.department = departmentSelect.value;
            else return;
            if (note.value.trim()) frame.note = note.value.trim();
            live?.raw(frame);
            panel.hidden = true;
          },
        },
      })));
  panel.hidden = false;
}

function renderMessages() {
  const container = $("messages");
  if (!container) return;
  const id = store.active;
  const stickToBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 80;
  const messages = [...(store.messages.get(id)?.values() || [])].sort((a, b) => a.seq - b.seq);
  const seenUpTo = store.visitorSeen.get(id) || 0;
  const nodes = messages.map((message, index) => messageNode(message, messages, index, seenUpTo));
  if (store.older.get(id)) {
    nodes.unshift(h("button", { id: "load-earlier", class: "link earlier", text: t("earlier"), on: { click: () => loadEarlier(id) } }));
  }
  for (const [clientId, pending] of store.outbox) {
    if (pending.conversation !== id) continue;
    nodes.push(h("div", { class: `msg author-agent mine pending${pending.note ? " kind-note" : ""}`, data: { clientId } },
      h("div", { class: "meta" }, h("span", { class: "author", text: store.me.name })),
      h("div", { class: "text", dir: "auto", text: pending.text }),
      h("div", { class: pending.error ? "status error" : "status", text: pending.error ? t("failed", { reason: pending.error }) : t("sending") })));
  }
  fill(container, nodes);
  if (stickToBottom || container.dataset.conversation !== id) container.scrollTop = container.scrollHeight;
  container.dataset.conversation = id;
}

function messageNode(message, all, index, seenUpTo) {
  const kind = message.author.kind;
  const mine = kind === "agent" && message.author.id === store.me.id;
  const classes = ["msg", `author-${kind}`, `kind-${message.kind || "text"}`];
  if (mine) classes.push("mine");
  if (message.kind === "event") {
    return h("div", { class: classes.join(" "), data: { seq: message.seq } },
      h("span", { class: "text", dir: "auto", text: message.text }),
      h("time", { text: clock(message.at) }));
  }
  const author = kind === "visitor"
    ? visitorName(summaryOf(message.conversation) || { visitor: message.author, id: message.conversation })
    : kind === "bot" ? (message.author.name || t("bot")) : kind === "system" ? t("system") : (message.author.name || "");
  const node = h("div", { class: classes.join(" "), data: { seq: message.seq } },
    h("div", { class: "meta" },
      h("span", { class: "author", dir: "auto", text: author }),
      kind === "bot" ? h("span", { class: "badge bot", text: t("bot") }) : null,
      message.kind === "note" ? h("span", { class: "badge note", text: t("note_label") }) : null,
      h("time", { text: clock(message.at) })),
    h("div", { class: "text", dir: "auto", text: message.text }));
  if (message.quick_replies?.length) {
    node.appendChild(h("div", { class: "quick-replies" },
      message.quick_replies.map((reply) => h("span", { class: "chip", dir: "auto", text: reply.label }))));
  }
  if (kind === "bot") node.appendChild(ruleLine(message));
  if (kind === "agent" && message.kind !== "note" && message.seq <= seenUpTo) {
    node.appendChild(h("div", { class: "status seen", text: `✓✓ ${t("seen")}` }));
  }
  return node;
}

/** The rule that produced a bot line: the hub names it on every bot message. */
function ruleLine(message) {
  return h("div", {
    class: "rule",
    text: message.rule ? t("rule", { rule: message.rule }) : t("no_rule"),
  });
}

function renderTyping() {
  const element = $("typing");
  if (!element) return;
  const since = store.typing.get(store.active) || 0;
  const summary = summaryOf(store.active);
  element.textContent = since && Date.now() - since < 6000 && summary
    ? t("is_typing", { name: visitorName(summary) })
    : "";
}

function markSeen() {
  if (document.hidden || !store.active) return;
  const seq = lastSeq(store.active);
  if (seq > (store.seenSent.get(store.active) || 0) && live?.raw({ type: "seen", conversation: store.active, seq })) {
    store.seenSent.set(store.active, seq);
  }
  store.unread.set(store.active, 0);
  store.fresh.delete(store.active);
  updateTitle();
}

// ---------------------------------------------------------------- composer

let typingSentAt = 0;
let typingTimer = null;

function onComposerInput() {
  const composer = $("composer");
  renderCanned(composer.value);
  const noteMode = store.drafts.get(`${store.active}:mode`) === "note";
  if (noteMode || !composer.value.trim()) return;
  if (Date.now() - typingSentAt > 3000) {
    live?.raw({ type: "typing", conversation: store.active, typing: true });
    typingSentAt = Date.now();
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 4000);
}

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSentAt && store.active) {
    live?.raw({ type: "typing", conversation: store.active, typing: false });
  }
  typingSentAt = 0;
}

function onComposerKey(event) {
  const menu = $("canned-menu");
  if (!menu.hidden) {
    const items = [...menu.querySelectorAll("li")];
    let index = items.findIndex((item) => item.classList.contains("selected"));
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      items[index]?.classList.remove("selected");
      index = event.key === "ArrowDown" ? (index + 1) % items.length : (index - 1 + items.length) % items.length;
      items[index]?.classList.add("selected");
      return;
    }
    if ((event.key === "Enter" || event.key === "Tab") && items.length) {
      event.preventDefault();
      pickCanned(items[Math.max(0, index)].dataset.id);
      return;
    }
    if (event.key === "Escape") {
      menu.hidden = true;
      return;
    }
  }
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendComposer();
  }
}

/** The canned responses of the active conversation's site that match what follows `/`. */
function cannedMatches(value) {
  if (!value.startsWith("/")) return [];
  const site = summaryOf(store.active)?.site;
  const needle = value.slice(1).toLowerCase();
  return store.canned.filter((item) => item.site_id === site
    && (item.shortcut.toLowerCase().includes(needle) || item.text.toLowerCase().includes(needle))).slice(0, 8);
}

function renderCanned(value) {
  const menu = $("canned-menu");
  const matches = cannedMatches(value);
  menu.hidden = matches.length === 0;
  fill(menu, matches.map((item, index) => h("li", {
    class: `canned-item${index === 0 ? " selected" : ""}`,
    data: { id: String(item.id) },
    on: { mousedown: (event) => { event.preventDefault(); pickCanned(String(item.id)); } },
  },
  h("b", { text: `/${item.shortcut}` }),
  h("span", { dir: "auto", text: item.text }))));
}

function pickCanned(id) {
  const item = store.canned.find((candidate) => String(candidate.id) === id);
  const composer = $("composer");
  if (!item || !composer) return;
  composer.value = item.text;
  $("canned-menu").hidden = true;
  composer.focus();
}

function sendComposer() {
  const composer = $("composer");
  const text = composer.value.trim();
  const id = store.active;
  if (!text || !id || !live) return;
  const note = store.drafts.get(`${id}:mode`) === "note";
  stopTyping();
  const clientId = live.send(id, text, note);
  store.outbox.set(clientId, { conversation: id, text, note });
  composer.value = "";
  store.drafts.set(id, "");
  $("canned-menu").hidden = true;
  renderMessages();
}

// ---------------------------------------------------------------- visitor details

function renderDetails() {
  const pane = $("details");
  const id = store.active;
  const answer = store.details.get(id);
  if (!id || !answer) {
    fill(pane);
    return;
  }
  const visitor = answer.visitor || {};
  const row = (label, value, extra = {}) => h("div", { class: "detail" },
    h("dt", { text: t(label) }),
    h("dd", { dir: "auto", text: value || t("none"), ...extra }));
  // For an identified visitor, say of the name and e-mail whether the site signed them
  // (identity v2) or the visitor typed them: only signed ones are vouched for.
  const verified = new Set(visitor.verified || []);
  const vouched = (label, field, value, className) => {
    if (!answer.identified || !value) return row(label, value, { class: className });
    const signed = verified.has(field);
    return h("div", { class: "detail", data: { field, verified: signed ? "yes" : "no" } },
      h("dt", { text: t(label) }),
      h("dd", {},
        h("span", { class: className, dir: "auto", text: value }), " ",
        h("span", {
          class: `badge ${signed ? "verified" : "unverified"}`,
          text: signed ? t("verified") : t("unverified"),
          title: signed ? t("verified_hint") : t("unverified_hint"),
        })));
  };
  const attributes = answer.identified && visitor.attributes && typeof visitor.attributes === "object"
    ? Object.entries(visitor.attributes)
    : [];
  const page = visitor.page_url ? safeLink(visitor.page_url, visitor.page_title || visitor.page_url) : null;
  fill(pane,
    h("h3", { text: t("details") }),
    h("dl", {},
      vouched("name", "name", visitor.name, "visitor-name"),
      vouched("email", "email", visitor.email, "visitor-email"),
      row("phone", visitor.phone),
      row("identified", answer.identified ? `${t("yes")} (${visitor.external_id})` : t("no")),
      attributes.length ? h("div", { class: "detail" },
        h("dt", { text: t("signed_attributes") }),
        h("dd", {}, h("dl", { class: "attributes", id: "visitor-attributes" }, attributes.map(([key, value]) => h("div", { class: "attribute" },
          h("dt", { dir: "auto", text: key }),
          h("dd", { dir: "auto", text: value === null ? t("none") : String(value) })))))) : null,
      h("div", { class: "detail" }, h("dt", { text: t("page") }), h("dd", { dir: "auto" }, page || t("none"))),
      row("referrer", visitor.referrer),
      row("browser", visitor.user_agent),
      row("language", visitor.locale),
      answer.rating ? row("rating", `${"★".repeat(answer.rating.score)}${"☆".repeat(5 - answer.rating.score)} ${answer.rating.comment || ""}`) : null),
    h("h4", { text: t("past") }),
    answer.past_conversations?.length
      ? h("ul", { class: "past" }, answer.past_conversations.map((past) => h("li", {},
        h("button", {
          class: "link",
          text: `${clock(past.created_at)} · ${t(`state_${past.state}`)}`,
          on: { click: () => { store.others.set(past.id, past); openConversation(past.id); } },
        }))))
      : h("p", { class: "muted", text: t("none") }));
}

/** A link only for http(s) addresses; anything else stays text. */
function safeLink(url, label) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return h("span", { text: label });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return h("span", { text: label });
  return h("a", { href: parsed.href, target: "_blank", rel: "noopener noreferrer", text: label, title: parsed.href });
}

// ---------------------------------------------------------------- my account

/** The account dialog (the name in the top bar): change one's own password. */
function openAccount() {
  const dialog = $("account-dialog");
  const current = h("input", { id: "account-current", type: "password", autocomplete: "current-password", required: true });
  const fresh = h("input", {
    id: "account-new", type: "password", autocomplete: "new-password", required: true,
    attrs: { "aria-describedby": "account-policy" },
  });
  const problem = h("p", { id: "account-error", class: "error", attrs: { role: "alert" } });
  const submit = h("button", { id: "account-submit", class: "primary", type: "submit", text: t("change_password") });
  fill(dialog, h("form", {
    id: "account-form",
    class: "form",
    on: {
      submit: async (event) => {
        event.preventDefault();
        problem.textContent = "";
        submit.disabled = true;
        try {
          await post("/api/me/password", { current: current.value, new: fresh.value });
          dialog.close();
          toast(t("password_changed"));
        } catch (err) {
          problem.textContent = err.status === 403 ? t("wrong_current_password") : t("not_saved", { message: err.message });
        } finally {
          submit.disabled = false;
        }
      },
    },
  },
  h("h2", { id: "account-title", text: t("my_account") }),
  h("p", { class: "muted", dir: "auto", text: `${store.me?.name ?? ""} · ${store.me?.email ?? ""}` }),
  h("h3", { text: t("change_password") }),
  h("label", { class: "field" }, h("span", { text: t("current_password") }), current),
  h("label", { class: "field" }, h("span", { text: t("new_password") }), fresh),
  h("p", { id: "account-policy", class: "hint", text: t("password_policy") }),
  problem,
  h("div", { class: "actions" },
    submit,
    h("button", { id: "account-cancel", text: t("cancel"), on: { click: () => dialog.close() } }))));
  dialog.showModal();
  current.focus();
}

// ---------------------------------------------------------------- live view for supervisors

function renderLive() {
  const view = $("view-live");
  const agents = [...store.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
  const queued = [...store.queue.values()];
  const longest = queued.reduce((max, entry) => Math.max(max, Date.now() - entry.waiting_since), 0);
  const queueLength = Math.max(queued.length, listFor("queue").length);
  fill(view,
    h("div", { class: "cards" },
      h("div", { class: "card stat" }, h("span", { text: t("live_queue") }), h("b", { id: "live-queue-length", text: number(queueLength) })),
      h("div", { class: "card stat" }, h("span", { text: t("live_longest") }), h("b", { id: "live-longest-wait", text: queueLength ? duration(longest) : t("none") })),
      h("div", { class: "card stat" }, h("span", { text: t("online") }), h("b", { text: number(agents.filter((a) => a.presence === "online").length) }))),
    h("section", { class: "card" },
      h("h3", { text: t("live_agents") }),
      h("table", { class: "table", id: "live-agents" },
        h("thead", {}, h("tr", {},
          h("th", { text: t("name") }), h("th", { text: t("presence") }), h("th", { text: t("load") }), h("th", { text: t("departments") }))),
        h("tbody", {}, agents.map((agent) => h("tr", {},
          h("td", { dir: "auto", text: agent.name }),
          h("td", {}, h("span", { class: `presence presence-${agent.presence}`, text: t(agent.presence) })),
          h("td", {}, loadBar(agent.load, agent.capacity)),
          h("td", { text: (agent.departments || []).join(", ") })))))));
}

function loadBar(load, capacity) {
  const bar = h("span", { class: "bar-fill" });
  bar.style.inlineSize = `${capacity ? Math.min(100, (load / capacity) * 100) : 0}%`;
  return h("span", { class: "load" }, h("span", { class: "bar" }, bar), h("span", { text: `${number(load)}/${number(capacity)}` }));
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("logout").addEventListener("click", logout);
  $("me-name").addEventListener("click", openAccount);
  $("presence").addEventListener("change", () => live?.setPresence($("presence").value));
  $("nav").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-view]");
    if (button) showView(button.dataset.view);
  });
  $("inbox-tabs").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-tab]");
    if (button) selectTab(button.dataset.tab);
  });
  $("search").addEventListener("input", onSearch);
  document.addEventListener("keydown", onShortcut);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && store.view === "inbox") markSeen();
  });
  window.addEventListener("hashchange", () => store.me && routeHash());
  setupNotifications();
  // Wait times tick; the queue and agents are re-read in case a frame was missed.
  setInterval(() => {
    if (!store.me) return;
    if (store.view === "inbox") renderListSoon();
    if (store.view === "live") renderLive();
  }, 15_000);
  setInterval(() => {
    if (!store.me) return;
    refreshQueue();
    if (store.view === "live") refreshAgents();
  }, 10_000);
}

// Uncaught errors are kept for the browser tests (and anyone with devtools open).
window.salamErrors = [];
window.addEventListener("error", (event) => window.salamErrors.push(String(event.message)));
window.addEventListener("unhandledrejection", (event) => window.salamErrors.push(String(event.reason)));

wire();
start();

