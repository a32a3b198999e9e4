/**
 * What one served redis call costs in commands, watched through MONITOR on the shared Redis
 * (filtered on this run's keys and channels): the serving loop pops with one BLMPOP (no LMPOP
 * that comes back empty first), and a reply ready by the end of its batch's turn is PUBLISHed
 * on the popping connection, written together with the next BLMPOP. Calls made together go out
 * in runs of at most `CALLS_PER_RUN`. A client holding a lease on a version pushes with LPUSH
 * instead of the call script, and loses the lease when the version's instance stops or, at the
 * latest, after `LEASE_MS`.
 */
import { connect, type Socket } from "node:net";
import { afterAll, expect, it } from "vitest";
import { parseEndpoint, replyChannel, rpcKey } from "../../src/runtime/transports/redis/names.js";
import { CALLS_PER_RUN, LEASE_MS } from "../../src/runtime/transports/redis/rpc-client.js";
import { aliveKey, formatEndpoint } from "../../src/runtime/transports/redis/names.js";
import type { FanError } from "../../src/runtime/errors.js";
import { Redis } from "ioredis";
import { type RedisTransport, redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { CallSink } from "../../src/runtime/call/dispatch.js";
import type { CallSignal } from "../../src/runtime/transports/abort.js";
import type { Envelope } from "../../src/runtime/transports/transport.js";
import { captureLog } from "./fixtures/log.js";
import { describeWithBroker, reachable } from "./amqp-broker.js";
import { envelope, rejection, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { deleteKeys, REDIS_URL } from "./redis-server.js";

const url = new URL(REDIS_URL);
const up = await reachable(url.hostname, Number(url.port || 6379));
const cluster = `cmds-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;

/** A redis transport of `clusterName` (a server or a client of the tests below). */
function transportIn(clusterName: string, options: { aliveTtlMs?: number } = {}): RedisTransport {
  return redisTransport({ url: REDIS_URL, ...options })({
    cluster: clusterName,
    log: captureLog().log,
    maxPayloadBytes: 1 << 20,
  }) as RedisTransport;
}

describeWithBroker(
  up,
  "Redis",
  "redis commands per call",
)("redis commands per call (real Redis)", () => {
  const open: RedisTransport[] = [];
  afterAll(async () => {
    await Promise.all(open.map((t) => t.close()));
    await deleteKeys(`fan.${cluster}*`);
  });

  it("one call after another: one BLMPOP per call, no LMPOP, the reply PUBLISHed on the popping connection", async () => {
    await oneAfterAnother(new TestInbound(), "c1");
  });

  it("the same when the inbound reports to a sink (the App's dispatcher) and answers in the same run", async () => {
    const inbound = new SinkInbound();
    await oneAfterAnother(inbound, "c2");
    expect(inbound.ran, "calls went through run(), not call()").toBeGreaterThanOrEqual(21);
  });

  it("calls made in one run go out in runs (script or LPUSH) of at most CALLS_PER_RUN calls", async () => {
    const server = transportIn(`${cluster}-burst`);
    const client = transportIn(`${cluster}-burst`);
    open.push(server, client);
    const { endpoint } = await server.serve(ConformanceDescriptor, "burst", new TestInbound());
    const list = rpcKey(parseEndpoint(endpoint));
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(5000))).kind).toBe("reply");

    const runs: number[] = [];
    const monitor = await watch((name, args, source) => {
      // EVALSHA sha 2 list alive instance frame..., or on a lease LPUSH list frame... (not the
      // script's own LPUSH, which MONITOR shows from "lua").
      if (name === "evalsha" && args[2] === list) runs.push(args.length - 5);
      if (name === "lpush" && args[0] === list && source !== "lua") runs.push(args.length - 1);
    });
    const n = 2 * CALLS_PER_RUN + 5;
    try {
      const calls = Array.from({ length: n }, (_, i) =>
        client.call(endpoint, envelope("echo", { n: i }), within(10_000)),
      );
      const answers = await Promise.all(calls);
      answers.forEach((a, i) => {
        expect(a.kind).toBe("reply");
        expect((a.payload as { n: number }).n).toBe(i);
      });
      const until = Date.now() + 5000;
      while (Date.now() < until && runs.reduce((a, b) => a + b, 0) < n) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      monitor.destroy();
    }
    // Before: one run of all 69 (the tick's calls moved as one group through client, Redis and server).
    expect(runs).toEqual([CALLS_PER_RUN, CALLS_PER_RUN, 5]);
  });

  it("on a lease, calls skip the script; the version's last instance stopping ends the lease, so the next call is refused at once", async () => {
    const server = transportIn(`${cluster}-lease`);
    const client = transportIn(`${cluster}-lease`);
    open.push(server, client);
    const served = await server.serve(ConformanceDescriptor, "lease", new TestInbound());
    const list = rpcKey(parseEndpoint(served.endpoint));
    const seen: string[] = [];
    const monitor = await watch((name, args, source) => {
      if (source === "lua") return;
      if ((name === "evalsha" && args[2] === list) || (name === "lpush" && args[0] === list)) seen.push(name);
    });
    const calls = 6;
    let took = 0;
    try {
      // The first call runs the script, which grants the lease.
      const first = Date.now();
      for (let i = 0; i < calls; i++)
        expect((await client.call(served.endpoint, envelope("echo", { n: i }), within(5000))).kind).toBe("reply");
      took = Date.now() - first;
      const until = Date.now() + 3000;
      while (Date.now() < until && seen.length < calls) await new Promise((r) => setTimeout(r, 20));
    } finally {
      monitor.destroy();
    }
    expect(seen.length, JSON.stringify(seen)).toBe(calls);
    expect(seen[0]).toBe("evalsha");
    // One script run per LEASE_MS at most (a slow machine may outlast one lease); the rest LPUSHes.
    const scripts = seen.filter((x) => x === "evalsha").length;
    expect(scripts, JSON.stringify(seen)).toBeLessThanOrEqual(1 + Math.floor(took / LEASE_MS));
    expect(seen.filter((x) => x === "lpush").length).toBe(calls - scripts);

    await served.stop();
    // Without the announcement the lease would push this call, and it would wait out its deadline.
    const started = Date.now();
    const e = await rejection(() => client.call(served.endpoint, envelope("echo", { n: 9 }), within(4000)));
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toContain("no live instance");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("a lease lasts at most LEASE_MS: an entry gone without an announcement (a killed instance) refuses calls after it", async () => {
    const server = transportIn(`${cluster}-expiry`);
    const client = transportIn(`${cluster}-expiry`);
    open.push(server, client);
    const served = await server.serve(ConformanceDescriptor, "expiry", new TestInbound());
    const addr = parseEndpoint(served.endpoint);
    expect((await client.call(served.endpoint, envelope("echo", { n: 0 }), within(5000))).kind).toBe("reply");
    // Stop the loop so it neither pops nor renews, then drop its alive entry the way an expiry
    // would: no announcement.
    await served.stop();
    const admin = new Redis(REDIS_URL);
    try {
      await admin.zadd(aliveKey(addr), Date.now() + 60_000, "ghost");
      expect((await client.call(served.endpoint, envelope("echo", { n: 1 }), within(200)).catch((x) => x)).code).toBe(
        "DEADLINE_EXCEEDED",
      );
      // The ghost's entry granted a lease; removed behind the client's back, it is trusted until the lease ends.
      await admin.zrem(aliveKey(addr), "ghost");
      await new Promise((r) => setTimeout(r, LEASE_MS + 100));
      const e = await rejection(() => client.call(served.endpoint, envelope("echo", { n: 2 }), within(4000)));
      expect(e.code).toBe("UNAVAILABLE");
      expect(e.message).toContain("no live instance");
    } finally {
      await admin.del(rpcKey(addr));
      admin.disconnect();
    }
  });

  it("a lease ends with the alive entry it was granted on, when that entry has less than LEASE_MS left", async () => {
    const server = transportIn(`${cluster}-short`);
    const client = transportIn(`${cluster}-short`);
    open.push(server, client);
    const served = await server.serve(ConformanceDescriptor, "short", new TestInbound());
    // A version nobody serves but an entry of 300 ms: the script accepts, and grants no more than that.
    const addr = { ...parseEndpoint(served.endpoint), version: "9.9.9" };
    const nobody = formatEndpoint(addr);
    const admin = new Redis(REDIS_URL);
    try {
      const granted = Date.now();
      await admin.zadd(aliveKey(addr), granted + 300, "brief");
      const pushed = await client.call(nobody, envelope("echo", { n: 1 }), within(100)).catch((x: FanError) => x);
      expect((pushed as FanError).code).toBe("DEADLINE_EXCEEDED");
      await new Promise((r) => setTimeout(r, Math.max(0, granted + 450 - Date.now())));
      expect(Date.now() - granted, "this check needs the second call inside LEASE_MS").toBeLessThan(LEASE_MS);
      // A lease of LEASE_MS would push this one too, to wait out its deadline.
      const e = await rejection(() => client.call(nobody, envelope("echo", { n: 2 }), within(4000)));
      expect(e.code).toBe("UNAVAILABLE");
      expect(e.message).toContain("no live instance");
    } finally {
      await admin.del(rpcKey(addr), aliveKey(addr));
      admin.disconnect();
    }
  });

  it("losing the reply connection ends every lease: an announcement sent meanwhile may be lost", async () => {
    const name = `${cluster}-lost`;
    // A heartbeat every 20 s: only the test takes the entry away.
    const server = transportIn(name, { aliveTtlMs: 60_000 });
    const client = transportIn(name, { aliveTtlMs: 60_000 });
    open.push(server, client);
    const served = await server.serve(ConformanceDescriptor, "lost", new TestInbound());
    const addr = parseEndpoint(served.endpoint);
    const admin = new Redis(REDIS_URL);
    try {
      const granted = Date.now();
      expect((await client.call(served.endpoint, envelope("echo", { n: 1 }), within(3000))).kind).toBe("reply");
      // The client's reply connection: subscribed to its reply channel and the left channel.
      const list = (await admin.client("LIST")) as string;
      const ids = list
        .split("\n")
        .filter((l) => l.includes(` name=fan:${name}:sub:`) && / sub=2 /.test(l))
        .map((l) => /^id=(\d+)/.exec(l)?.[1]);
      expect(ids).toHaveLength(1);
      await admin.client("KILL", "ID", ids[0] as string);
      // An instance gone while the connection was away (its announcement would have been lost).
      await admin.zrem(aliveKey(addr), addr.instance as string);
      const e = await rejection(() => client.call(served.endpoint, envelope("echo", { n: 2 }), within(3000)));
      expect(Date.now() - granted, "this check needs the call inside LEASE_MS").toBeLessThan(LEASE_MS);
      expect(e.code).toBe("UNAVAILABLE");
      expect(e.message).toContain("no live instance");
    } finally {
      admin.disconnect();
    }
  });

  async function oneAfterAnother(inbound: TestInbound, instance: string): Promise<void> {
    const server = transportIn(`${cluster}-${instance}`);
    const client = transportIn(`${cluster}-${instance}`);
    open.push(server, client);
    const { endpoint } = await server.serve(ConformanceDescriptor, instance, inbound);
    const list = rpcKey(parseEndpoint(endpoint));
    const replies = replyChannel(`${cluster}-${instance}`, "");
    // Warm: the client's reply channel is subscribed and the script loaded before watching.
    expect((await client.call(endpoint, envelope("echo", { n: 0 }), within(5000))).kind).toBe("reply");

    const seen: { name: string; source: string }[] = [];
    const monitor = await watch((name, args, source) => {
      if (args.includes(list) || (name === "publish" && String(args[0]).startsWith(replies)))
        seen.push({ name, source });
    });
    const calls = 20;
    try {
      for (let i = 1; i <= calls; i++) {
        const answer = await client.call(endpoint, envelope("echo", { n: i }), within(5000));
        expect(answer.kind).toBe("reply");
        expect((answer.payload as { n: number }).n).toBe(i);
      }
      // MONITOR's feed trails the commands (by more under load): wait for the last reply's
      // PUBLISH and the BLMPOP after it, then a little longer for anything unexpected.
      const until = Date.now() + 5000;
      const has = (name: string): number => seen.filter((s) => s.name === name).length;
      while (Date.now() < until && (has("publish") < calls || has("blmpop") < calls))
        await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      monitor.destroy();
    }
    const count = (name: string): number => seen.filter((s) => s.name === name).length;
    const what = JSON.stringify(seen);
    expect(count("lmpop"), what).toBe(0);
    expect(count("publish"), what).toBe(calls);
    // One pop per call (plus, at most, pops that timed out while idle and the one pending at the start).
    expect(count("blmpop"), what).toBeGreaterThanOrEqual(calls);
    expect(count("blmpop"), what).toBeLessThanOrEqual(calls + 3);
    const popper = seen.find((s) => s.name === "blmpop")?.source;
    expect(popper).toBeDefined();
    for (const s of seen.filter((x) => x.name === "publish")) expect(s.source, what).toBe(popper);
  }
});

/** Echoes through `run` with a sink, synchronously (as the dispatcher does for a synchronous handler). */
class SinkInbound extends TestInbound {
  ran = 0;

  run(env: Envelope, _signal: CallSignal, sink: CallSink): void {
    this.ran++;
    sink.reply(env.payload);
  }
}

/**
 * MONITOR on a raw connection (ioredis's `monitor()` failed with "Command queue state error"
 * when the shared Redis was busy): `onCommand` gets each command's lower-case name, its
 * arguments (quoted strings, escapes left as they are) and the source `ip:port`.
 */
async function watch(onCommand: (name: string, args: string[], source: string) => void): Promise<Socket> {
  const socket = connect(Number(url.port || 6379), url.hostname);
  let buf = "";
  let ok: () => void = () => undefined;
  const started = new Promise<void>((r) => {
    ok = r;
  });
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buf += chunk;
    for (let i = buf.indexOf("\r\n"); i >= 0; i = buf.indexOf("\r\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (line === "+OK") ok();
      const m = /^\+[\d.]+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
      if (m === null) continue;
      const quoted = [...(m[2] as string).matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((q) => q[1] as string);
      if (quoted.length > 0) onCommand((quoted[0] as string).toLowerCase(), quoted.slice(1), m[1] as string);
    }
  });
  socket.on("error", () => undefined);
  socket.write("MONITOR\r\n");
  await started;
  return socket;
}
