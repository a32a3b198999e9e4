/**
 * What an outside client reads of a failure through `fanc gateway`, with Vault
 * (fixtures/vault-service.ts) in a child process on http and the gateway a `bin/fanc.mjs`
 * child whose log the test reads. A failure from inside the deployment (an endpoint, a hint to
 * edit createApp, an instance that cannot be found) keeps its code and HTTP status, and its
 * message becomes "service unavailable (trace <id>)" and the like, the trace id being the one
 * in the answer's traceparent, and the gateway's log has the full error under that trace id.
 * The service's own IDL error, a NOT_FOUND and an invalid argument pass as they are; so does
 * every error with `--reveal-errors`. An event stream over zmq without an event hub names
 * the FAN_ZMQ_EVENTS_* variables the gateway is started with.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type CapturedChild, until } from "../cli/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { uniqueCluster, up } from "../transports/processes.js";
import { type LocalGateway, spawnGateway, startGateway, startVault, stopChild, VAULT_IDL } from "./helpers.js";

interface Answer {
  readonly status: number;
  readonly traceId: string;
  readonly body: { code: string; message: string; error?: string; details?: unknown };
}

async function call(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", ...headers },
  });
  const traceId = (res.headers.get("traceparent") ?? "").split("-")[1] ?? "";
  return { status: res.status, traceId, body: (await res.json()) as Answer["body"] };
}

describeWithBroker(
  up.etcd,
  "etcd",
  "gateway error exposure",
)("what outside clients read of failures through the gateway", () => {
  const cluster = uniqueCluster("gw-expose");
  let vault: CapturedChild | undefined;
  let gateway: CapturedChild | undefined;
  let revealing: LocalGateway | undefined;
  let base = "";

  beforeAll(async () => {
    vault = await startVault(cluster);
    // No event hub: the stream of a zmq event is refused.
    ({ gateway, url: base } = await spawnGateway(cluster, ["--transports", "http,zmq"], VAULT_IDL, {
      FAN_ZMQ_HUB: "",
      FAN_ZMQ_EVENTS_PUBLISH: "",
      FAN_ZMQ_EVENTS_SUBSCRIBE: "",
    }));
    revealing = await startGateway(cluster, ["--transports", "http", "--reveal-errors"], VAULT_IDL);
  }, 240_000);

  afterAll(async () => {
    await Promise.race([revealing?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
    await stopChild(gateway);
    await stopChild(vault);
  }, 60_000);

  /** The gateway's log lines (pino JSON on its stderr) naming `traceId`. */
  const logged = async (traceId: string): Promise<Record<string, unknown>> => {
    await until(`the gateway logs trace ${traceId}`, () => (gateway?.stderr() ?? "").includes(traceId), 10_000);
    const line = (gateway?.stderr() ?? "").split("\n").find((l) => l.includes(traceId)) as string;
    return JSON.parse(line) as Record<string, unknown>;
  };

  it.each([
    ["unavailable", 503, "UNAVAILABLE", "service unavailable", "zmq tcp://127.0.0.1:45301: connection is down"],
    ["precondition", 412, "FAILED_PRECONDITION", "the service cannot take this request", "createApp({ transports })"],
    ["internal", 500, "INTERNAL", "internal error", "10.0.0.9:5432"],
  ])(
    "a service's %s error keeps its code, not its words, which the log has under the trace id",
    async (how, status, code, safe, inside) => {
      const a = await call(base, "/fan.vault.Vault/fail", { how });
      expect(a.status).toBe(status);
      expect(a.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(a.body).toEqual({ code, message: `${safe} (trace ${a.traceId})` });
      const line = await logged(a.traceId);
      expect(line).toMatchObject({ level: 40, traceId: a.traceId, service: "fan.vault.Vault", method: "fail", code });
      expect(String(line.error)).toContain(inside);
    },
    30_000,
  );

  it("a service that no instance serves is 'service unavailable', not the cluster's state", async () => {
    const a = await call(base, "/fan.vault.Absent/ping", {}, { "fan-timeout": "3000" });
    expect([503, 504]).toContain(a.status);
    expect(a.body.message).toMatch(new RegExp(`^(service unavailable|deadline exceeded) \\(trace ${a.traceId}\\)$`));
    expect(JSON.stringify(a.body)).not.toContain(cluster);
    const line = await logged(a.traceId);
    expect(String(line.error)).toContain("fan.vault.Absent");
  }, 30_000);

  it("the service's IDL error, a NOT_FOUND and an invalid argument pass as they are", async () => {
    const locked = await call(base, "/fan.vault.Vault/fail", { how: "locked" });
    expect(locked.status).toBe(412);
    expect(locked.body).toEqual({
      code: "FAILED_PRECONDITION",
      message: "the vault is locked until noon",
      error: "fan.vault.Locked",
      details: { until: "noon" },
    });
    const missing = await call(base, "/fan.vault.Vault/fail", { how: "missing" });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ code: "NOT_FOUND", message: "no key k1" });
    const bad = await call(base, "/fan.vault.Vault/fail", { how: 5 });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/^how: /);
    // Credentials refused are the client's to know.
    const denied = await call(base, "/fan.vault.Vault/put", { key: "k", value: "v" });
    expect(denied.status).toBe(401);
    expect(denied.body).toEqual({ code: "UNAUTHENTICATED", message: "fan.vault.Vault.put requires credentials" });
  }, 30_000);

  it("with --reveal-errors the client reads the error as the service sent it", async () => {
    const a = await call(revealing?.url ?? "", "/fan.vault.Vault/fail", { how: "unavailable" });
    expect(a.status).toBe(503);
    expect(a.body).toEqual({ code: "UNAVAILABLE", message: "zmq tcp://127.0.0.1:45301: connection is down" });
  }, 30_000);

  it("an event stream on zmq without an event hub names the variables that give the gateway one", async () => {
    const res = await fetch(`${base}/_fan/events/fan.vault.Absent/opened`, {
      headers: { accept: "text/event-stream" },
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.json()) as { code: string; message: string };
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(body.code).toBe("UNAVAILABLE");
    expect(body.message).toContain("the events of fan.vault.Absent come over zmq here, which needs an event hub");
    expect(body.message).toContain("FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE");
    expect(body.message).toContain("zmqTransport({ events: { publish, subscribe } })");
  }, 30_000);
});
