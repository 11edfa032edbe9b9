// End-to-end test of the observer page (/observer/) in headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core), as the chat's
// e2e/chat.test.js: open the page, see the tree with the node's children,
// see a child restart live (its count goes up, the row is marked), suspend a
// listener without the token (refused, nothing changes) and with it (its
// state changes), resume it; every hostile name is shown as text, and the
// page breaks none of its Content-Security-Policy.
//
// Standalone (no E2E_BASE): starts `corral serve` (the debug binary, or
// $CORRAL_BIN) with the observer's admin on, a token, loopback not trusted,
// and a listener with a hostile name; the child is killed through the
// observer's own kill action.
// From tests/observer_e2e.rs: E2E_BASE=http://host:port, E2E_TOKEN,
// E2E_HOSTILE (a JSON list of names the page must show as text) and
// E2E_KILL=stdio: the script prints `KILL chat_sup/chat_hub` and waits for a
// line on stdin once the Rust test has killed it through the library.
"use strict";

const { chromium } = require("playwright-core");
const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");
const assert = require("assert");

const root = path.resolve(__dirname, "..");
const targetDir = path.resolve(root, process.env.CARGO_TARGET_DIR || "target");
const bin = process.env.CORRAL_BIN || path.join(targetDir, "debug", "corral");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 15000;
const HOSTILE_LISTENER = '<img src=x onerror="window.__pwned=1">';

function startNode(token) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "corral-e2e-obs-"));
  const config = path.join(dir, "e2e.toml");
  fs.writeFileSync(
    config,
    [
      "[node]",
      `data_dir = ${JSON.stringify(path.join(dir, "data"))}`,
      "[http]",
      `docroot = ${JSON.stringify(path.join(dir, "public"))}`,
      "[chat]",
      "enabled = true",
      "[observer]",
      "admin = true",
      `token = ${JSON.stringify(token)}`,
      "trust_loopback = false",
      "[[listener]]",
      'name = "rpc"',
      'protocol = "rpc"',
      "port = 0",
      "[[listener]]",
      `name = ${JSON.stringify(HOSTILE_LISTENER)}`,
      'protocol = "rpc"',
      "port = 0",
      "[[listener]]",
      'name = "http"',
      'protocol = "http"',
      "port = 0",
      "",
    ].join("\n"),
  );
  const child = spawn(bin, ["--log-format", "json", "serve", "--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error("corral serve did not start:\n" + log)), TIMEOUT);
    const onData = (chunk) => {
      log += chunk;
      const m = log.match(/"listening".*?"listener":"http".*?"addr":"([^"]+)"|"listener":"http".*?"addr":"([^"]+)".*?"listening"/);
      const addr = m && (m[1] || m[2]);
      if (addr && /node started/.test(log)) {
        clearTimeout(timer);
        resolve({ child, addr, dir });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`corral serve exited (${code}):\n${log}`)));
  });
}

// Asks the Rust test (over stdout / stdin) to kill `path` through the library.
function killThroughParent(lines, childPath) {
  process.stdout.write(`KILL ${childPath}\n`);
  return new Promise((resolve) => lines.once("line", resolve));
}

async function killThroughApi(base, token, childPath) {
  const resp = await fetch(base + "/observer/api/child/kill", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
    body: JSON.stringify({ path: childPath.split("/") }),
  });
  assert.strictEqual(resp.status, 200, "kill through the API: " + (await resp.text()));
}

function allPaths(node, out) {
  out.push(node.path.join("/"));
  for (const c of node.children) allPaths(c, out);
  return out;
}

async function main() {
  let node = null;
  let base = process.env.E2E_BASE;
  let token = process.env.E2E_TOKEN || "e2e-observer-token-" + Math.floor(Math.random() * 1e9);
  let hostile = process.env.E2E_HOSTILE ? JSON.parse(process.env.E2E_HOSTILE) : [];
  const viaParent = process.env.E2E_KILL === "stdio";
  const lines = viaParent ? readline.createInterface({ input: process.stdin }) : null;
  if (!base) {
    assert.ok(fs.existsSync(bin), `${bin} is missing: run cargo build first`);
    node = await startNode(token);
    base = `http://${node.addr}`;
    hostile = [HOSTILE_LISTENER];
  }
  console.error(`e2e: observer on ${base}`);
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.addInitScript(() => {
      window.__csp = [];
      document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));
    });
    const response = await page.goto(base + "/observer/");
    assert.ok(response.headers()["content-security-policy"], "the page has a CSP");
    assert.strictEqual(await page.title(), "corral observer");
    await page.waitForSelector('body[data-connected="true"][data-frames]');

    // The tree on the page is the tree the node reports, entry for entry.
    const tree = await page.evaluate(async () => (await fetch("api/tree")).json());
    const want = allPaths(tree, []).sort();
    await page.waitForFunction(
      (n) => document.querySelectorAll("#tree li[data-path]").length === n,
      want.length,
    );
    const shown = (await page.$$eval("#tree li[data-path]", (lis) => lis.map((li) => li.dataset.path))).sort();
    assert.deepStrictEqual(shown, want);
    const top = await page.$$eval('#tree > li > ul > li', (lis) => lis.map((li) => li.dataset.id));
    for (const id of ["metrics_sup", "chat_sup", "listener_sup:rpc", "listener_sup:http"]) {
      assert.ok(top.includes(id), `the root's children include ${id}: ${top}`);
    }
    assert.strictEqual(await page.textContent('#tree li[data-path="chat_sup/chat_hub"] > .row .id'), "chat_hub");

    // Hostile names are text on the page, nothing else.
    for (const name of hostile) {
      const found = await page.waitForFunction(
        (n) => [...document.querySelectorAll("#tree .id, #listeners td.name, #online li, #topics li, #queues li")]
          .some((e) => e.textContent === n || e.textContent.startsWith(n + " ·") || e.textContent === "listener_sup:" + n),
        name,
      );
      assert.ok(found, `${name} shown as text`);
    }
    const injected = await page.evaluate(() => ({
      img: document.querySelectorAll("img").length,
      scripts: document.querySelectorAll("main script, main b").length,
      pwned: window.__pwned,
    }));
    assert.deepStrictEqual(injected, { img: 0, scripts: 0, pwned: undefined });

    // A child killed: its restart shows live, its count up, its row marked.
    const hub = '#tree li[data-path="chat_sup/chat_hub"]';
    const before = Number(await page.getAttribute(hub, "data-restarts"));
    if (viaParent) await killThroughParent(lines, "chat_sup/chat_hub");
    else await killThroughApi(base, token, "chat_sup/chat_hub");
    await page.waitForSelector(`${hub}[data-restarts="${before + 1}"].restarted`);
    assert.match(await page.textContent(`${hub} > .row .reason`), /killed/);
    assert.match(await page.textContent("#events"), /chat_hub/);

    // Suspend without the token: refused, the listener goes on accepting.
    const rpc = '#listeners tr[data-name="rpc"]';
    assert.strictEqual(await page.getAttribute(rpc, "data-state"), "accepting");
    await page.fill("#token", "");
    await page.click(`${rpc} button.toggle`);
    await page.waitForSelector('body[data-last-action="refused"]');
    assert.match(await page.textContent("#result"), /403/);
    const frames = Number(await page.getAttribute("body", "data-frames"));
    await page.waitForFunction((n) => Number(document.body.dataset.frames) > n, frames);
    assert.strictEqual(await page.getAttribute(rpc, "data-state"), "accepting");

    // With the token: suspended, then resumed.
    await page.fill("#token", token);
    await page.click(`${rpc} button.toggle`);
    await page.waitForSelector(`${rpc}[data-state="suspended"]`);
    assert.strictEqual(await page.getAttribute("body", "data-last-action"), "ok");
    await page.click(`${rpc} button.toggle`);
    await page.waitForSelector(`${rpc}[data-state="accepting"]`);

    // The charts drew from the stream.
    await page.waitForFunction(() => document.getElementById("rate-now").textContent !== "");

    assert.deepStrictEqual(await page.evaluate(() => window.__csp), [], "no CSP violation");
    assert.deepStrictEqual(errors, [], "no page error");
    console.error("e2e: ok (tree as reported, restart shown live, suspend refused without the token and done with it, hostile names as text)");
  } finally {
    await browser.close();
    if (lines) lines.close();
    if (node) {
      node.child.kill("SIGTERM");
      fs.rmSync(node.dir, { recursive: true, force: true });
    }
  }
}

main().catch((e) => {
  console.error("e2e: FAILED:", e && e.stack ? e.stack : e);
  process.exit(1);
});
