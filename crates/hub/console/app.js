// The agent console: sign-in, the live inbox, conversations, and the views for
// supervisors and admins. Plain ES modules, no framework and no build step; the hub
// embeds these files and serves them under a strict Content-Security-Policy.
//
// Data flow: one WebSocket (live.js) brings conversation summaries of the agent's sites
// (`conversation` and `activity` frames: state, preview, unread count), the full stream
// (messages, typing, seen) of the conversations assigned to the agent and of those open
// on screen (a `resume` watches one, `unwatch` lets it go), and offers in accept mode;
// the REST API (api.js) loads a window of history, details, lists that are not live
// (closed, search) and everything in the admin and report views. Whatever arrives is
// turned into an event for the pure reducer in state.js (`dispatch`); the views render
// from its state, and compare the previous state with the next to redraw only what
// changed (a new message adds one line and touches one list item, never the whole
// list). Text from visitors only ever reaches the page through textContent (dom.js).

import { get, post, query, setUnauthorizedHandler } from "./api.js";
import { clock, duration, lang, LANGUAGES, number, plural, setLang, t } from "./i18n.js";
import { fill, h } from "./dom.js";
import { Live } from "./live.js";
import { alertSummary, renderAdmin } from "./admin.js";
import { renderReports } from "./reports.js";
import { channelBadge } from "./email.js";
import { customerCard, renderCustomers } from "./customer.js";
import { timelineButton } from "./timeline.js";
import {
  eventPhrase, initialState, isMine as isMineIn, lastSeq as lastSeqIn, listFor as listForIn, messagesOf, reduce,
  summaryOf as summaryIn, transferDepartments, visitorLabel,
} from "./state.js";

const $ = (id) => document.getElementById(id);

/** Everything the console knows about chats: only `dispatch` replaces it. */
let state = initialState();
/** The view on screen (inbox, live, reports, admin). */
let view = "inbox";
/** Drafts and the reply/note mode per conversation: what is typed, not what is known. */
const drafts = new Map();
/** Canned responses of every site of ours: `{id, site_id, shortcut, text}`. */
let canned = [];
/** Departments of every site of ours: `{site_id, name}`. */
let departments = [];
/** Alerts received live (admins). */
const alerts = [];

/** What admin.js and reports.js read. */
const store = {
  get role() {
    return state.role;
  },
  get me() {
    return state.me;
  },
  alerts,
};

let live = null;

const summaryOf = (id) => summaryIn(state, id);
const isMine = (summary) => isMineIn(state, summary);
const lastSeq = (id) => lastSeqIn(state, id);
const listFor = (tab) => listForIn(state, tab);

/** Applies an event and redraws what it changed. */
function dispatch(event) {
  const previous = state;
  state = reduce(state, event);
  if (state !== previous) render(previous, state);
}

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
  $("search").setAttribute("aria-label", t("search"));
}

function switchLanguage(code) {
  localStorage.setItem("salam.lang", code);
  $("lang").value = code;
  $("login-lang").value = code;
  setLang(code);
  $("search").setAttribute("aria-label", t("search"));
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
  state = initialState();
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
  dispatch({ type: "signed_in", me });
  document.body.classList.toggle("is-admin", me.role === "admin");
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("me-name").textContent = me.name;
  if (me.presence) $("presence").value = me.presence;
  live = new Live({
    frame: onFrame,
    status: onStatus,
    welcome: (frame) => dispatch({ type: "welcome", frame }),
    resumable: () => [...state.loaded],
    lastSeq,
    ended: () => showLogin(),
    gaveUp: (clientId, code) => dispatch({ type: "gave_up", client_id: clientId, code }),
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
    canned = (await get("/api/canned")).canned || [];
  } catch {
    canned = [];
  }
  try {
    departments = (await get("/api/departments")).departments || [];
  } catch {
    departments = [];
  }
}

// ---------------------------------------------------------------- live frames

function onStatus(status) {
  const element = $("conn-status");
  element.className = `conn conn-${status}`;
  element.textContent = t(status);
  element.dataset.i18n = status;
}

/** A frame from the hub: an event for the reducer, then the effects it calls for. */
function onFrame(frame) {
  if (frame.type === "alert") {
    alerts.unshift(frame);
    toast(alertSummary(frame));
    if (view === "admin") renderView();
    return;
  }
  if (frame.type === "error" && !frame.client_id) {
    onError(frame);
    return;
  }
  const previous = state;
  dispatch({ type: "frame", frame, now: Date.now(), hidden: document.hidden });
  switch (frame.type) {
    case "message": {
      const id = frame.conversation;
      const isNew = !previous.messages.get(id)?.has(frame.seq);
      const summary = summaryOf(id);
      if (isNew && frame.author.kind === "visitor" && summary && isMine(summary) && (id !== state.active || document.hidden)) chime();
      if (id === state.active) markSeen();
      break;
    }
    case "ack":
      if (frame.conversation === state.active) markSeen();
      break;
    case "conversation":
    case "state": {
      const id = frame.type === "state" ? frame.conversation : frame.conversation.id;
      const summary = summaryOf(id);
      if (!summary) break;
      const before = summaryIn(previous, id);
      if (isMine(summary) && !isMineIn(previous, before)) announceNew(summary);
      if (summary.state === "queued") refreshQueueSoon();
      if (id === state.active && frame.type === "conversation") loadDetails(id);
      break;
    }
    case "typing":
      if (frame.typing) setTimeout(() => dispatch({ type: "typing_expired", id: frame.conversation }), 6500);
      break;
    case "offer":
      if (state.offers.has(frame.conversation) && !previous.offers.has(frame.conversation)) {
        chime();
        if (!summaryOf(frame.conversation)) loadDetails(frame.conversation);
      }
      break;
    default:
      break;
  }
}

/** What an error code means to the agent, in their language. */
function errorText(frame) {
  const known = {
    at_capacity: "error_at_capacity",
    forbidden: "error_forbidden",
    not_found: "error_not_found",
    conversation_closed: "error_conversation_closed",
    rate_limited: "error_rate_limited",
    store_unavailable: "error_store_unavailable",
    internal: "error_internal",
  }[frame.code];
  return known ? t(known) : t("error", { message: frame.message || frame.code });
}

function onError(frame) {
  const taken = takeAsked && summaryOf(takeAsked);
  if (taken && isMine(taken)) {
    // Refused because routing assigned it to us first: fine.
    takeAsked = null;
    return;
  }
  if (taken && frame.code === "forbidden") {
    takeAsked = null;
    // Refused because routing assigned it first, maybe to us: say so only if not.
    setTimeout(() => {
      if (!isMine(summaryOf(taken.id) || taken)) toast(errorText(frame));
    }, 500);
    return;
  }
  takeAsked = null;
  toast(errorText(frame));
}

// ---------------------------------------------------------------- rendering from state

/** Redraws what differs between two states. */
function render(previous, next) {
  if (next.presence && next.presence !== previous.presence) $("presence").value = next.presence;
  if (next.role !== previous.role) {
    document.body.classList.toggle("is-admin", next.role === "admin");
    if (next.role !== "admin" && view === "admin") showView("inbox");
  }
  updateTitle();
  if (view === "inbox") {
    renderListSoon();
    const id = next.active;
    if (id !== previous.active) {
      renderChat();
    } else if (id) {
      if (summaryIn(previous, id) !== summaryIn(next, id) || previous.details.get(id) !== next.details.get(id)) renderChatHeader();
      if (previous.messages.get(id) !== next.messages.get(id) || previous.outbox !== next.outbox
        || previous.visitorSeen.get(id) !== next.visitorSeen.get(id) || previous.older.get(id) !== next.older.get(id)) {
        renderMessages();
      }
      if (previous.typing.get(id) !== next.typing.get(id)) renderTyping();
      if (previous.details.get(id) !== next.details.get(id)) renderDetails();
    }
    if (previous.offers !== next.offers || previous.conversations !== next.conversations) renderOffers();
  } else if (view === "live" && (previous.agents !== next.agents || previous.queue !== next.queue
    || previous.conversations !== next.conversations)) {
    renderLive();
  }
}

/** A visitor's name in the inbox: the name they gave, e-mail, city, locale, or id. */
function visitorName(summary) {
  const label = visitorLabel(summary, state.details.get(summary?.id));
  if (label.kind === "locale") return t("visitor_from", { language: languageName(label.value) });
  if (label.kind === "id") return t("anonymous", { id: label.value });
  return label.value;
}

function languageName(code) {
  try {
    return new Intl.DisplayNames([lang()], { type: "language" }).of(code) || code;
  } catch {
    return code;
  }
}

/** A system line in the agent's language from its event code; its text otherwise. */
function eventText(message) {
  const phrase = eventPhrase(message);
  if (!phrase) return message.text;
  return phrase.plural ? plural(phrase.plural, phrase.count) : t(phrase.key, phrase.vars);
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

/**
 * Makes `container`'s children the nodes of `entries` (in order) with the fewest DOM
 * changes: an entry whose `deps` are the same (by reference) as last time keeps its
 * node; others are built anew; nodes in the right place are not moved.
 * `entries`: `[{key, deps: [...], build: () => Node}]`.
 */
function reconcile(container, entries) {
  const previous = container.keyedNodes || new Map();
  const keys = new Set(entries.map((entry) => entry.key));
  for (const [key, old] of previous) if (!keys.has(key)) old.node.remove();
  const next = new Map();
  let cursor = container.firstChild;
  for (const entry of entries) {
    const old = previous.get(entry.key);
    let node;
    if (old && old.deps.length === entry.deps.length && old.deps.every((dep, i) => dep === entry.deps[i])) {
      node = old.node;
    } else {
      node = entry.build();
      if (old) {
        if (old.node === cursor) cursor = cursor.nextSibling;
        old.node.remove();
      }
    }
    next.set(entry.key, { deps: entry.deps, node });
    if (node === cursor) cursor = cursor.nextSibling;
    else container.insertBefore(node, cursor);
  }
  // Every entry now stands before `cursor`: whatever follows was not built here.
  while (cursor) {
    const after = cursor.nextSibling;
    cursor.remove();
    cursor = after;
  }
  container.keyedNodes = next;
}

/** Waiting times in the list tick: only their text changes, in place. */
function tickWaits() {
  for (const element of $("conversation-list").querySelectorAll("li[data-state='queued'] .wait-time")) {
    const summary = summaryOf(element.closest("li").dataset.id);
    if (!summary) continue;
    const text = t("waiting_for", { time: duration(Date.now() - waitingSince(summary)) });
    if (element.textContent !== text) element.textContent = text;
  }
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
  for (const summary of state.conversations.values()) {
    if (isMine(summary) && (state.fresh.has(summary.id) || (state.unread.get(summary.id) || 0) > 0)) count += 1;
  }
  count += [...state.offers.values()].filter((offer) => !offer.declined).length;
  const title = count > 0 ? `(${count}) ${t("title")}` : t("title");
  if (document.title !== title) document.title = title;
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

function showView(name) {
  if (!["inbox", "live", "reports", "customers", "admin"].includes(name)) name = "inbox";
  if (name === "admin" && state.role !== "admin") name = "inbox";
  view = name;
  if (location.hash.slice(1) !== name) history.replaceState(null, "", `#${name}`);
  for (const button of $("nav").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.view === name);
  }
  for (const other of ["inbox", "live", "reports", "customers", "admin"]) $(`view-${other}`).hidden = other !== name;
  renderView();
}

/**
 * The view the address names; `#inbox/ID` (an alert's link) opens that conversation,
 * with its summary read first when it is in no list (closed, say).
 */
async function routeHash() {
  const [name, id] = location.hash.slice(1).split("/");
  showView(name || "inbox");
  if (view !== "inbox" || !id) return;
  const conversation = decodeURIComponent(id);
  let summary = summaryOf(conversation);
  if (!summary) {
    try {
      summary = (await get(`/api/conversations/${encodeURIComponent(conversation)}`)).conversation;
    } catch (err) {
      toast(t("error", { message: err.message }));
      return;
    }
  }
  openConversation(conversation, summary);
}

function renderView() {
  const context = { store, live, toast, refreshReference: loadReference };
  if (view === "inbox") {
    renderInbox();
    renderChat();
  } else if (view === "live") renderLive();
  else if (view === "reports") renderReports($("view-reports"), context);
  else if (view === "customers") renderCustomers($("view-customers"), context);
  else if (view === "admin") renderAdmin($("view-admin"), context);
}

function renderAll() {
  onStatus($("conn-status").dataset.i18n || "connecting");
  updateTitle();
  if (view === "inbox") {
    // Every line's words change: build them anew.
    $("conversation-list").keyedNodes = null;
    renderInbox();
    renderChat();
  } else {
    renderView();
  }
}

// ---------------------------------------------------------------- inbox list

function waitingSince(summary) {
  return state.queue.get(summary.id)?.waiting_since || summary.updated_at;
}

function renderInbox() {
  if (!state.me) return;
  updateTitle();
  for (const tab of ["queue", "mine", "open"]) {
    const list = listFor(tab);
    const element = $(`count-${tab}`);
    const count = list.length ? number(list.length) : "";
    if (element.textContent !== count) element.textContent = count;
    element.classList.toggle("has-unread", list.some((c) => (state.unread.get(c.id) || 0) > 0));
  }
  const searching = Boolean(state.search);
  for (const button of $("inbox-tabs").querySelectorAll("button")) {
    button.classList.toggle("active", !searching && button.dataset.tab === state.tab);
  }
  const scope = $("search-scope");
  scope.hidden = !searching;
  scope.textContent = searching ? t("search_everywhere", { n: number((state.listed || []).length) }) : "";
  const items = searching || state.tab === "closed" ? state.listed || [] : listFor(state.tab);
  const list = $("conversation-list");
  if (!items.length) {
    reconcile(list, [{ key: "empty", deps: [lang()], build: () => h("li", { class: "empty", text: t("empty_list") }) }]);
  } else {
    reconcile(list, items.map((summary) => ({
      key: summary.id,
      deps: [summary, state.unread.get(summary.id) || 0, summary.id === state.active, state.queue.get(summary.id),
        visitorName(summary), searching, lang()],
      build: () => listItem(summary, searching),
    })));
  }
  renderChatTabs();
  $("view-inbox").classList.toggle("has-active", Boolean(state.active));
}

function listItem(summary, searching) {
  const unread = state.unread.get(summary.id) || 0;
  const entry = state.queue.get(summary.id);
  const facts = [];
  let waiting = null;
  if (summary.state === "queued") {
    waiting = h("span", { class: "wait-time", text: t("waiting_for", { time: duration(Date.now() - waitingSince(summary)) }) });
    if (entry?.position) facts.push(t("position", { n: number(entry.position) }));
    if (entry?.expected_wait_secs) facts.push(t("expected_wait", { time: duration(entry.expected_wait_secs * 1000) }));
  } else if (summary.agent && !isMine(summary)) {
    facts.push(t("assigned_to", { name: summary.agent.name || "" }));
  }
  if (summary.department) facts.push(t("department", { name: summary.department }));
  const preview = summary.preview;
  const previewAuthor = preview ? previewWho(preview.author) : "";
  return h("li", {
    class: `item state-${summary.state}${summary.id === state.active ? " active" : ""}${unread ? " unread" : ""}`,
    data: { id: summary.id, state: summary.state },
    tabIndex: 0,
    attrs: { "aria-current": summary.id === state.active ? "true" : "false" },
    on: {
      click: () => openConversation(summary.id),
      keydown: (event) => event.key === "Enter" && openConversation(summary.id),
    },
  },
  h("div", { class: "item-top" },
    h("span", { class: "item-name", dir: "auto", text: visitorName(summary) }),
    channelBadge(summary),
    summary.priority ? h("span", { class: "badge priority", text: t("priority", { n: summary.priority }) }) : null,
    unread ? h("span", { class: "badge unread-count", text: number(unread) }) : null),
  h("div", { class: "item-preview" },
    preview
      ? [previewAuthor ? h("span", { class: "preview-author", text: `${previewAuthor}: ` }) : null,
        h("bdi", { class: "preview-text", text: preview.text })]
      : h("span", { class: "muted", text: t("no_messages_yet") })),
  h("div", { class: "item-facts" },
    h("span", { class: `state state-${summary.state}`, text: t(`state_${summary.state}`) }),
    waiting,
    facts.map((fact) => h("span", { text: fact })),
    h("time", { text: clock(summary.updated_at) })));
}

/** Who wrote a preview, as a short label ("" for the visitor: their name is above). */
function previewWho(author) {
  if (author === "agent") return t("preview_agent");
  if (author === "bot") return t("bot");
  return "";
}

let searchTimer = null;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    dispatch({ type: "search", text: $("search").value.trim() });
    await reloadListed();
  }, 250);
}

/**
 * Loads the lists the socket does not keep: closed ones, and search results, which
 * look in every tab at once (every state, closed ones included) on the hub.
 */
async function reloadListed() {
  if (!state.search && state.tab !== "closed") {
    renderInbox();
    return;
  }
  const wanted = state.search ? "all" : "closed";
  const text = state.search;
  try {
    const answer = await get(`/api/conversations${query({ state: wanted, q: text })}`);
    if (state.search === text) dispatch({ type: "listed", conversations: answer.conversations });
  } catch (err) {
    dispatch({ type: "listed", conversations: [] });
    toast(t("error", { message: err.message }));
  }
  renderInbox();
}

function selectTab(tab) {
  if (state.search) {
    $("search").value = "";
    dispatch({ type: "search", text: "" });
  }
  dispatch({ type: "tab", tab });
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
    dispatch({ type: "queue", sites: answer.sites || {} });
  } catch {
    // The next tick tries again.
  }
}

async function refreshAgents() {
  try {
    const answer = await get("/api/agents");
    dispatch({ type: "agents_rest", sites: answer.sites || {} });
  } catch {
    // The next tick tries again.
  }
}

// ---------------------------------------------------------------- offers (accept mode)

/**
 * Chats offered to me when the hub asks agents to accept (`routing.accept_timeout_secs`
 * or the site's own): each with a countdown, Accept, and "Let it pass" (the protocol has
 * no decline: the offer passes to the next agent at its deadline; the console stops
 * asking at once).
 */
function renderOffers() {
  const box = $("offers");
  const offers = [...state.offers.values()].filter((offer) => !offer.declined);
  box.hidden = offers.length === 0;
  reconcile(box, offers.map((offer) => {
    const summary = summaryOf(offer.conversation);
    return {
      key: offer.conversation,
      deps: [offer, summary, summary ? visitorName(summary) : "", lang()],
      build: () => offerCard(offer, summary),
    };
  }));
  tickOffers();
  if (state.offers.size && !offerTimer) offerTimer = setInterval(tickOffers, 250);
  if (!state.offers.size && offerTimer) {
    clearInterval(offerTimer);
    offerTimer = null;
  }
}

function offerCard(offer, summary) {
  const titleId = `offer-title-${offer.conversation}`;
  return h("section", {
    class: "offer",
    data: { id: offer.conversation, deadline: String(offer.deadline) },
    attrs: { role: "alertdialog", "aria-labelledby": titleId },
  },
  h("h3", { id: titleId, text: t("offer_title") }),
  h("p", { class: "offer-who", dir: "auto", text: summary ? visitorName(summary) : "" }),
  summary?.preview ? h("p", { class: "offer-preview" }, h("bdi", { text: summary.preview.text })) : null,
  h("p", { class: "offer-countdown", attrs: { "aria-live": "off" } }),
  h("div", { class: "actions" },
    h("button", {
      class: "primary offer-accept",
      text: t("offer_accept"),
      on: { click: () => accept(offer.conversation) },
    }),
    h("button", {
      class: "offer-decline",
      text: t("offer_decline"),
      on: { click: () => dispatch({ type: "decline", id: offer.conversation }) },
    })));
}

let offerTimer = null;
function tickOffers() {
  const now = Date.now();
  for (const offer of state.offers.values()) {
    if (now > offer.deadline + 1000) {
      dispatch({ type: "offer_expired", id: offer.conversation });
      continue;
    }
    const card = $("offers").querySelector(`.offer[data-id="${CSS.escape(offer.conversation)}"] .offer-countdown`);
    if (card) {
      const seconds = Math.max(0, Math.ceil((offer.deadline - now) / 1000));
      const text = plural("offer_countdown", seconds);
      if (card.textContent !== text) card.textContent = text;
    }
  }
}

function accept(id) {
  live?.raw({ type: "accept", conversation: id });
  openConversation(id);
}

// ---------------------------------------------------------------- several chats at once

/** The chat strip: my chats, then the ones opened by hand. */
function stripIds() {
  const ids = listFor("mine").map((c) => c.id);
  for (const id of state.pinned) if (!ids.includes(id) && summaryOf(id)) ids.push(id);
  return ids;
}

function renderChatTabs() {
  const ids = stripIds();
  reconcile($("chat-tabs"), ids.map((id, index) => {
    const summary = summaryOf(id);
    const unread = state.unread.get(id) || 0;
    return {
      key: id,
      deps: [summary, unread, id === state.active, state.fresh.has(id), index, visitorName(summary), lang()],
      build: () => h("button", {
        class: `chat-tab${id === state.active ? " active" : ""}${state.fresh.has(id) ? " fresh" : ""}`,
        data: { id },
        title: `Alt+${index + 1}`,
        on: { click: () => openConversation(id) },
      },
      h("span", { dir: "auto", text: visitorName(summary) }),
      unread ? h("b", { class: "badge unread-count", text: number(unread) }) : null,
      summary.state === "closed" ? h("span", {
        class: "unpin",
        text: "×",
        attrs: { role: "button", "aria-label": t("close_tab") },
        on: { click: (event) => { event.stopPropagation(); unpin(id); } },
      }) : null),
    };
  }));
}

function unpin(id) {
  const watched = summaryOf(id);
  const wasLoaded = state.loaded.includes(id);
  dispatch({ type: "close_window", id });
  if (wasLoaded && !(watched && isMine(watched))) live?.unwatch(id);
  renderChatTabs();
}

/** Messages loaded per window, and per "earlier" page. */
const WINDOW = 100;

function onShortcut(event) {
  if (!event.altKey || view !== "inbox") return;
  const ids = stripIds();
  if (!ids.length) return;
  let index = ids.indexOf(state.active);
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

async function openConversation(id, summary) {
  saveDraft();
  dispatch({ type: "open", id, summary });
  await Promise.all([loadHistory(id), loadDetails(id)]);
  if (state.active === id) markSeen();
}

/** Loads the last messages of a conversation and watches it (its stream comes live). */
async function loadHistory(id) {
  if (state.loaded.includes(id)) {
    dispatch({ type: "touch", id });
    return;
  }
  try {
    const answer = await get(`/api/conversations/${encodeURIComponent(id)}/messages${query({ before: Number.MAX_SAFE_INTEGER, limit: WINDOW })}`);
    const loadedBefore = new Set(state.loaded);
    dispatch({
      type: "history",
      id,
      conversation: answer.conversation,
      messages: answer.messages,
      older: answer.messages.length === WINDOW && answer.messages[0].seq > 1,
    });
    // Windows dropped beyond the cap stop being watched (unless they are ours).
    for (const old of loadedBefore) {
      const kept = summaryOf(old);
      if (!state.loaded.includes(old) && !(kept && isMine(kept))) live?.unwatch(old);
    }
    // Watch it, closing the gap between the REST answer and live delivery.
    live?.raw({ type: "resume", conversation: id, after: lastSeq(id) });
  } catch (err) {
    toast(t("error", { message: err.message }));
  }
}

/** Loads the page of messages before the window's first. */
async function loadEarlier(id) {
  const messages = messagesOf(state, id);
  if (!messages.length) return;
  try {
    const answer = await get(`/api/conversations/${encodeURIComponent(id)}/messages${query({ before: messages[0].seq, limit: WINDOW })}`);
    dispatch({
      type: "history",
      id,
      messages: answer.messages,
      older: answer.messages.length === WINDOW && answer.messages[0].seq > 1,
    });
  } catch (err) {
    toast(t("error", { message: err.message }));
  }
}

const detailsTimers = new Map();
function loadDetails(id) {
  clearTimeout(detailsTimers.get(id));
  return new Promise((resolve) => {
    detailsTimers.set(id, setTimeout(async () => {
      detailsTimers.delete(id);
      try {
        const answer = await get(`/api/conversations/${encodeURIComponent(id)}`);
        dispatch({ type: "details", id, answer });
      } catch {
        // Details are a convenience; the conversation still works without them.
      }
      resolve();
    }, 30));
  });
}

function renderChat() {
  const chat = $("chat");
  const id = state.active;
  $("view-inbox").classList.toggle("has-active", Boolean(id));
  if (!id || !summaryOf(id)) {
    fill(chat, h("div", { class: "placeholder", id: "chat-placeholder" },
      h("h2", { text: t("no_selection_title") }),
      h("p", { text: t("no_selection") }),
      h("p", { class: "muted", text: t("no_selection_hint") })));
    fill($("details"), h("p", { class: "muted", text: t("details_placeholder") }));
    return;
  }
  const noteMode = drafts.get(`${id}:mode`) === "note";
  const composer = h("textarea", {
    id: "composer",
    rows: 3,
    placeholder: t(noteMode ? "note_placeholder" : "reply_placeholder"),
    value: drafts.get(id) || "",
    attrs: { "aria-label": t(noteMode ? "note" : "reply") },
    on: { keydown: onComposerKey, input: onComposerInput, blur: () => stopTyping() },
  });
  composerDirection(composer);
  fill(chat,
    h("div", { id: "chat-header", class: "chat-header" }),
    h("div", { id: "transfer-panel", class: "transfer-panel", hidden: true }),
    h("div", { id: "messages", class: "messages", tabIndex: 0, attrs: { role: "log", "aria-live": "polite", "aria-label": t("messages_label") } }),
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

/**
 * The composer's direction: the UI's while it is empty (so an Arabic or Persian
 * placeholder, which mixes in Latin key names, reads right to left), then the text's
 * own (`auto`) once something is typed.
 */
function composerDirection(composer) {
  const wanted = composer.value ? "auto" : document.documentElement.dir || "ltr";
  if (composer.dir !== wanted) composer.dir = wanted;
}

function setMode(mode) {
  saveDraft();
  drafts.set(`${state.active}:mode`, mode);
  renderChat();
}

function saveDraft() {
  const composer = $("composer");
  if (composer && state.active) drafts.set(state.active, composer.value);
}

function renderChatHeader() {
  const header = $("chat-header");
  const summary = summaryOf(state.active);
  if (!header || !summary) return;
  const actions = [];
  if (summary.state === "queued" || summary.state === "bot") {
    actions.push(h("button", { id: "take-button", class: "primary", text: t("take"), on: { click: () => take(summary.id) } }));
  }
  // Issue 19: the customer's whole history (timeline.js).
  actions.push(timelineButton(summary, openConversation));
  if (summary.state !== "closed") {
    actions.push(h("button", { id: "transfer-button", text: t("transfer"), on: { click: toggleTransfer } }));
    actions.push(h("button", { id: "close-button", class: "danger", text: t("close"), on: { click: () => live?.raw({ type: "close", conversation: summary.id }) } }));
  }
  fill(header,
    h("button", { id: "back-to-list", class: "link back", text: t("back_to_list"), on: { click: () => dispatch({ type: "deselect" }) } }),
    h("div", { class: "chat-title" },
      h("h2", { id: "chat-visitor-name", dir: "auto", text: visitorName(summary) }),
      h("span", { id: "chat-state", class: `state state-${summary.state}`, data: { state: summary.state }, text: t(`state_${summary.state}`) }),
      channelBadge(summary),
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
  const summary = summaryOf(state.active);
  // Only the conversation's site: the hub refuses an agent or a department it lacks.
  const ofSite = state.siteAgents.get(summary.site);
  const agents = [...state.agents.values()]
    .filter((agent) => agent.id !== state.me.id && (!ofSite || ofSite.includes(agent.id)));
  const choices = transferDepartments(state, departments, summary);
  const agentSelect = h("select", { id: "transfer-agent", attrs: { "aria-label": t("transfer_to_agent") } },
    h("option", { value: "", text: t("choose") }),
    agents.map((agent) => h("option", {
      value: agent.id,
      text: `${agent.name} · ${t(agent.presence)} · ${agent.load}/${agent.capacity}`,
    })));
  const departmentSelect = h("select", { id: "transfer-department", attrs: { "aria-label": t("transfer_to_department") } },
    h("option", { value: "", text: t("choose") }),
    choices.map(({ name, ofSite, served }) => h("option", {
      value: name,
      text: !ofSite ? t("department_not_of_site", { name }) : served ? name : t("department_unserved", { name }),
      disabled: !ofSite || !served,
    })));
  const note = h("textarea", { id: "transfer-note", dir: "auto", rows: 2, attrs: { "aria-label": t("transfer_note") } });
  fill(panel,
    h("label", {}, h("span", { text: t("transfer_to_agent") }), agentSelect),
    h("label", {}, h("span", { text: t("transfer_to_department") }), departmentSelect,
      choices.length ? null : h("small", { class: "muted", id: "transfer-no-departments", text: t("no_departments_site") })),
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

/**
 * The active conversation's lines. Only what changed is touched: a new message adds
 * its line, a line whose message object is the same keeps its node.
 */
function renderMessages() {
  const container = $("messages");
  if (!container) return;
  const id = state.active;
  if (container.dataset.conversation !== id) container.keyedNodes = null;
  const stickToBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 80;
  const seenUpTo = state.visitorSeen.get(id) || 0;
  const summary = summaryOf(id);
  const visitorShown = summary ? visitorName(summary) : "";
  const entries = [];
  if (state.older.get(id)) {
    entries.push({
      key: "earlier",
      deps: [lang()],
      build: () => h("button", { id: "load-earlier", class: "link earlier", text: t("earlier"), on: { click: () => loadEarlier(id) } }),
    });
  }
  for (const message of messagesOf(state, id)) {
    const mine = message.author.kind === "agent" && message.author.id === state.me.id;
    const seen = mine && message.kind !== "note" && message.seq <= seenUpTo;
    entries.push({
      key: `m${message.seq}`,
      deps: [message, seen, lang(), message.author.kind === "visitor" ? visitorShown : null],
      build: () => messageNode(message, seen),
    });
  }
  for (const [clientId, pending] of state.outbox) {
    if (pending.conversation !== id) continue;
    entries.push({
      key: `p${clientId}`,
      deps: [pending, lang()],
      build: () => h("div", { class: `msg author-agent mine pending${pending.note ? " kind-note" : ""}`, data: { clientId } },
        h("div", { class: "meta" }, h("span", { class: "author", text: state.me.name })),
        h("div", { class: "text", dir: "auto", text: pending.text }),
        h("div", {
          class: pending.error ? "status error" : "status",
          attrs: pending.error ? { role: "alert" } : {},
          text: pending.error ? t("failed", { reason: sendProblem(pending) }) : t("sending"),
        })),
    });
  }
  reconcile(container, entries);
  if (stickToBottom || container.dataset.conversation !== id) container.scrollTop = container.scrollHeight;
  container.dataset.conversation = id;
}

/** Why a line was not sent, in the agent's words. */
function sendProblem(pending) {
  if (pending.gaveUp) return t("send_gave_up");
  return errorText({ code: pending.error, message: pending.reason });
}

function messageNode(message, seen) {
  const kind = message.author.kind;
  const mine = kind === "agent" && message.author.id === state.me.id;
  const classes = ["msg", `author-${kind}`, `kind-${message.kind || "text"}`];
  if (mine) classes.push("mine");
  if (message.kind === "event") {
    return h("div", { class: classes.join(" "), data: { seq: message.seq, event: message.event?.code || "" } },
      h("span", { class: "text", dir: "auto", text: eventText(message) }),
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
  if (seen) node.appendChild(h("div", { class: "status seen", text: `✓✓ ${t("seen")}` }));
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
  const since = state.typing.get(state.active) || 0;
  const summary = summaryOf(state.active);
  element.textContent = since && Date.now() - since < 6000 && summary
    ? t("is_typing", { name: visitorName(summary) })
    : "";
}

function markSeen() {
  if (document.hidden || !state.active) return;
  const id = state.active;
  const seq = lastSeq(id);
  if (seq > (state.seenSent.get(id) || 0) && live?.raw({ type: "seen", conversation: id, seq })) {
    dispatch({ type: "seen_sent", id, seq });
  }
  dispatch({ type: "read", id });
}

// ---------------------------------------------------------------- composer

let typingSentAt = 0;
let typingTimer = null;

function onComposerInput() {
  const composer = $("composer");
  composerDirection(composer);
  renderCanned(composer.value);
  const noteMode = drafts.get(`${state.active}:mode`) === "note";
  if (noteMode || !composer.value.trim()) return;
  if (Date.now() - typingSentAt > 3000) {
    live?.raw({ type: "typing", conversation: state.active, typing: true });
    typingSentAt = Date.now();
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 4000);
}

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSentAt && state.active) {
    live?.raw({ type: "typing", conversation: state.active, typing: false });
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
  const site = summaryOf(state.active)?.site;
  const needle = value.slice(1).toLowerCase();
  return canned.filter((item) => item.site_id === site
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
  const item = canned.find((candidate) => String(candidate.id) === id);
  const composer = $("composer");
  if (!item || !composer) return;
  composer.value = item.text;
  composerDirection(composer);
  $("canned-menu").hidden = true;
  composer.focus();
}

function sendComposer() {
  const composer = $("composer");
  const text = composer.value.trim();
  const id = state.active;
  if (!text || !id || !live) return;
  const note = drafts.get(`${id}:mode`) === "note";
  stopTyping();
  composer.value = "";
  composerDirection(composer);
  drafts.set(id, "");
  $("canned-menu").hidden = true;
  const clientId = live.send(id, text, note);
  dispatch({ type: "send", client_id: clientId, conversation: id, text, note });
}

// ---------------------------------------------------------------- visitor details

function renderDetails() {
  const pane = $("details");
  const id = state.active;
  const answer = state.details.get(id);
  if (!id || !answer) {
    fill(pane);
    return;
  }
  const visitor = answer.visitor || {};
  const contact = answer.contact || null;
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
      vouched("name", "name", visitor.name || contact?.name, "visitor-name"),
      vouched("email", "email", visitor.email || contact?.email, "visitor-email"),
      row("phone", visitor.phone || contact?.phone, { class: "visitor-phone" }),
      row("identified", answer.identified ? `${t("yes")} (${visitor.external_id})` : t("no")),
      attributes.length ? h("div", { class: "detail" },
        h("dt", { text: t("signed_attributes") }),
        h("dd", {}, h("dl", { class: "attributes", id: "visitor-attributes" }, attributes.map(([key, value]) => h("div", { class: "attribute" },
          h("dt", { dir: "auto", text: key }),
          h("dd", { dir: "auto", text: value === null ? t("none") : String(value) })))))) : null,
      h("div", { class: "detail" }, h("dt", { text: t("page") }), h("dd", { dir: "auto" }, page || t("none"))),
      row("referrer", visitor.referrer),
      row("browser", visitor.user_agent),
      row("language", visitor.locale ? `${languageName(visitor.locale)} (${visitor.locale})` : null),
      answer.rating ? row("rating", `${"★".repeat(answer.rating.score)}${"☆".repeat(5 - answer.rating.score)} ${answer.rating.comment || ""}`) : null),
    contactSection(contact),
    customerCard(id),
    h("h4", { text: t("past") }),
    answer.past_conversations?.length
      ? h("ul", { class: "past" }, answer.past_conversations.map((past) => h("li", {},
        h("button", {
          class: "link",
          text: `${clock(past.created_at)} · ${t(`state_${past.state}`)}`,
          on: { click: () => openConversation(past.id, past) },
        }))))
      : h("p", { class: "muted", text: t("none") }));
}

/** What the visitor left in the contact form of this conversation, if anything. */
function contactSection(contact) {
  if (!contact || !(contact.name || contact.email || contact.phone || contact.message)) return null;
  const line = (label, value, className) => (value
    ? h("div", { class: "detail" }, h("dt", { text: t(label) }), h("dd", { class: className, dir: "auto", text: value }))
    : null);
  return h("section", { class: "contact-left", id: "contact-left" },
    h("h4", { text: t("contact_left") }),
    h("dl", {},
      line("name", contact.name, "contact-name"),
      line("email", contact.email, "contact-email"),
      line("phone", contact.phone, "contact-phone"),
      line("contact_message", contact.message, "contact-message"),
      contact.at ? line("contact_at", clock(contact.at), "contact-at") : null));
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
  const root = $("view-live");
  const agents = [...state.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
  const queued = [...state.queue.values()];
  const longest = queued.reduce((max, entry) => Math.max(max, Date.now() - entry.waiting_since), 0);
  const queueLength = Math.max(queued.length, listFor("queue").length);
  fill(root,
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
    if (!document.hidden && view === "inbox") markSeen();
  });
  window.addEventListener("hashchange", () => state.me && routeHash());
  setupNotifications();
  // Wait times tick; the queue and agents are re-read in case a frame was missed.
  setInterval(() => {
    if (!state.me) return;
    if (view === "inbox") tickWaits();
    if (view === "live") renderLive();
  }, 15_000);
  setInterval(() => {
    if (!state.me) return;
    refreshQueue();
    if (view === "live") refreshAgents();
  }, 10_000);
}

// Uncaught errors are kept for the browser tests (and anyone with devtools open).
window.salamErrors = [];
window.addEventListener("error", (event) => window.salamErrors.push(String(event.message)));
window.addEventListener("unhandledrejection", (event) => window.salamErrors.push(String(event.reason)));

wire();
start();
