/**
 * imclient.js — imgate's browser client logic, without any DOM (docs/web.md).
 *
 *   import { IMClient } from "./imclient.js";
 *   const c = new IMClient({ userId: "alice", token, storage: localStorage });
 *   c.addEventListener("message", e => show(e.detail.msg));
 *   c.connect();
 *   const id = c.send({ receiverId: "bob", msg: "hi" });   // → clientMsgId
 *   c.send({ groupId: "team", msg: "hi all" });              // a group message
 *
 * Constructor options
 *   userId      the user (CONNECT_INIT senderId). Required.
 *   token       HS256 JWT for servers with auth on; sent top-level in CONNECT_INIT and as
 *               "Authorization: Bearer" on the history and presence routes. Optional.
 *   baseUrl     the dispatcher ("" = the page's own origin).
 *   storage     a localStorage-like object; the cursor is kept under
 *               "imgate.v1.<userId>.cursor" and the unacknowledged messages under
 *               "imgate.v1.<userId>.outbox". Default: none (both live in memory).
 *   keepaliveMs KEEPALIVE period (default 25000; the server's idle timeout is 60 s).
 *   backoff     { minMs: 500, maxMs: 30000 }: reconnect waits min·2^attempt, capped at max,
 *               with "equal jitter" (a random half of it added to the other half).
 *
 * State (client.state, and the "state" event's detail.state)
 *   idle        not connected and not trying (before connect(), after disconnect()).
 *   connecting  asking the dispatcher, opening the socket, replaying (until the ACK of
 *               CONNECT_INIT).
 *   online      the ACK of CONNECT_INIT arrived: replay is done, messages flow.
 *   waiting     the connection was lost; the next try is at detail.retryAt (ms epoch).
 *   stopped     a permanent error (detail.code, detail.reason): no retry until connect()
 *               or retryNow(). 4401 (token refused) also fires "auth".
 *
 * Methods
 *   connect()            start; a no-op while connecting or online: one socket at a time.
 *   disconnect()         close with 1000 and stay idle (no reconnect).
 *   retryNow()           skip the backoff wait (also leaves "stopped").
 *   send(chatMsg)        queue a content message ({receiverId, msg, msgType=1, ...}, or
 *                        {groupId, msg, ...} for a group: exactly one of receiverId and
 *                        groupId, else it throws a TypeError and queues nothing);
 *                        returns its clientMsgId. Queued messages go out when online and are
 *                        resent with the same clientMsgId after a reconnect until acknowledged
 *                        (the server answers a resend with the first msgId, never delivering
 *                        twice). A message refused by ERROR or by close 1009 is "failed" and
 *                        is not resent by itself.
 *   retry(clientMsgId)   put a failed message back in the queue.
 *   drop(clientMsgId)    forget a queued or failed message.
 *   pending()            the messages not yet acknowledged, [{clientMsgId, chatMsg, status,
 *                        error}]: with storage they survive a reload ("imgate.v1.<userId>.outbox")
 *                        and are resent with their clientMsgId once online.
 *   sign(msg, kind)      send a SIGNED receipt for a received message; kind "delivered" or
 *                        "read" (docs/protocol.md: receipts are cumulative per conversation).
 *   history(peerId, {beforeSeq, limit})  GET /api/v1/messages → {messages, hasMore, nextBeforeSeq}:
 *                        the one-to-one messages with peerId; peerId "" = the whole inbox,
 *                        group messages included.
 *   groupHistory(groupId, {beforeSeq, limit})  the same for one group (?groupId=): the
 *                        group's messages in this user's inbox, newest first.
 *   presence(userId)     GET /api/v1/presence → {userId, online, nodes}
 *   cursor / setCursor(n)  the highest inbox seq seen (sent as CONNECT_INIT cursor); null:
 *                        none yet (a new device: no replay).
 *
 * Events (EventTarget; the payload is event.detail)
 *   state    {state, code, reason, retryAt}
 *   ready    {seq, cursorAhead}: replay done (the ACK of CONNECT_INIT).
 *   message  {msg}: a content message (1–4) — live, replayed, or from one's own other
 *            device — once per msgId (duplicates are dropped; each still advances the cursor).
 *            A group message has msg.groupId (and no receiverId); msg.senderId is its author.
 *   receipt  {msg}: a SIGNED receipt (msgType 8), msg.msg = "delivered" | "read" | absent.
 *   sent     {clientMsgId, msgId, chatTime}: the server acknowledged a message.
 *   failed   {clientMsgId, chatMsg, code, message}: a message was refused (ERROR code, or
 *            "too_large" for close 1009); retry(clientMsgId) to send it again. "forbidden" on
 *            a group message: this user is not a member of chatMsg.groupId.
 *   auth     {code, reason}: the server refused the token (close 4401): sign in again.
 */

export const MsgType = Object.freeze({
  CONNECT_INIT: 0, WORDS: 1, IMAGE: 2, VOICE: 3, VIDEO: 4, SIGNED: 8, KEEPALIVE: 9, ACK: 11, ERROR: 12,
});

// Close codes after which a reconnect cannot help: the client stops and says why.
const PERMANENT = {
  1002: "protocol error", 1003: "binary message refused", 1007: "invalid UTF-8", 1008: "policy violation",
  4400: "the server refused the sign-in message (4400)", 4401: "token missing, invalid or expired (4401)",
};

const seenLimit = 20000; // msgIds remembered for dedupe; older ones are forgotten first

export class IMClient extends EventTarget {
  constructor(opts) {
    super();
    if (!opts || !opts.userId) throw new Error("imclient: userId is required");
    this.userId = opts.userId;
    this.token = opts.token || "";
    this.baseUrl = (opts.baseUrl || "").replace(/\/$/, "");
    this.storage = opts.storage || null;
    this.keepaliveMs = opts.keepaliveMs || 25000;
    this.backoff = Object.assign({ minMs: 500, maxMs: 30000 }, opts.backoff || {});
    this.state = "idle";
    this.ws = null;
    this.node = null;
    this.socketSerial = 0;
    this.attempt = 0;
    this.timer = null;
    this.keepalive = null;
    this.onlineSince = 0;
    this.seen = new Set();
    this.outbox = new Map(); // clientMsgId → {chatMsg, status: queued|inflight|failed, socket, size}
    this.n = 0;
    this.device = Math.random().toString(36).slice(2, 8);
    const c = this.storage && this.storage.getItem(this.cursorKey());
    this.cursorValue = c === null || c === undefined || c === "" ? null : Number(c);
    this.loadOutbox();
  }

  cursorKey() { return "imgate.v1." + this.userId + ".cursor"; }
  outboxKey() { return "imgate.v1." + this.userId + ".outbox"; }

  // loadOutbox takes back the messages a previous page left unacknowledged: they are
  // sent again (same clientMsgId) once online, or stay failed.
  loadOutbox() {
    if (!this.storage) return;
    let list = [];
    try { list = JSON.parse(this.storage.getItem(this.outboxKey()) || "[]"); } catch { list = []; }
    for (const o of list) {
      if (o && o.chatMsg && o.clientMsgId) {
        this.outbox.set(o.clientMsgId, { chatMsg: o.chatMsg, status: o.status === "failed" ? "failed" : "queued", size: 0, error: o.error });
      }
    }
  }

  saveOutbox() {
    if (!this.storage) return;
    const list = [...this.outbox].map(([clientMsgId, o]) => ({ clientMsgId, chatMsg: o.chatMsg, status: o.status, error: o.error }));
    if (list.length) this.storage.setItem(this.outboxKey(), JSON.stringify(list));
    else this.storage.removeItem(this.outboxKey());
  }

  /** pending lists the messages not yet acknowledged: {clientMsgId, chatMsg, status, error}. */
  pending() {
    return [...this.outbox].map(([clientMsgId, o]) => ({ clientMsgId, chatMsg: o.chatMsg, status: o.status, error: o.error }));
  }
  get cursor() { return this.cursorValue; }

  setCursor(n) {
    this.cursorValue = n;
    if (!this.storage) return;
    if (n === null) this.storage.removeItem(this.cursorKey());
    else this.storage.setItem(this.cursorKey(), String(n));
  }

  advance(seq) {
    if (typeof seq === "number" && (this.cursorValue === null || seq > this.cursorValue)) this.setCursor(seq);
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  setState(state, extra) {
    this.state = state;
    this.emit("state", Object.assign({ state }, extra || {}));
  }

  connect() {
    if (this.state === "connecting" || this.state === "online") return;
    clearTimeout(this.timer);
    this.open();
  }

  retryNow() {
    if (this.state === "waiting" || this.state === "stopped" || this.state === "idle") {
      clearTimeout(this.timer);
      this.open();
    }
  }

  disconnect() {
    clearTimeout(this.timer);
    this.attempt = 0;
    const ws = this.ws;
    this.detach();
    if (ws) ws.close(1000, "bye");
    this.requeue();
    this.setState("idle");
  }

  // detach forgets the current socket so that its late events change nothing.
  detach() {
    clearInterval(this.keepalive);
    if (this.ws) this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    this.ws = null;
  }

  // requeue puts messages sent on a lost socket back in the queue (resent on the next one).
  requeue() {
    for (const o of this.outbox.values()) if (o.status === "inflight") o.status = "queued";
  }

  async open() {
    this.setState("connecting");
    const serial = ++this.socketSerial;
    let node;
    try {
      node = await this.pick();
    } catch (e) {
      if (serial === this.socketSerial && this.state === "connecting") this.later(0, "dispatcher: " + e.message);
      return;
    }
    if (serial !== this.socketSerial || this.state !== "connecting") return; // disconnect() meanwhile
    this.node = node;
    let ws;
    try {
      ws = new WebSocket(node.wsUrl);
    } catch (e) {
      this.later(0, "cannot open " + node.wsUrl + ": " + e.message);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const init = { chatMsg: { senderId: this.userId, msgType: MsgType.CONNECT_INIT } };
      if (this.token) init.token = this.token;
      if (this.cursorValue !== null) init.cursor = this.cursorValue;
      ws.send(JSON.stringify(init));
    };
    ws.onmessage = e => {
      let env;
      try { env = JSON.parse(e.data); } catch { return; }
      this.onEnvelope(env, serial);
    };
    ws.onclose = e => this.onClose(e.code, e.reason, serial);
  }

  async pick() {
    const r = await fetch(this.baseUrl + "/api/v1/nodes/pick?userId=" + encodeURIComponent(this.userId), { cache: "no-store" });
    const body = await r.json().catch(() => null);
    if (!r.ok || !body || !body.data || !body.data.wsUrl) throw new Error((body && body.msg) || "HTTP " + r.status);
    return body.data;
  }

  onEnvelope(env, serial) {
    const m = env.chatMsg || {};
    switch (m.msgType) {
      case MsgType.ACK:
        if (!m.msgId) return this.onReady(env, m);
        return this.onAck(m);
      case MsgType.ERROR:
        return this.onError(m, env.error || {});
      case MsgType.KEEPALIVE:
        return;
      case MsgType.SIGNED:
        return this.emit("receipt", { msg: m });
    }
    if (m.msgType < MsgType.WORDS || m.msgType > MsgType.VIDEO || !m.msgId) return;
    this.advance(m.seq);
    if (this.seen.has(m.msgId)) return;
    this.remember(m.msgId);
    this.emit("message", { msg: m });
  }

  remember(msgId) {
    this.seen.add(msgId);
    if (this.seen.size > seenLimit) this.seen.delete(this.seen.values().next().value);
  }

  onReady(env, m) {
    if (env.cursorAhead) this.setCursor(typeof m.seq === "number" ? m.seq : 0);
    else if (this.cursorValue === null && typeof m.seq === "number") this.setCursor(m.seq);
    this.onlineSince = Date.now();
    this.setState("online", { node: this.node, connection: env.extend });
    this.emit("ready", { seq: m.seq, cursorAhead: !!env.cursorAhead });
    this.keepalive = setInterval(() => this.write({ chatMsg: { msgType: MsgType.KEEPALIVE } }), this.keepaliveMs);
    this.flush();
  }

  onAck(m) {
    const o = this.outbox.get(m.clientMsgId);
    this.outbox.delete(m.clientMsgId);
    if (o) this.saveOutbox();
    this.remember(m.msgId);
    if (o || m.clientMsgId) this.emit("sent", { clientMsgId: m.clientMsgId, msgId: m.msgId, chatTime: m.chatTime });
  }

  onError(m, err) {
    const o = m.clientMsgId && this.outbox.get(m.clientMsgId);
    if (!o) {
      console.warn("imgate: ERROR", err.code, err.message);
      return;
    }
    o.status = "failed";
    o.error = { code: err.code, message: err.message };
    this.saveOutbox();
    this.emit("failed", { clientMsgId: m.clientMsgId, chatMsg: o.chatMsg, code: err.code, message: err.message });
  }

  onClose(code, reason, serial) {
    if (serial !== this.socketSerial) return;
    const wasOnline = this.state === "online";
    this.detach();
    if (code === 1009) {
      // The server refused a frame over its size limit: blame the largest message sent on
      // this socket and do not resend it. Without one (the sign-in itself) it is permanent.
      let worst = null;
      for (const [id, o] of this.outbox) if (o.status === "inflight" && (!worst || o.size > worst[1].size)) worst = [id, o];
      this.requeue();
      if (!worst) return this.stop(code, "message too large (1009)");
      worst[1].status = "failed";
      worst[1].error = { code: "too_large", message: "too large for the server (closed with 1009)" };
      this.saveOutbox();
      this.emit("failed", Object.assign({ clientMsgId: worst[0], chatMsg: worst[1].chatMsg }, worst[1].error));
    } else {
      this.requeue();
    }
    if (PERMANENT[code]) {
      if (code === 4401) this.emit("auth", { code, reason });
      return this.stop(code, reason || PERMANENT[code]);
    }
    if (wasOnline && Date.now() - this.onlineSince > 10000) this.attempt = 0;
    this.later(code === 4429 ? 5000 : 0, "closed " + code + (reason ? " (" + reason + ")" : ""), code);
  }

  stop(code, reason) {
    clearTimeout(this.timer);
    this.setState("stopped", { code, reason });
  }

  // later schedules the next try after the backoff (at least minMs).
  later(minMs, reason, code) {
    const base = Math.min(this.backoff.maxMs, this.backoff.minMs * 2 ** this.attempt++);
    const wait = Math.max(minMs, base / 2 + Math.random() * base / 2);
    const retryAt = Date.now() + wait;
    this.setState("waiting", { code, reason, retryAt });
    this.timer = setTimeout(() => this.open(), wait);
  }

  write(env) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const s = JSON.stringify(env);
    this.ws.send(s);
    return s.length;
  }

  flush() {
    if (this.state !== "online") return;
    for (const o of this.outbox.values()) {
      if (o.status !== "queued") continue;
      const n = this.write({ chatMsg: o.chatMsg });
      if (!n) return;
      o.status = "inflight";
      o.size = n;
    }
  }

  send(fields) {
    if (!fields || !fields.receiverId === !fields.groupId) {
      throw new TypeError("imclient: send needs exactly one of receiverId and groupId");
    }
    const clientMsgId = fields.clientMsgId || "w" + this.device + "-" + Date.now().toString(36) + "-" + (this.n++);
    const chatMsg = Object.assign({ msgType: MsgType.WORDS }, fields, { senderId: this.userId, clientMsgId });
    this.outbox.set(clientMsgId, { chatMsg, status: "queued", size: 0 });
    this.saveOutbox();
    this.flush();
    return clientMsgId;
  }

  retry(clientMsgId) {
    const o = this.outbox.get(clientMsgId);
    if (o && o.status === "failed") {
      o.status = "queued";
      o.error = undefined;
      this.saveOutbox();
      this.flush();
    }
  }

  drop(clientMsgId) {
    this.outbox.delete(clientMsgId);
    this.saveOutbox();
  }

  sign(msg, kind) {
    return !!this.write({ chatMsg: { senderId: this.userId, receiverId: msg.senderId, msgType: MsgType.SIGNED, msgId: msg.msgId, msg: kind } });
  }

  async get(path) {
    const headers = this.token ? { Authorization: "Bearer " + this.token } : {};
    const r = await fetch(this.baseUrl + path, { headers, cache: "no-store" });
    const body = await r.json().catch(() => null);
    if (!r.ok || !body || !body.success) {
      const e = new Error((body && body.msg) || "HTTP " + r.status);
      e.status = r.status;
      throw e;
    }
    return body.data;
  }

  history(peerId, opts) {
    const q = new URLSearchParams({ userId: this.userId, limit: String((opts && opts.limit) || 50) });
    if (peerId) q.set("peerId", peerId);
    if (opts && opts.beforeSeq) q.set("beforeSeq", String(opts.beforeSeq));
    return this.get("/api/v1/messages?" + q);
  }

  groupHistory(groupId, opts) {
    if (!groupId) throw new TypeError("imclient: groupHistory needs a groupId");
    const q = new URLSearchParams({ userId: this.userId, groupId, limit: String((opts && opts.limit) || 50) });
    if (opts && opts.beforeSeq) q.set("beforeSeq", String(opts.beforeSeq));
    return this.get("/api/v1/messages?" + q);
  }

  presence(userId) {
    return this.get("/api/v1/presence?userId=" + encodeURIComponent(userId));
  }
}

/** compareIds orders two snowflake msgIds (decimal strings) by value. */
export function compareIds(a, b) {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
