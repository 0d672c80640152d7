// app.js — the chat page's UI over imclient.js (docs/web.md). Conversations are keyed
// "u:<peer>" (one-to-one) or "g:<groupId>" (a group), kept in memory and, without their
// messages, in localStorage; messages come from the history route, the replay and live
// delivery, merged by msgId.
import { IMClient, MsgType, compareIds } from "./imclient.js";

const $ = id => document.getElementById(id);
const store = window.localStorage;
const SESSION = "imgate.v1.session";
const key = (me, what) => "imgate.v1." + me + "." + what;

let client = null;   // the IMClient of the signed-in user
let me = "";
let convs = new Map(); // key → conversation
let openKey = "";
let seqLocal = 0;      // orders pending messages
let tick = null;       // status countdown
let presenceTimer = null;
let receiptTimer = null;

// ---------------------------------------------------------------- sign-in

function showSignin(error, userId) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signinError").textContent = error || "";
  if (userId !== undefined) $("userId").value = userId;
  $("signinBtn").disabled = false;
  ($("userId").value ? $("token") : $("userId")).focus();
}

// jwtSubject returns the sub claim of a JWT, "" when it cannot be read.
function jwtSubject(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(p + "===".slice((p.length + 3) % 4))).sub || "";
  } catch { return ""; }
}

async function signIn(e) {
  e.preventDefault();
  let userId = $("userId").value.trim();
  let token = $("token").value.trim();
  $("signinError").textContent = "";
  if (token) {
    const sub = jwtSubject(token);
    if (!sub) return showSignin("That token cannot be read: paste the whole token.");
    if (userId && userId !== sub) return showSignin(`That token is for "${sub}", not "${userId}".`);
    userId = sub;
  }
  if (!userId) return showSignin("Enter your user id.");
  $("signinBtn").disabled = true;
  if (!token) {
    // A server started with --dev-login issues a token; 404 means it does not (auth may be off).
    try {
      const r = await fetch("api/v1/dev/login", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ userId }),
      });
      const body = await r.json().catch(() => null);
      if (r.ok && body && body.data) token = body.data.token;
      else if (r.status !== 404) return showSignin("Sign-in refused: " + ((body && body.msg) || "HTTP " + r.status));
    } catch (err) {
      return showSignin("The server cannot be reached: " + err.message);
    }
  }
  store.setItem(SESSION, JSON.stringify({ userId, token }));
  $("token").value = "";
  start(userId, token);
}

function signOut() {
  stop();
  store.removeItem(SESSION);
  showSignin("", me);
}

// ---------------------------------------------------------------- session

async function start(userId, token) {
  stop();
  me = userId;
  $("me").textContent = me;
  $("signin").hidden = true;
  $("app").hidden = false;
  convs = new Map();
  loadConvs();
  client = new IMClient({ userId, token, storage: store });
  client.addEventListener("state", e => onState(e.detail));
  client.addEventListener("message", e => onMessage(e.detail.msg));
  client.addEventListener("sent", e => onSent(e.detail));
  client.addEventListener("failed", e => onFailed(e.detail));
  client.addEventListener("receipt", e => onReceipt(e.detail.msg));
  client.addEventListener("ready", () => scheduleReceipts());
  client.addEventListener("auth", e => {
    const who = me;
    stop();
    store.removeItem(SESSION);
    showSignin("The server refused the sign-in (" + e.detail.code + ": " + (e.detail.reason || "token missing, invalid or expired") +
      "). Paste a valid token for " + who + ".", who);
  });
  // Messages a previous page left unacknowledged show again; the client resends them.
  for (const o of client.pending()) {
    const it = addMessage(o.chatMsg, { counted: false });
    if (it && o.status === "failed" && o.error) onFailed(Object.assign({ clientMsgId: o.clientMsgId }, o.error));
  }
  renderConvs();
  const last = store.getItem(key(me, "open"));
  if (last && convs.has(last)) openConv(last, false);
  else renderChat();
  if (client.cursor === null) await bootstrap(client);
  if (client) client.connect();
}

function stop() {
  if (client) client.disconnect();
  client = null;
  clearInterval(tick);
  clearInterval(presenceTimer);
  clearTimeout(receiptTimer);
  openKey = "";
  $("msgs").replaceChildren();
  rendered.clear();
}

// bootstrap builds the conversation list of a device that has no cursor from the newest
// history page and starts its cursor there: the replay then brings only what is newer.
async function bootstrap(c) {
  try {
    const page = await c.history("", { limit: 200 });
    let top = 0;
    for (const m of page.messages.slice().reverse()) {
      addMessage(m, { counted: false });
      top = Math.max(top, m.seq || 0);
    }
    for (const conv of convs.values()) conv.readUpTo = newestPeerId(conv) || conv.readUpTo;
    if (c === client) c.setCursor(top);
    saveConvs();
    renderConvs();
    if (openKey) renderChat();
  } catch (err) {
    console.info("imgate: no history to start from:", err.message);
  }
}

// ---------------------------------------------------------------- conversations

function convKeyOf(m) {
  if (m.groupId) return "g:" + m.groupId;
  return "u:" + (m.senderId === me ? m.receiverId : m.senderId);
}

function getConv(k) {
  let c = convs.get(k);
  if (!c) {
    c = {
      key: k, kind: k[0] === "g" ? "group" : "user", id: k.slice(2), unread: 0, last: null,
      readUpTo: "", peerDelivered: "", peerRead: "", deliveredSent: "",
      items: new Map(), byId: new Map(), byCid: new Map(), loaded: false, nextBeforeSeq: null,
    };
    convs.set(k, c);
  }
  return c;
}

function loadConvs() {
  let list = [];
  try { list = JSON.parse(store.getItem(key(me, "convs")) || "[]"); } catch { list = []; }
  for (const s of list) Object.assign(getConv(s.key), s);
}

let saveTimer = null;
function saveConvs() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    const list = [...convs.values()].map(c => ({
      key: c.key, unread: c.unread, last: c.last, readUpTo: c.readUpTo,
      peerDelivered: c.peerDelivered, peerRead: c.peerRead, deliveredSent: c.deliveredSent,
    }));
    if (me) store.setItem(key(me, "convs"), JSON.stringify(list));
  }, 100);
}

function maxId(a, b) { return !a ? b : !b ? a : compareIds(a, b) >= 0 ? a : b; }

function newestPeerId(conv) {
  let top = "";
  for (const it of conv.items.values()) if (!it.mine && it.msgId) top = maxId(top, it.msgId);
  return top;
}

// addMessage merges a stored or delivered message into its conversation; it returns the
// item, or null for a duplicate.
function addMessage(m, opts) {
  const conv = getConv(convKeyOf(m));
  if (m.msgId && conv.byId.has(m.msgId)) {
    const it = conv.byId.get(m.msgId);
    if (m.seq && !it.seq) it.seq = m.seq;
    return null;
  }
  let it = m.senderId === me && m.clientMsgId && conv.byCid.get(m.clientMsgId);
  if (it) { // our own pending message came back before its ACK
    Object.assign(it, { msgId: m.msgId, chatTime: m.chatTime, seq: m.seq, status: "sent" });
  } else {
    it = {
      key: m.msgId ? "m" + m.msgId : "c" + m.clientMsgId, msgId: m.msgId || "", clientMsgId: m.clientMsgId || "",
      senderId: m.senderId, msgType: m.msgType, text: m.msg || "", chatTime: m.chatTime || "",
      seq: m.seq || 0, mine: m.senderId === me, status: m.msgId ? "sent" : "sending", error: "", local: seqLocal++,
    };
    conv.items.set(it.key, it);
    if (it.clientMsgId && it.mine) conv.byCid.set(it.clientMsgId, it);
  }
  if (it.msgId) conv.byId.set(it.msgId, it);
  if (it.chatTime && (!conv.last || conv.last.time <= it.chatTime)) {
    conv.last = { text: preview(it), time: it.chatTime, mine: it.mine, from: it.senderId };
  }
  if (opts.counted && !it.mine && !(conv.key === openKey && looking())) conv.unread++;
  return it;
}

function preview(it) {
  switch (it.msgType) {
    case MsgType.IMAGE: return "[image]";
    case MsgType.VOICE: return "[voice]";
    case MsgType.VIDEO: return "[video]";
  }
  return it.text.length > 80 ? it.text.slice(0, 80) + "…" : it.text;
}

function looking() { return document.visibilityState === "visible" && !$("app").hidden; }

function onMessage(m) {
  const it = addMessage(m, { counted: true });
  if (!it) return;
  const conv = getConv(convKeyOf(m));
  if (conv.key === openKey && !it.mine) refreshPresence();
  saveConvs();
  renderConvs();
  if (conv.key === openKey) renderChat(true);
  scheduleReceipts();
}

function onSent(d) {
  for (const conv of convs.values()) {
    const it = conv.byCid.get(d.clientMsgId);
    if (!it) continue;
    if (conv.byId.has(d.msgId) && conv.byId.get(d.msgId) !== it) { // already there: drop the copy
      conv.items.delete(it.key);
    } else {
      Object.assign(it, { msgId: d.msgId, chatTime: d.chatTime, status: "sent", error: "" });
      conv.byId.set(d.msgId, it);
      if (!conv.last || conv.last.time <= d.chatTime) conv.last = { text: preview(it), time: d.chatTime, mine: true, from: me };
    }
    conv.byCid.delete(d.clientMsgId);
    saveConvs();
    renderConvs();
    if (conv.key === openKey) renderChat();
    return;
  }
}

function onFailed(d) {
  for (const conv of convs.values()) {
    const it = conv.byCid.get(d.clientMsgId);
    if (!it) continue;
    it.status = "failed";
    it.error = d.code === "forbidden" && conv.kind === "group" ? "you are not a member of " + conv.id + "." :
      d.code === "too_large" ? "Too large for the server." :
      d.code === "rate_limited" ? "Sent too fast: try again in a moment." :
        d.code === "unavailable" ? "The server could not take it now." : (d.message || d.code);
    it.errorCode = d.code;
    if (conv.key === openKey) renderChat();
    return;
  }
}

// onReceipt applies a SIGNED receipt. Receipts are cumulative: "read" of msgId X from the
// peer means every message of ours in that conversation up to X was read (docs/protocol.md).
function onReceipt(r) {
  const kind = r.msg === "delivered" ? "delivered" : "read";
  if (r.senderId === me) { // our other device: it read the conversation with receiverId
    const conv = convs.get("u:" + r.receiverId);
    if (!conv || kind !== "read") return;
    conv.readUpTo = maxId(conv.readUpTo, r.msgId);
    let n = 0;
    for (const it of conv.items.values()) if (!it.mine && it.msgId && compareIds(it.msgId, conv.readUpTo) > 0) n++;
    conv.unread = Math.min(conv.unread, n);
  } else {
    const conv = convs.get("u:" + r.senderId);
    if (!conv || r.receiverId !== me) return;
    const it = conv.byId.get(r.msgId);
    if (it && !it.mine) return; // a receipt for a message we did not send: ignored
    if (!it && inGroup(r.msgId)) return; // another client's receipt for a group message
    if (conv.key === openKey) refreshPresence(); // a receipt is live: the peer is connected now
    if (kind === "read") conv.peerRead = maxId(conv.peerRead, r.msgId);
    conv.peerDelivered = maxId(conv.peerDelivered, r.msgId);
    if (conv.key === openKey) renderChat();
  }
  saveConvs();
  renderConvs();
}

// scheduleReceipts sends, once things settle, one receipt per conversation: "read" for the
// open conversation while the page is looked at, "delivered" for the others.
function scheduleReceipts() {
  clearTimeout(receiptTimer);
  receiptTimer = setTimeout(sendReceipts, 250);
}

// inGroup reports whether msgId is a message of a group conversation.
function inGroup(msgId) {
  for (const conv of convs.values()) if (conv.kind === "group" && conv.byId.has(msgId)) return true;
  return false;
}

function sendReceipts() {
  if (!client || client.state !== "online") return;
  for (const conv of convs.values()) {
    if (conv.kind !== "user") { // no receipts in groups: the page only clears the count
      if (conv.key === openKey && looking()) conv.unread = 0;
      continue;
    }
    const top = newestPeerId(conv);
    if (!top) continue;
    const it = conv.byId.get(top);
    if (conv.key === openKey && looking()) {
      if (!conv.readUpTo || compareIds(top, conv.readUpTo) > 0) {
        if (client.sign(it, "read")) conv.readUpTo = conv.deliveredSent = top;
      }
      conv.unread = 0;
    } else if (!conv.deliveredSent || compareIds(top, conv.deliveredSent) > 0) {
      if (!conv.readUpTo || compareIds(top, conv.readUpTo) > 0) {
        if (client.sign(it, "delivered")) conv.deliveredSent = top;
      }
    }
  }
  saveConvs();
  renderConvs();
}

async function openConv(k, focus) {
  openKey = k;
  store.setItem(key(me, "open"), k);
  const conv = getConv(k);
  conv.unread = 0;
  $("app").classList.add("in-chat");
  $("chatTitle").textContent = conv.id;
  $("chatKind").hidden = conv.kind !== "group";
  $("text").disabled = $("send").disabled = false;
  $("msgs").replaceChildren();
  rendered.clear();
  renderConvs();
  renderChat(true);
  if (focus) $("text").focus();
  $("presence").textContent = "";
  pollPresence();
  if (!conv.loaded) await loadHistory(conv, null);
  scheduleReceipts();
}

async function loadHistory(conv, beforeSeq) {
  const c = client;
  const note = $("histNote");
  try {
    const opts = { beforeSeq, limit: 50 };
    const page = await (conv.kind === "group" ? c.groupHistory(conv.id, opts) : c.history(conv.id, opts));
    if (c !== client) return;
    for (const m of page.messages) addMessage(m, { counted: false });
    conv.loaded = true;
    conv.nextBeforeSeq = page.hasMore ? page.nextBeforeSeq : null;
    note.hidden = true;
  } catch (err) {
    if (c !== client) return;
    conv.loaded = true;
    note.hidden = false;
    note.textContent = "Earlier messages are not available (" + err.message + ").";
  }
  if (conv.key === openKey) renderChat(!beforeSeq);
  renderConvs();
}

function closeConv() {
  openKey = "";
  store.removeItem(key(me, "open"));
  $("app").classList.remove("in-chat");
  clearInterval(presenceTimer);
  renderConvs();
  $("newPeer").focus();
}

// refreshPresence asks again soon, once for a burst of messages or receipts.
let presenceSoon = null;
function refreshPresence() {
  clearTimeout(presenceSoon);
  presenceSoon = setTimeout(pollPresence, 500);
}

async function pollPresence() {
  clearInterval(presenceTimer);
  const el = $("presence");
  const conv = convs.get(openKey);
  if (!conv || conv.kind !== "user" || !client || client.state !== "online") return;
  const c = client;
  const once = async () => {
    try {
      const p = await c.presence(conv.id);
      if (c !== client || openKey !== conv.key) return;
      el.textContent = p.online ? "online" : "offline";
      el.className = "presence" + (p.online ? " on" : "");
    } catch (err) {
      // With auth on, a user's token reads only that user's presence (docs/protocol.md §5).
      el.textContent = "";
      if (err.status === 401 || err.status === 403 || err.status === 404) clearInterval(presenceTimer);
    }
  };
  presenceTimer = setInterval(once, 15000);
  once();
}

// ---------------------------------------------------------------- rendering

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const shortDateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

function dayLabel(d) {
  const today = new Date();
  const y = new Date(today); y.setDate(today.getDate() - 1);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === y.toDateString()) return "Yesterday";
  return dateFmt.format(d);
}

function listTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : shortDateFmt.format(d);
}

function sortedConvs() {
  return [...convs.values()].sort((a, b) => ((b.last && b.last.time) || "").localeCompare((a.last && a.last.time) || "") || a.key.localeCompare(b.key));
}

// convItems maps a conversation key to its list item, reused across renders so that
// focus and screen-reader position survive a new message.
const convItems = new Map();

function renderConvs() {
  const ul = $("convList");
  const list = sortedConvs();
  $("convEmpty").hidden = list.length > 0;
  const keep = new Set(list.map(c => c.key));
  for (const [k, li] of convItems) if (!keep.has(k)) { li.remove(); convItems.delete(k); }
  let at = ul.firstChild;
  for (const c of list) {
    let li = convItems.get(c.key);
    if (!li) {
      li = el("li");
      const b = el("button");
      b.type = "button";
      b.dataset.conv = c.key;
      b.onclick = () => openConv(c.key, true);
      li.append(b);
      convItems.set(c.key, li);
    }
    fillConv(li.firstChild, c);
    if (li === at) at = at.nextSibling;
    else ul.insertBefore(li, at);
  }
  const total = [...convs.values()].reduce((n, c) => n + c.unread, 0);
  document.title = (total ? "(" + total + ") " : "") + "imgate chat";
}

function fillConv(b, c) {
  const group = c.kind === "group";
  const who = !c.last ? "" : c.last.mine ? "You: " : group && c.last.from ? c.last.from + ": " : "";
  const lastText = c.last ? who + c.last.text : "";
  const sig = [c.key === openKey, c.unread, lastText, c.last && c.last.time].join("|");
  if (b.dataset.sig === sig) return;
  b.dataset.sig = sig;
  if (c.key === openKey) b.setAttribute("aria-current", "true");
  else b.removeAttribute("aria-current");
  const title = el("span", "conv-title");
  if (group) title.append(el("span", "tag", "Group"));
  title.append(el("span", "conv-name", c.id));
  const parts = [title, el("span", "conv-time", listTime(c.last && c.last.time)), el("span", "conv-last", lastText)];
  let label = (group ? "Group " : "") + c.id;
  if (c.unread > 0) {
    const badge = el("span", "badge", String(c.unread));
    badge.setAttribute("aria-hidden", "true");
    parts.push(badge);
    label += ", " + c.unread + " unread";
  }
  b.setAttribute("aria-label", label + (lastText ? ". " + lastText : ""));
  b.replaceChildren(...parts);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function statusOf(conv, it) {
  if (!it.mine || it.status !== "sent") return it.status;
  if (conv.peerRead && compareIds(it.msgId, conv.peerRead) <= 0) return "read";
  if (conv.peerDelivered && compareIds(it.msgId, conv.peerDelivered) <= 0) return "delivered";
  return "sent";
}

const STATUS = {
  sending: "Sending…", sent: "✓ Sent", delivered: "✓✓ Delivered", read: "✓✓ Read", failed: "Not sent",
};

function orderItems(conv) {
  return [...conv.items.values()].sort((a, b) => {
    if (!a.chatTime || !b.chatTime) return (!a.chatTime) - (!b.chatTime) || a.local - b.local;
    return a.chatTime.localeCompare(b.chatTime) || compareIds(a.msgId, b.msgId);
  });
}

// rendered maps an item key (or a day key) to its element and the state it shows, so that a
// render touches only what changed and the role=log list announces only new messages.
const rendered = new Map();

function renderChat(scroll) {
  const ol = $("msgs");
  const conv = convs.get(openKey);
  $("older").hidden = !conv || !conv.nextBeforeSeq;
  if (!conv) {
    $("chatTitle").textContent = "Pick a conversation";
    $("chatKind").hidden = true;
    $("text").disabled = $("send").disabled = true;
    return;
  }
  const log = $("log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const want = [];
  let day = "";
  for (const it of orderItems(conv)) {
    const d = it.chatTime ? new Date(it.chatTime) : new Date();
    const dk = "d" + d.toDateString();
    if (dk !== day) { want.push(dayNode(dk, d)); day = dk; }
    want.push(msgNode(conv, it));
  }
  const keep = new Set(want);
  for (const [k, r] of rendered) if (!keep.has(r.node)) { r.node.remove(); rendered.delete(k); }
  let at = ol.firstChild;
  for (const n of want) {
    if (n === at) { at = at.nextSibling; continue; }
    ol.insertBefore(n, at);
  }
  if (scroll || atBottom) log.scrollTop = log.scrollHeight;
}

function dayNode(dk, d) {
  let r = rendered.get(dk);
  if (!r) {
    const li = el("li", "day", dayLabel(d));
    li.setAttribute("role", "separator");
    r = { node: li };
    rendered.set(dk, r);
  }
  return r.node;
}

function msgNode(conv, it) {
  const status = statusOf(conv, it);
  const sig = [status, it.chatTime, it.error].join("|");
  let r = rendered.get(it.key);
  if (r && r.sig === sig) return r.node;
  const li = r ? r.node : el("li");
  li.className = "msg " + (it.mine ? "mine" : "theirs") + (status === "failed" ? " failed" : "");
  li.dataset.key = it.key;
  li.dataset.status = it.mine ? status : "received";
  if (it.msgId) li.dataset.msgId = it.msgId;
  const bubble = el("div", "bubble");
  const text = el("p", "text");
  if (conv.kind === "group" && !it.mine) { // in a group each message says who wrote it
    const from = el("span", "sender", it.senderId);
    from.append(el("span", "sr-only", ": "));
    text.append(from);
  } else {
    text.append(el("span", "sr-only", it.mine ? "You: " : conv.id + ": "));
  }
  text.append(document.createTextNode(it.msgType === MsgType.WORDS ? it.text : preview(it) + " " + it.text));
  const meta = el("div", "meta");
  if (it.chatTime) {
    const d = new Date(it.chatTime);
    const t = el("time", "", timeFmt.format(d));
    t.dateTime = it.chatTime;
    t.title = fullFmt.format(d);
    meta.append(t);
  }
  if (it.mine && status !== "failed") meta.append(el("span", "status " + status, STATUS[status])); // failed: the note says it
  bubble.append(text, meta);
  if (status === "failed") {
    const f = el("div", "fail", "Not sent: " + it.error);
    f.setAttribute("role", "alert");
    if (it.errorCode !== "too_large") {
      const retry = el("button", "", "Retry");
      retry.type = "button";
      retry.onclick = () => { it.status = "sending"; it.error = ""; client.retry(it.clientMsgId); renderChat(); };
      f.append(retry);
    }
    const del = el("button", "", "Delete");
    del.type = "button";
    del.onclick = () => { client.drop(it.clientMsgId); conv.items.delete(it.key); conv.byCid.delete(it.clientMsgId); renderChat(); };
    f.append(del);
    bubble.append(f);
  }
  li.replaceChildren(bubble);
  rendered.set(it.key, { node: li, sig });
  return li;
}

function onState(d) {
  const box = $("conn");
  box.className = "conn " + d.state;
  $("retryNow").hidden = !(d.state === "waiting" || d.state === "stopped");
  $("connBtn").textContent = d.state === "idle" || d.state === "stopped" ? "Connect" : "Disconnect";
  clearInterval(tick);
  const text = $("connText");
  switch (d.state) {
    case "online": text.textContent = "Online"; box.title = d.node ? d.node.nodeId + " " + d.node.wsUrl : ""; break;
    case "connecting": text.textContent = "Connecting…"; break;
    case "idle": text.textContent = "Disconnected"; break;
    case "stopped": text.textContent = "Disconnected: " + (d.reason || "error " + d.code); break;
    case "waiting": {
      const show = () => {
        const s = Math.max(0, Math.ceil((d.retryAt - Date.now()) / 1000));
        text.textContent = "Offline, reconnecting in " + s + " s";
      };
      show();
      tick = setInterval(show, 1000);
      box.title = d.reason || "";
      break;
    }
  }
  if (d.state === "online") {
    scheduleReceipts();
    pollPresence();
  } else {
    clearInterval(presenceTimer); // what it showed is no longer known
    $("presence").textContent = "";
  }
}

// ---------------------------------------------------------------- wiring

function sendText(e) {
  e.preventDefault();
  const text = $("text").value;
  const conv = convs.get(openKey);
  if (!text.trim() || !conv || !client) return;
  const fields = conv.kind === "group" ? { groupId: conv.id, msg: text } : { receiverId: conv.id, msg: text };
  const cid = client.send(fields);
  addMessage(Object.assign({ senderId: me, clientMsgId: cid, msgType: MsgType.WORDS }, fields), { counted: false });
  $("text").value = "";
  renderChat(true);
}

document.addEventListener("DOMContentLoaded", () => {
  $("signinForm").addEventListener("submit", signIn);
  $("signout").onclick = signOut;
  $("connBtn").onclick = e => {
    // A double click is one press (e.detail counts the clicks of a burst): it must
    // neither open two sockets nor connect and at once disconnect again.
    if (!client || e.detail > 1) return;
    if (client.state === "idle" || client.state === "stopped") client.connect();
    else client.disconnect();
  };
  $("retryNow").onclick = () => client && client.retryNow();
  $("composer").addEventListener("submit", sendText);
  $("text").addEventListener("keydown", e => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) sendText(e);
  });
  $("newChat").addEventListener("submit", e => {
    e.preventDefault();
    const id = $("newPeer").value.trim();
    if (!id) return;
    $("newPeer").value = "";
    openConv(($("kindGroup").checked ? "g:" : "u:") + id, true);
  });
  // The one field takes a user id or a group id: its label and placeholder say which.
  const kindChanged = () => {
    const group = $("kindGroup").checked;
    $("newPeerLabel").textContent = group ? "Group id" : "User id";
    $("newPeer").placeholder = group ? "e.g. team" : "e.g. bob";
  };
  $("kindUser").addEventListener("change", kindChanged);
  $("kindGroup").addEventListener("change", kindChanged);
  kindChanged(); // a reload may have restored the choice "a group"
  $("back").onclick = closeConv;
  $("older").onclick = () => {
    const conv = convs.get(openKey);
    if (conv && conv.nextBeforeSeq) loadHistory(conv, conv.nextBeforeSeq);
  };
  document.addEventListener("visibilitychange", () => { if (looking()) scheduleReceipts(); });
  let session = null;
  try { session = JSON.parse(store.getItem(SESSION) || "null"); } catch { session = null; }
  if (session && session.userId) start(session.userId, session.token || "");
  else showSignin();
});
