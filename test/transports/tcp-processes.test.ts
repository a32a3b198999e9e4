/**
 * tcp between processes, as a user's services run: a client App here, server Apps in child
 * processes (fixtures/peer.ts) called through the generated client, etcd discovery in between.
 * A burst of calls and pushes on one connection, the bound on push handlers, a SIGKILLed
 * instance (calls fail over at once; pushes to it once it is known down say they never left),
 * and a server process restarted on the same port (the
 * client's connection comes back by itself).
 */
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { tcpTransport } from "../../src/runtime/transports/tcp/index.js";
import { until } from "./conformance.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { captureLog } from "./fixtures/log.js";
import { type Peer, startPeer } from "./fixtures/peers.js";
import { pushesAfterKill, up } from "./processes.js";

const ETCD = "etcd://127.0.0.1:2379";
const peers: Peer[] = [];
const apps: App[] = [];

afterEach(async () => {
  await Promise.allSettled(peers.splice(0).map((p) => p.kill()));
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

function cluster(): string {
  return `tcp9p-${process.pid}-${shortId()}`;
}

async function clientApp(name: string) {
  const app = createApp({
    cluster: name,
    discovery: ETCD,
    logger: captureLog().log,
    transports: { tcp: tcpTransport() },
  });
  apps.push(app);
  await app.start();
  return app.client(Conformance, { transport: "tcp", strategy: "round-robin" });
}

/** A port free right now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe.runIf(up.etcd)("tcp between processes", () => {
  it("a burst of 2,000 calls and 5,000 pushes from one client: every reply and ack arrives; push handlers bounded", async () => {
    const name = cluster();
    const peer = await startPeer({ TRANSPORT: "tcp", CLUSTER: name, PUSH_MS: "5" });
    peers.push(peer);
    const client = await clientApp(name);
    await client.empty({}, { timeout: 20_000 });

    const calls = await Promise.allSettled(
      Array.from({ length: 2000 }, () => client.sleep({ ms: 100 }, { timeout: 60_000 })),
    );
    const failed = calls.filter((c) => c.status === "rejected") as PromiseRejectedResult[];
    expect(failed.map((f) => String(f.reason)).slice(0, 3)).toEqual([]);

    const ids = Array.from({ length: 5000 }, (_, i) => `b${i}`);
    const pushes = await Promise.allSettled(ids.map((id) => client.record({ id }, { timeout: 60_000 })));
    const refused = pushes.filter((c) => c.status === "rejected") as PromiseRejectedResult[];
    expect(refused.map((f) => String(f.reason)).slice(0, 3)).toEqual([]);
    const delivered = () => new Set(peer.lines.filter((l) => typeof l.push === "string").map((l) => l.push)).size;
    await until(() => delivered() === 5000, 10_000).catch(() => undefined);
    expect(delivered()).toBe(5000);
    const maxActive = Math.max(...peer.lines.map((l) => (typeof l.maxActive === "number" ? l.maxActive : 0)));
    expect(maxActive).toBeGreaterThan(1);
    expect(maxActive).toBeLessThanOrEqual(64);
  }, 180_000);

  it("SIGKILL of one of two instances: calls fail over at once and the healthy one keeps serving", async () => {
    const name = cluster();
    const env = { TRANSPORT: "tcp", CLUSTER: name, LEASE_TTL_MS: "60000" };
    const [a, b] = await Promise.all([startPeer(env), startPeer(env)]);
    peers.push(a as Peer, b as Peer);
    const client = await clientApp(name);
    const servedBy = new Set<string | undefined>();
    for (let i = 0; i < 20; i++) servedBy.add((await client.echo({ n: i }, { timeout: 20_000 })).text);
    expect(servedBy).toEqual(new Set([String(a?.child.pid), String(b?.child.pid)]));

    await (a as Peer).kill();
    // Calls in flight at the kill may fail (they may have arrived); once the client has seen
    // the drop, none may: a call to the dead endpoint is refused before it leaves and goes to b.
    await untilStreak(() => client.echo({ n: 0 }, { timeout: 5000 }));
    let ok = 0;
    const errors: string[] = [];
    const started = Date.now();
    const end = started + 2000;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (Date.now() < end) {
          try {
            const r = await client.echo({ n: 1 }, { timeout: 5000 });
            expect(r.text).toBe(String(b?.child.pid));
            ok++;
          } catch (e) {
            errors.push(String(e));
          }
        }
      }),
    );
    expect(errors.slice(0, 3)).toEqual([]);
    const perSecond = ok / ((Date.now() - started) / 1000);
    console.log(`tcp after SIGKILL of one instance: ${ok} calls in 2 s, ${perSecond.toFixed(0)}/s`);
    expect(perSecond).toBeGreaterThan(100);
  }, 120_000);

  it("SIGKILL of the only consumer: pushes that never left say maybeDelivered: false", async () => {
    const name = cluster();
    // A long lease: the killed instance stays in discovery, so pushes still go to it.
    const peer = await startPeer({ TRANSPORT: "tcp", CLUSTER: name, LEASE_TTL_MS: "60000" });
    peers.push(peer);
    const client = await clientApp(name);
    const errors = await pushesAfterKill(client, peer, /connection is down|not connected/);
    for (const e of errors) {
      expect(e.code).toBe("UNAVAILABLE");
      expect(e.message).toMatch(/connection is down|not connected/);
      expect((e.details as { maybeDelivered?: boolean }).maybeDelivered).toBe(false);
    }
  }, 120_000);

  it("the server process restarts on the same port: the client's calls succeed again without a new client", async () => {
    const name = cluster();
    const port = await freePort();
    const env = { TRANSPORT: "tcp", CLUSTER: name, TRANSPORT_OPTIONS: JSON.stringify({ port }) };
    const first = await startPeer(env);
    peers.push(first);
    const client = await clientApp(name);
    expect((await client.echo({ n: 1 }, { timeout: 20_000 })).text).toBe(String(first.child.pid));
    await first.kill();
    const second = await startPeer(env);
    peers.push(second);
    // The same endpoint: the client's connection to it reconnects by itself.
    const end = Date.now() + 15_000;
    let text: string | undefined;
    while (Date.now() < end) {
      try {
        text = (await client.echo({ n: 2 }, { timeout: 2000 })).text;
        if (text === String(second.child.pid)) break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    expect(text).toBe(String(second.child.pid));
  }, 60_000);
});

/** Calls `op` until 20 in a row succeed (at most 15 s). */
async function untilStreak(op: () => Promise<unknown>): Promise<void> {
  const end = Date.now() + 15_000;
  for (let streak = 0; streak < 20; ) {
    if (Date.now() > end) throw new Error("no 20 successful calls in a row within 15 s");
    streak = await op().then(
      () => streak + 1,
      () => 0,
    );
  }
}
