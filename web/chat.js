// corral web chat: plain JavaScript over the node's WebSocket endpoint (/ws),
// speaking the RPC JSON envelope {"id", "service", "data"}. Pushes arrive as
// {"topic", "data"}. Keeps a Lamport clock like the other clients: +1 before
// sending, max(local, received) + 1 on receipt.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  nextId: 1,
  pending: new Map(), // id -> {resolve, reject}
  clock: 0,
  me: null,
  current: null, // {kind: "channel"|"user", name}
  subscribed: new Set(),
  logs: new Map(), // "#chan" / "@user" -> [event]
  unread: new Set(),
  channels: [], // names, as the seeds list them
  users: [], // names, as the seeds list them
  online: new Set(), // from the `details` beside the users' names
};

function tick() { state.clock += 1; return state.clock; }
function observe(data) {
  if (data && typeof data.clock === "number") {
    state.clock = Math.max(state.clock, data.clock) + 1;
  }
}

function showError(text) {
  const e = $("error");
  e.textContent = text;
  e.hidden = !text;
}

function setStatus(text, cls) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + (cls || "");
}

class RpcError extends Error {
  constructor(code, message) { super(code + ": " + message); this.code = code; }
}

function call(service, data) {
  return new Promise((resolve, reject) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      reject(new RpcError("DISCONNECTED", "not connected to the server"));
      return;
    }
    const id = state.nextId++;
    const body = Object.assign({}, data || {}, { clock: tick(), timestamp: Date.now() });
    state.pending.set(id, { resolve, reject });
    state.ws.send(JSON.stringify({ id, service, data: body }));
  });
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(proto + "//" + location.host + "/ws");
  state.ws = ws;
  ws.onopen = () => {
    setStatus("connected", "ok");
    document.body.dataset.connected = "true";
    refreshChannels();
  };
  ws.onclose = () => {
    setStatus("disconnected; retrying…", "down");
    document.body.dataset.connected = "false";
    for (const p of state.pending.values()) p.reject(new RpcError("DISCONNECTED", "connection lost"));
    state.pending.clear();
    state.subscribed.clear();
    setTimeout(connect, 2000);
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { showError("bad message from server"); return; }
    if (msg && typeof msg.topic === "string" && !("id" in msg)) {
      onPush(msg.topic, msg.data || {});
      return;
    }
    const p = state.pending.get(msg.id);
    if (!p) return;
    state.pending.delete(msg.id);
    if (msg.error) {
      p.reject(new RpcError(msg.error.code || "ERROR", msg.error.message || ""));
    } else if (msg.data && msg.data.status === "erro") {
      // The seeds' error shape only: {"status": "erro", "description": ...}.
      p.reject(new RpcError("ERROR", msg.data.description || msg.data.message || ""));
    } else {
      observe(msg.data);
      p.resolve(msg.data === undefined ? msg.result : msg.data);
    }
  };
}

function keyOf(kind, name) { return (kind === "channel" ? "#" : "@") + name; }

function conversationOf(data, topic) {
  if (typeof data.channel === "string") return keyOf("channel", data.channel);
  const src = data.src || data.user;
  const dst = data.dst;
  if (state.me && src === state.me && dst) return keyOf("user", dst);
  if (src) return keyOf("user", src);
  return keyOf("channel", topic);
}

function addEvent(key, ev) {
  if (!state.logs.has(key)) state.logs.set(key, []);
  const log = state.logs.get(key);
  if (ev.seq !== undefined && log.some((e) => e.seq === ev.seq)) return;
  log.push(ev);
  if (ev.seq !== undefined) log.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  const cur = state.current && keyOf(state.current.kind, state.current.name);
  if (key === cur) renderMessages(); else { state.unread.add(key); renderLists(); }
}

function onPush(topic, data) {
  observe(data);
  addEvent(conversationOf(data, topic), data);
  if (data.user && !state.users.includes(data.user)) { state.users.push(data.user); renderLists(); }
}

function renderMessages() {
  const ol = $("messages");
  ol.textContent = "";
  if (!state.current) return;
  for (const ev of state.logs.get(keyOf(state.current.kind, state.current.name)) || []) {
    const li = document.createElement("li");
    const who = ev.user || ev.src || "?";
    if (who === state.me) li.className = "mine";
    const w = document.createElement("span");
    w.className = "who";
    w.textContent = who;
    const t = document.createElement("span");
    t.className = "text";
    t.textContent = typeof ev.message === "string" ? ev.message : JSON.stringify(ev);
    const m = document.createElement("span");
    m.className = "meta";
    const when = typeof ev.timestamp === "number" ? new Date(ev.timestamp).toLocaleTimeString() : "";
    m.textContent = [when, ev.clock !== undefined ? "clock " + ev.clock : ""].filter(Boolean).join(" · ");
    li.append(w, t, m);
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

function renderList(ul, names, kind) {
  ul.textContent = "";
  for (const name of names) {
    const li = document.createElement("li");
    li.textContent = (kind === "channel" ? "#" : "@") + name;
    li.dataset.name = name;
    const key = keyOf(kind, name);
    if (state.current && keyOf(state.current.kind, state.current.name) === key) li.classList.add("current");
    if (state.unread.has(key)) li.classList.add("unread");
    if (kind === "channel" && state.subscribed.has(name)) li.classList.add("subscribed");
    if (kind === "user" && state.online.has(name)) li.classList.add("online");
    li.onclick = () => select(kind, name);
    ul.append(li);
  }
}

function renderLists() {
  renderList($("channels"), state.channels, "channel");
  renderList($("users"), state.users.filter((u) => u !== state.me), "user");
}

// `users` and `channels` answer lists of names (the seeds' shape); the
// details (online, created, creator, ...) come beside them in `details`.
function names(list) {
  return (list || []).filter((x) => typeof x === "string");
}

async function refreshChannels() {
  try {
    const r = await call("channels", {});
    state.channels = names(r.channels);
    if (state.me) {
      const u = await call("users", {});
      state.users = names(u.users);
      state.online = new Set((u.details || []).filter((d) => d && d.online).map((d) => d.user));
    }
    renderLists();
  } catch (e) { showError(e.message); }
}

async function select(kind, name) {
  showError("");
  state.current = { kind, name };
  const key = keyOf(kind, name);
  state.unread.delete(key);
  $("title").textContent = kind === "channel" ? "#" + name : "Private: " + name;
  const canSend = !!state.me;
  $("text").disabled = !canSend;
  $("send").disabled = !canSend;
  renderLists();
  renderMessages();
  try {
    if (kind === "channel" && !state.subscribed.has(name)) {
      await call("subscribe", { topic: name });
      state.subscribed.add(name);
      renderLists();
    }
    const h = await call("history", kind === "channel" ? { channel: name, limit: 50 } : { user: name, limit: 50 });
    for (const ev of h.messages || h.events || []) addEvent(key, ev);
    renderMessages();
  } catch (e) { showError(e.message); }
}

$("login-form").onsubmit = async (ev) => {
  ev.preventDefault();
  showError("");
  const user = $("name").value.trim();
  if (!user) return;
  try {
    await call("login", { user });
    state.me = user;
    $("me").textContent = "logged in as " + user;
    $("me").hidden = false;
    $("logout").hidden = false;
    $("login-form").hidden = true;
    document.body.dataset.user = user;
    if (state.current) select(state.current.kind, state.current.name);
    refreshChannels();
  } catch (e) { showError("login failed: " + e.message); }
};

$("logout").onclick = async () => {
  try { await call("logout", {}); } catch (e) { showError(e.message); }
  state.me = null;
  delete document.body.dataset.user;
  $("me").hidden = true;
  $("logout").hidden = true;
  $("login-form").hidden = false;
  $("text").disabled = true;
  $("send").disabled = true;
};

$("create-form").onsubmit = async (ev) => {
  ev.preventDefault();
  showError("");
  const channel = $("new-channel").value.trim();
  if (!channel) return;
  try {
    await call("channel", { channel });
    $("new-channel").value = "";
    await refreshChannels();
    select("channel", channel);
  } catch (e) { showError("cannot create " + channel + ": " + e.message); }
};

$("refresh").onclick = () => refreshChannels();

$("send-form").onsubmit = async (ev) => {
  ev.preventDefault();
  showError("");
  const message = $("text").value;
  if (!message || !state.current || !state.me) return;
  const { kind, name } = state.current;
  try {
    if (kind === "channel") {
      await call("publish", { user: state.me, channel: name, message });
    } else {
      const r = await call("message", { src: state.me, dst: name, message });
      // Our own private messages are not pushed back to us: show them now.
      addEvent(keyOf("user", name), Object.assign({ src: state.me, dst: name, message }, r));
    }
    $("text").value = "";
  } catch (e) { showError("not sent: " + e.message); }
};

connect();
