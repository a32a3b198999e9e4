/**
 * The typed browser client in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): a page bundled from `fanc compile --target browser` output and fan/browser
 * (no Node built-ins), served from one origin, calls a `fanc gateway` child process on another
 * (CORS) in front of Till served on redis by a third process: a call, a typed error, a
 * deadline, an event and a state update received. Skips when chromium is missing, printing
 * why; fails instead under FAN_REQUIRE_BROKERS=1.
 */
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CapturedChild, spawnCaptured, until } from "../cli/helpers.js";
import { SHARED_ETCD } from "../discovery/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { runnable, uniqueCluster, up } from "../transports/processes.js";
import { bundleForBrowser } from "./bundle.js";
import { IDL, repo, startService, stopChild } from "./helpers.js";

const CHROMIUM = process.env.FAN_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

function describeWithChromium(): typeof describe | typeof describe.skip {
  if (existsSync(CHROMIUM)) return describeWithBroker(runnable("redis") && up.etcd, "redis or etcd", "browser client");
  const why = `no chromium at ${CHROMIUM} (apt-get install chromium, or npm run brokers as root; FAN_CHROMIUM names another)`;
  if (process.env.FAN_REQUIRE_BROKERS === "1") throw new Error(`browser client: ${why} and FAN_REQUIRE_BROKERS=1`);
  console.warn(`SKIPPED browser client: ${why}; FAN_REQUIRE_BROKERS=1 makes this a failure`);
  return describe.skip;
}

/** Serves the page and its bundle. */
async function servePage(js: string): Promise<{ server: Server; origin: string }> {
  const html = '<!doctype html><meta charset="utf-8"><title>fan</title><script type="module" src="/app.js"></script>';
  const server = createServer((req, res) => {
    if (req.url?.startsWith("/app.js")) res.writeHead(200, { "content-type": "text/javascript" }).end(js);
    else if (req.url === "/favicon.ico") res.writeHead(404).end();
    else res.writeHead(200, { "content-type": "text/html" }).end(html);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describeWithChromium()("browser client in headless Chromium, through fanc gateway to Till on redis", () => {
  const cluster = uniqueCluster("gw-browser");
  let service: CapturedChild | undefined;
  let gateway: CapturedChild | undefined;
  let site: { server: Server; origin: string } | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let gatewayUrl = "";
  const t = <R>(fn: string, ...args: unknown[]): Promise<R> =>
    page.evaluate(([f, a]) => (globalThis as unknown as { fanTest: Record<string, (...x: unknown[]) => unknown> }).fanTest[f as string]?.(...(a as unknown[])), [fn, args] as const) as Promise<R>;

  beforeAll(async () => {
    const { code } = await bundleForBrowser("test/gateway/fixtures/page.ts");
    site = await servePage(code);
    service = await startService("redis", cluster);
    gateway = spawnCaptured(process.execPath, [
      join(repo, "bin/fanc.mjs"), "gateway", IDL, "--port", "0", "--transports", "redis", "--cors", site.origin,
      "--cluster", cluster, "--discovery", `etcd://${SHARED_ETCD}`, "--log-level", "warn",
    ]);
    await until("the gateway listens", () => /listening on http|fanc gateway: /.test(gateway?.stderr() ?? ""), 120_000);
    const m = /listening on (http:\/\/\S+)/.exec(gateway.stderr());
    if (m === null) throw new Error(`the gateway did not start: ${gateway.stderr()}`);
    gatewayUrl = m[1] as string;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    page = await browser.newPage();
    const logs: string[] = [];
    page.on("console", (msg) => logs.push(msg.text()));
    page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`${site.origin}/?gateway=${encodeURIComponent(gatewayUrl)}`);
    await page.waitForFunction(() => "fanTest" in globalThis, undefined, { timeout: 20_000 }).catch((e: unknown) => {
      throw new Error(`the page did not load: ${(e as Error).message}; console: ${logs.join(" | ")}`);
    });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    if (gateway !== undefined && gateway.child.exitCode === null) {
      gateway.child.kill("SIGTERM");
      expect(await gateway.exited).toBe(0);
    }
    await stopChild(service);
    site?.server.close();
  }, 60_000);

  it("makes a typed call across origins, with its custom header and a trace", async () => {
    expect(await t("add", 3)).toEqual({ total: 3, by: "browser" });
    const seen = await t<Record<string, string>>("seen");
    expect(seen.tenant).toBe("browser");
    expect(seen.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  }, 60_000);

  it("rebuilds a typed IDL error as its generated class, with fields", async () => {
    expect(await t("take", 1000)).toEqual({
      fanError: true,
      overdrawn: true,
      code: "FAILED_PRECONDITION",
      message: expect.stringMatching(/^cannot take 1000 of \d+$/),
      traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
      balance: expect.any(Number),
      asked: 1000,
    });
    expect(await t("invalid")).toMatchObject({
      fanError: true,
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/^n: .*, in a request to [\w.]+\.add$/),
    });
  }, 60_000);

  it("ends a call at its deadline with DEADLINE_EXCEEDED", async () => {
    const r = await t<{ code: string; ms: number }>("sleep", 20_000, 600);
    expect(r.code).toBe("DEADLINE_EXCEEDED");
    expect(r.ms).toBeGreaterThanOrEqual(500);
    expect(r.ms).toBeLessThan(10_000);
  }, 60_000);

  it("receives an event published by the service", async () => {
    expect(await t("subscribe")).toBe("subscribed");
    // Triggered from outside the page, so the event really travels service -> redis -> gateway -> SSE.
    const res = await fetch(`${gatewayUrl}/fan.gw.Till/add`, { method: "POST", body: '{"n":7}' });
    const { total } = (await res.json()) as { total: number };
    let events: unknown[] = [];
    const end = Date.now() + 15_000;
    while (events.length === 0 && Date.now() < end) {
      events = await t<unknown[]>("events");
      if (events.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(events).toEqual([{ n: 7, total }]);
  }, 60_000);

  it("watches a state: the snapshot, then an update", async () => {
    const first = await t<{ total: number }>("watch");
    expect(first.total).toEqual(expect.any(Number));
    const res = await fetch(`${gatewayUrl}/fan.gw.Till/add`, { method: "POST", body: '{"n":5,"by":"node"}' });
    expect(res.status).toBe(200);
    let s = await t<{ values: unknown[]; status: string }>("states");
    const end = Date.now() + 15_000;
    while (s.values.length < 2 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      s = await t("states");
    }
    expect(s.values).toEqual([first, { total: first.total + 5, by: "node" }]);
    expect(s.status).toBe("live");
    expect(await t("get")).toEqual({ total: first.total + 5, by: "node" });
  }, 60_000);
});
