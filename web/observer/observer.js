// corral observer: the live view of a node. It reads /observer/api/events
// (server-sent events: `history`, then a `frame` every interval and a
// `restart` as it happens) and draws the tree, listeners, chat, cluster and
// charts. Every name is set with textContent, never parsed as HTML.
"use strict";

const API = "api/";
const FLASH_MS = 5000;
const $ = (id) => document.getElementById(id);

// An element with a class and a text (never HTML).
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function ms(n) {
  if (n === null || n === undefined) return "";
  const s = Math.floor(n / 1000);
  if (s < 1) return n + "ms";
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + String(Math.floor((s % 86400) / 3600)).padStart(2, "0") + "h";
}

function num(n, digits) {
  if (n === null || n === undefined) return "–";
  return typeof n === "number" && digits !== undefined ? n.toFixed(digits) : String(n);
}

// ---- events log and action results -------------------------------------

function logEvent(text, cls) {
  const li = el("li", cls, new Date().toLocaleTimeString() + "  " + text);
  const ol = $("events");
  ol.insertBefore(li, ol.firstChild);
  while (ol.children.length > 200) ol.removeChild(ol.lastChild);
}

function showResult(text, refused) {
  const r = $("result");
  r.textContent = text;
  r.className = refused ? "result refused" : "result";
  r.hidden = false;
  document.body.dataset.lastAction = refused ? "refused" : "ok";
}

async function act(kind, action, body) {
  const headers = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) headers["Authorization"] = "Bearer " + token;
  let status = 0;
  let text = "";
  try {
    const resp = await fetch(API + kind + "/" + action, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    status = resp.status;
    text = (await resp.text()).trim();
  } catch (e) {
    text = String(e);
  }
  const what = action + " " + (body.path ? body.path.join(" / ") : body.listener);
  const ok = status >= 200 && status < 300;
  showResult((ok ? "done: " : "refused (" + status + "): ") + what + (ok ? "" : ": " + text), !ok);
  logEvent((ok ? "" : "refused " + status + ": ") + what, ok ? "" : "refused");
  return status;
}

// ---- the tree ------------------------------------------------------------

const seenRestarts = new Map(); // path key -> restarts last seen
const flashUntil = new Map(); // path key -> time the mark ends
const rows = new Map(); // path key -> li

function keyOf(node) {
  return node.path.join("/");
}

function makeRow(node) {
  const li = el("li");
  const row = el("div", "row");
  const f = {
    id: el("span", "id"),
    kind: el("span", "kind"),
    restart: el("span", "restart"),
    state: el("span", "state"),
    uptime: el("span", "uptime"),
    count: el("span", "count"),
    reason: el("span", "reason"),
  };
  for (const k of Object.keys(f)) row.appendChild(f[k]);
  if (node.path.length > 0) {
    const acts = el("span", "acts");
    for (const a of ["restart", "kill", "terminate"]) {
      const b = el("button", "act-" + a, a);
      b.type = "button";
      b.title = a + " this child";
      b.addEventListener("click", () => act("child", a, { path: node.path }));
      acts.appendChild(b);
    }
    row.appendChild(acts);
  }
  li.appendChild(row);
  li.appendChild(el("ul"));
  li._f = f;
  return li;
}

function fillRow(li, node, now) {
  const f = li._f;
  const key = keyOf(node);
  li.dataset.path = key;
  li.dataset.id = node.id;
  li.dataset.status = node.status;
  li.dataset.restarts = String(node.restarts);
  f.id.textContent = node.id;
  f.kind.textContent = node.strategy || node.kind;
  f.restart.textContent = node.restart || "";
  f.state.textContent = node.status.replace("_", " ");
  f.uptime.textContent = node.uptime_ms !== null && node.uptime_ms !== undefined ? "up " + ms(node.uptime_ms) : "";
  let count = "";
  if (node.kind === "dynamic") {
    count = (node.template || "child") + " × " + num(node.running);
    if (node.total > node.running) count += " (" + (node.total - node.running) + " restarting)";
  } else if (node.restarts > 0) {
    count = "restarts " + node.restarts;
  }
  if (node.supervisor_restarts) count += (count ? " · " : "") + "made " + node.supervisor_restarts;
  f.count.textContent = count;
  f.count.className = node.restarts > 0 ? "count some" : "count";
  f.reason.textContent = node.last_restart_reason
    ? "last: " + node.last_restart_reason + (node.since_last_restart_ms !== null ? " (" + ms(node.since_last_restart_ms) + " ago)" : "")
    : "";
  // A restart since the last frame is marked for a few seconds.
  const before = seenRestarts.get(key);
  if (before !== undefined && node.restarts > before) {
    flashUntil.set(key, now + FLASH_MS);
    logEvent("restarted " + key + (node.last_restart_reason ? ": " + node.last_restart_reason : ""), "restart");
  }
  seenRestarts.set(key, node.restarts);
  li.classList.toggle("restarted", (flashUntil.get(key) || 0) > now);
}

function renderChildren(ul, children, now, alive) {
  let i = 0;
  for (const child of children) {
    const key = keyOf(child);
    alive.add(key);
    let li = rows.get(key);
    if (!li) {
      li = makeRow(child);
      rows.set(key, li);
    }
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
    fillRow(li, child, now);
    renderChildren(li.lastChild, child.children || [], now, alive);
    i++;
  }
  while (ul.children.length > i) ul.removeChild(ul.lastChild);
}

function renderTree(tree) {
  const ul = $("tree");
  if (!tree) {
    ul.textContent = "";
    ul.appendChild(el("li", "meta", "the tree is not running"));
    rows.clear();
    return;
  }
  $("node").textContent = tree.id;
  const now = Date.now();
  const alive = new Set();
  renderChildren(ul, [tree], now, alive);
  for (const key of [...rows.keys()]) if (!alive.has(key)) rows.delete(key);
}

// ---- listeners -------------------------------------------------------------

const listenerRows = new Map();

function renderListeners(listeners) {
  const tbody = $("listeners").tBodies[0];
  let i = 0;
  for (const l of listeners) {
    let tr = listenerRows.get(l.name);
    if (!tr) {
      tr = el("tr");
      tr._c = ["name", "transport", "address", "state", "conns", "rate"].map((c) => {
        const td = el("td", c);
        tr.appendChild(td);
        return td;
      });
      const td = el("td");
      const b = el("button", "toggle");
      b.type = "button";
      b.addEventListener("click", () =>
        act("listener", tr.dataset.state === "suspended" ? "resume" : "suspend", { listener: l.name }),
      );
      td.appendChild(b);
      tr.appendChild(td);
      tr._b = b;
      listenerRows.set(l.name, tr);
    }
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    tr.dataset.name = l.name;
    tr.dataset.state = l.state;
    const c = tr._c;
    c[0].textContent = l.name;
    c[1].textContent = l.transport;
    c[2].textContent = l.address || "";
    c[3].textContent = l.state;
    c[4].textContent = l.connections + " / " + l.max_connections;
    c[5].textContent = num(l.accept_rate, 1);
    tr._b.textContent = l.state === "suspended" ? "resume" : "suspend";
    i++;
  }
  while (tbody.children.length > i) tbody.removeChild(tbody.lastChild);
}

// ---- chat and cluster ----------------------------------------------------

function figures(dl, pairs) {
  dl.textContent = "";
  for (const [k, v] of pairs) {
    dl.appendChild(el("dt", null, k));
    dl.appendChild(el("dd", null, v));
  }
}

function names(ul, items) {
  ul.textContent = "";
  if (items.length === 0) ul.appendChild(el("li", "meta", "none"));
  for (const text of items) ul.appendChild(el("li", null, text));
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

function renderChat(c) {
  $("chat-off").hidden = c.enabled;
  figures($("chat"), c.enabled ? [
    ["users online", c.users_online],
    ["sessions", c.sessions],
    ["topics / subscriptions", c.topics + " / " + c.subscriptions],
    ["pushes queued", c.queued_pushes],
    ["pushes delivered", c.pushes_delivered],
    ["pushes dropped", c.pushes_dropped],
    ["store", bytes(c.store_bytes)],
    ["commits / writes", c.commits + " / " + c.writes],
    ["batch (recent / largest)", num(c.recent_batch, 1) + " / " + c.largest_batch],
  ] : []);
  names($("online"), c.online);
  names($("topics"), c.busiest.map((t) => (t.kind === "channel" ? "#" : "@") + t.name + " · " + t.subscribers));
  names($("queues"), c.deepest_queues.map((q) => (q.user !== null ? q.user : "conn " + q.connection) + " · " + q.queued + "/" + q.limit));
}

function renderCluster(c) {
  $("cluster-off").hidden = c.enabled;
  $("cluster").hidden = !c.enabled;
  $("members").hidden = !c.enabled;
  if (!c.enabled) return;
  figures($("cluster"), [
    ["this node", c.me],
    ["NATS", c.nats_connected ? "connected" : "disconnected"],
    ["primary", c.primary || "none"],
    ["failovers", c.failovers],
    ["log applied / lag", c.log_applied + " / " + c.log_lag],
  ]);
  const tbody = $("members").tBodies[0];
  tbody.textContent = "";
  for (const m of c.members) {
    const tr = el("tr");
    tr.dataset.name = m.name;
    for (const v of [m.name, m.rank, m.role, m.lag === null ? "?" : m.lag, m.clock_offset_ms + " ms", ms(m.heartbeat_age_ms) + " ago"]) {
      tr.appendChild(el("td", null, v));
    }
    tbody.appendChild(tr);
  }
}

// ---- charts ----------------------------------------------------------------

const samples = [];
let historyMax = 300;

function chart(canvas, series) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  let max = 0;
  for (const s of series) for (const p of samples) max = Math.max(max, s.get(p) || 0);
  max = max > 0 ? max * 1.1 : 1;
  ctx.fillStyle = "#999";
  ctx.font = "10px sans-serif";
  ctx.fillText(max.toPrecision(3), 2, 10);
  const n = Math.max(samples.length, 2);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    samples.forEach((p, i) => {
      const v = s.get(p);
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      const x = (i / (n - 1)) * (w - 4) + 2;
      const y = h - 2 - (v / max) * (h - 14);
      if (pen) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  }
}

function renderCharts() {
  chart($("rate-chart"), [
    { color: "#2a6fdb", get: (p) => p.http_rate },
    { color: "#e07b00", get: (p) => p.rpc_rate },
  ]);
  chart($("latency-chart"), [
    { color: "#2a9d5c", get: (p) => p.p50_ms },
    { color: "#c0392b", get: (p) => p.p99_ms },
  ]);
  const last = samples[samples.length - 1];
  if (last) {
    $("rate-now").textContent = "now " + num(last.http_rate, 1) + " / " + num(last.rpc_rate, 1);
    $("latency-now").textContent = "now " + num(last.p50_ms, 3) + " / " + num(last.p99_ms, 3);
  }
}

// ---- the stream ------------------------------------------------------------

function onFrame(frame) {
  renderTree(frame.tree);
  renderListeners(frame.listeners || []);
  renderChat(frame.chat);
  renderCluster(frame.cluster);
  $("watchers").textContent = frame.watchers + " watching";
  if (frame.sample) {
    samples.push(frame.sample);
    while (samples.length > historyMax) samples.shift();
  }
  renderCharts();
  document.body.dataset.frames = String(Number(document.body.dataset.frames || 0) + 1);
}

function connect() {
  const source = new EventSource(API + "events");
  source.addEventListener("open", () => {
    $("status").textContent = "live";
    $("status").className = "status ok";
    document.body.dataset.connected = "true";
  });
  source.addEventListener("error", () => {
    $("status").textContent = "reconnecting…";
    $("status").className = "status down";
    document.body.dataset.connected = "false";
  });
  source.addEventListener("history", (e) => {
    const list = JSON.parse(e.data);
    samples.length = 0;
    for (const s of list) samples.push(s);
    historyMax = Math.max(historyMax, list.length);
    renderCharts();
  });
  source.addEventListener("frame", (e) => onFrame(JSON.parse(e.data)));
  source.addEventListener("restart", (e) => {
    const r = JSON.parse(e.data);
    logEvent(r.supervisor + " restarts " + r.child + ": " + r.reason, "restart");
  });
}

connect();
