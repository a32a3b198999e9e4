/**
 * Two answers of `fanc gateway` (a `bin/fanc.mjs` child) an outside client acts on, with Till
 * (fixtures/service.ts, on http and redis, shedding past one call in flight) and Vault
 * (fixtures/vault-service.ts) in child processes:
 * - a path or query string of malformed percent-encoding is 400 INVALID_ARGUMENT naming the
 *   part, wherever it is (an rpc's path, a route, an event stream, a state's `?shard`), and
 *   nothing is logged as a failure of the gateway;
 * - a 503 carries `Retry-After`: 1 s for a service's own UNAVAILABLE, the time until the first
 *   breaker lets a probe through once every instance's circuit breaker is open; a 429 of a
 *   service shedding load carries 1 s too.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type CapturedChild, until } from "../cli/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { uniqueCluster, up } from "../transports/processes.js";
import { spawnGateway, startService, startVault, stopChild, VAULT_IDL } from "./helpers.js";

interface Answer {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly body: { code: string; message: string };
}

async function send(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as Answer["body"] };
}

const post = (url: string, body: unknown): Promise<Answer> =>
  send(url, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

describeWithBroker(
  up.etcd,
  "etcd",
  "gateway request errors",
)("malformed percent-encoding and Retry-After through the gateway", () => {
  const cluster = uniqueCluster("gw-reqerr");
  let till: CapturedChild | undefined;
  let vault: CapturedChild | undefined;
  let gateway: CapturedChild | undefined;
  let vaultGateway: CapturedChild | undefined;
  let base = "";
  let vaultBase = "";

  beforeAll(async () => {
    [till, vault] = await Promise.all([
      startService("http,redis", cluster, { FAN_GW_MAX_IN_FLIGHT: "1" }),
      startVault(cluster),
    ]);
    [{ gateway, url: base }, { gateway: vaultGateway, url: vaultBase }] = await Promise.all([
      spawnGateway(cluster, ["--transports", "http,redis"]),
      spawnGateway(cluster, ["--transports", "http"], VAULT_IDL),
    ]);
  }, 240_000);

  afterAll(async () => {
    await Promise.all([stopChild(gateway), stopChild(vaultGateway)]);
    await Promise.all([stopChild(till), stopChild(vault)]);
  }, 60_000);

  it.each([
    ["an rpc's method", "POST", "/fan.gw.Till/add%ZZ", 'the path segment "add%ZZ"'],
    ["an rpc's service, cut UTF-8", "POST", "/fan.gw.Till%E0%A4%A/add", 'the path segment "fan.gw.Till%E0%A4%A"'],
    ["a route's parameter", "GET", "/till/ab%ZZ/total", 'the path segment "ab%ZZ"'],
    ["a route's query string", "GET", "/till/ab/total?by=%E0%A4%A", 'the query string part "%E0%A4%A"'],
    ["an event stream's name", "GET", "/_fan/events/fan.gw.Till/added%", 'the path segment "added%"'],
    ["a state stream's query", "GET", "/_fan/states/fan.gw.Till/total?shard=%ZZ", 'the query string part "%ZZ"'],
    ["an unknown path", "GET", "/nowhere/%ZZ", 'the path segment "%ZZ"'],
  ])(
    "%s of malformed percent-encoding is 400 naming it",
    async (_what, method, path, part) => {
      const a = await send(`${base}${path}`, {
        method,
        ...(method === "POST" ? { body: "{}", headers: { "content-type": "application/json" } } : {}),
      });
      expect(a.status).toBe(400);
      expect(a.body.code).toBe("INVALID_ARGUMENT");
      expect(a.body.message).toBe(
        `malformed percent-encoding in ${part}: a % must start an escape of two hex digits, and the escapes must spell UTF-8`,
      );
    },
    30_000,
  );

  it("well-formed escapes still route, and the gateway logged no failure of its own", async () => {
    const a = await send(`${base}/till/a%20b%E2%82%AC/total`);
    expect(a.status).toBe(200);
    expect(a.body).toEqual({ total: 0, by: "a b€" });
    const log = gateway?.stderr() ?? "";
    expect(log).not.toContain("gateway request failed");
    expect(log).not.toContain("URIError");
  }, 30_000);

  it("a service's UNAVAILABLE is 503 with Retry-After: 1; a client refused 400 has none", async () => {
    const a = await post(`${vaultBase}/fan.vault.Vault/fail`, { how: "unavailable" });
    expect(a.status).toBe(503);
    expect(a.retryAfter).toBe("1");
    const bad = await post(`${vaultBase}/fan.vault.Vault/fail`, { how: 5 });
    expect(bad.status).toBe(400);
    expect(bad.retryAfter).toBeNull();
  }, 30_000);

  it("once every breaker is open, the 503's Retry-After is the time until a probe goes through", async () => {
    // The breaker opens after 5 failures (half of the window's attempts) and stays open 2 s.
    const seen: string[] = [];
    for (let i = 0; i < 20 && !seen.includes("2"); i++) {
      const a = await post(`${vaultBase}/fan.vault.Vault/fail`, { how: "unavailable" });
      expect(a.status).toBe(503);
      seen.push(String(a.retryAfter));
    }
    // Until it opened (four or five calls: the test before failed once), the service's own 503s said 1 s.
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect(seen.length).toBeLessThanOrEqual(6);
    expect(seen.slice(0, -1).every((s) => s === "1")).toBe(true);
    expect(seen.at(-1)).toBe("2");
    await until(
      "the gateway logs an open breaker",
      () => (vaultGateway?.stderr() ?? "").includes("circuit breaker of every instance is open"),
      10_000,
    );
    expect(vaultGateway?.stderr()).not.toContain("gateway request failed");
  }, 60_000);

  it("a service shedding load past its bound in flight is 429 with Retry-After: 1", async () => {
    const slow = fetch(`${base}/fan.gw.Till/sleep`, { method: "POST", body: JSON.stringify({ ms: 3000 }) });
    await new Promise((r) => setTimeout(r, 500));
    const shed = await post(`${base}/fan.gw.Till/add`, { n: 1 });
    expect(shed.status).toBe(429);
    expect(shed.body.code).toBe("RESOURCE_EXHAUSTED");
    expect(shed.retryAfter).toBe("1");
    expect((await slow).status).toBe(204);
  }, 30_000);
});
