/**
 * zmq-specific behaviour: malformed frames on the ROUTER, server-side limits, unreachable
 * peers, and the PUB/SUB event path (sequence gaps, failing handlers, unsubscribe, a hub
 * hosted by a transport).
 */
import { connect, createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isNotDelivered } from "../../src/runtime/transports/not-delivered.js";
import { Subscriber, XPublisher } from "zeromq";
import type { EventSubscription, Served } from "../../src/runtime/transports/transport.js";
import {
  type EventHub,
  startEventHub,
  type ZmqTransport,
  zmqTransport,
} from "../../src/runtime/transports/zmq/index.js";
import { envelope, rejection, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { TestInbound } from "./fixtures/inbound.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";
import { rawDealer, rawDealerPairs } from "./fixtures/raw-zmq.js";

// The summaries of rate-limited drop warnings come within the cases' waits.
process.env.FAN_DROP_WARN_INTERVAL_MS = "200";

const MAX = 64 * 1024;
const C = ConformanceDescriptor.name;

function transport(opts: Parameters<typeof zmqTransport>[0] = {}, log: CapturedLog = captureLog()): ZmqTransport {
  return zmqTransport({ closeGraceMs: 200, ...opts })({
    cluster: "zs",
    log: log.log,
    maxPayloadBytes: MAX,
  }) as ZmqTransport;
}

/** The port of a `tcp://host:port` endpoint. */
function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
}

/** A running hub's ports, as a hub that should bind the same ones takes them. */
function hubPorts(hub: EventHub): { publishPort: number; subscribePort: number } {
  return { publishPort: portOf(hub.publish), subscribePort: portOf(hub.subscribe) };
}

function callBody(id: string, payload: unknown): string {
  return JSON.stringify({ v: 1, id, kind: "call", service: C, method: "echo", headers: {}, payload });
}

describe("zmq server", () => {
  const log = captureLog();
  let server: ZmqTransport;
  let served: Served;
  let inbound: TestInbound;

  beforeAll(async () => {
    server = transport({}, log);
    inbound = new TestInbound();
    served = await server.serve(ConformanceDescriptor, "s1", inbound);
  });
  afterAll(() => server.close());

  it("answers a raw DEALER speaking the frames by hand", async () => {
    const answer = await rawDealer(served.endpoint, ["Craw-1", callBody("raw-1", { n: 9 })]);
    expect(String(answer?.[0])).toBe("Rraw-1");
    expect(JSON.parse(String(answer?.[1]))).toMatchObject({ kind: "reply", id: "raw-1", payload: { n: 9 } });
  });

  it("drops messages with the wrong frames, with a log line, and keeps serving", async () => {
    for (const frames of [
      ["hello"],
      ["Zid", "{}"],
      ["C", "{}"],
      [`C${"x".repeat(300)}`, "{}"],
      ["Ca", "{}", "extra"],
    ]) {
      const before = log.drops("malformed message");
      expect(await rawDealer(served.endpoint, frames, 200)).toBeUndefined();
      await until(() => log.drops("malformed message") > before);
    }
    const ok = await rawDealer(served.endpoint, ["Craw-2", callBody("raw-2", { n: 2 })]);
    expect(String(ok?.[0])).toBe("Rraw-2");
  });

  it("answers a body that is not JSON with INVALID_ARGUMENT under the caller's id", async () => {
    const answer = await rawDealer(served.endpoint, ["Cbad-json", "{not json"]);
    expect(String(answer?.[0])).toBe("Rbad-json");
    expect(JSON.parse(String(answer?.[1]))).toMatchObject({
      kind: "error",
      id: "bad-json",
      payload: { code: "INVALID_ARGUMENT" },
    });
  });

  it("answers an oversize body with RESOURCE_EXHAUSTED without decoding it", async () => {
    const answer = await rawDealer(served.endpoint, ["Cbig", callBody("big", { n: 1, text: "x".repeat(MAX) })]);
    expect(JSON.parse(String(answer?.[1]))).toMatchObject({ payload: { code: "RESOURCE_EXHAUSTED" } });
  });

  it("answers every call of a batch under its own id", async () => {
    const frames = [
      "Cb-1",
      callBody("b-1", { n: 1 }),
      "Cb-2",
      callBody("b-2", { n: 2 }),
      "Cb-3",
      callBody("b-3", { n: 3 }),
    ];
    const answers = await rawDealerPairs(served.endpoint, frames, 3);
    for (const n of [1, 2, 3]) {
      expect(JSON.parse(String(answers.get(`Rb-${n}`)))).toMatchObject({ kind: "reply", id: `b-${n}`, payload: { n } });
    }
  });

  it("a malformed batch: bad pairs are answered or dropped with a log line, the rest served", async () => {
    const before = log.drops("malformed message");
    const frames = ["Cm-1", "{not json", "Zm-2", "{}", "C", "{}", "Cm-4", callBody("m-4", { n: 4 })];
    const answers = await rawDealerPairs(served.endpoint, frames, 2);
    expect(JSON.parse(String(answers.get("Rm-1")))).toMatchObject({ id: "m-1", payload: { code: "INVALID_ARGUMENT" } });
    expect(JSON.parse(String(answers.get("Rm-4")))).toMatchObject({ kind: "reply", id: "m-4", payload: { n: 4 } });
    await until(() => log.drops("malformed message") >= before + 2);
    // An odd number of frames after the routing id is no batch: dropped whole.
    expect(await rawDealer(served.endpoint, ["Cm-5", "{}", "Cm-6", "{}", "Cm-7"], 200)).toBeUndefined();
    await until(() => log.drops("malformed message") >= before + 3);
    const ok = await rawDealer(served.endpoint, ["Cm-8", callBody("m-8", { n: 8 })]);
    expect(String(ok?.[0])).toBe("Rm-8");
  });

  it("refuses a batch over the size bound with RESOURCE_EXHAUSTED for each call, and keeps serving", async () => {
    const big = (id: string): string => callBody(id, { n: 1, text: "x".repeat(MAX * 0.6) });
    const answers = await rawDealerPairs(served.endpoint, ["Co-1", big("o-1"), "Co-2", big("o-2")], 2);
    for (const id of ["o-1", "o-2"]) {
      expect(JSON.parse(String(answers.get(`R${id}`)))).toMatchObject({ id, payload: { code: "RESOURCE_EXHAUSTED" } });
    }
    expect(log.find("refused a batch").length).toBeGreaterThan(0);
    // Too many pairs is over the bound too.
    const many: string[] = [];
    for (let i = 0; i < 257; i++) many.push(`Cq-${i}`, callBody(`q-${i}`, { n: i }));
    const refused = await rawDealerPairs(served.endpoint, many, 257);
    expect(refused.size).toBe(257);
    expect(JSON.parse(String(refused.get("Rq-256")))).toMatchObject({ payload: { code: "RESOURCE_EXHAUSTED" } });
    const ok = await rawDealer(served.endpoint, ["Co-3", callBody("o-3", { n: 3 })]);
    expect(String(ok?.[0])).toBe("Ro-3");
  });

  it("nacks an undecodable push instead of acknowledging it", async () => {
    const answer = await rawDealer(served.endpoint, ["Pbad-push", "[]"]);
    expect(String(answer?.[0])).toBe("Nbad-push");
    expect(JSON.parse(String(answer?.[1]))).toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("a push the handler keeps failing is retried, then rejected with UNAVAILABLE", async () => {
    const client = transport({ pushAttempts: 3, pushBackoffMs: 10 });
    const err = await rejection(() =>
      client.push(served.endpoint, envelope("record", { id: "never", failures: 100 }), within(5000)),
    );
    expect(err.code).toBe("UNAVAILABLE");
    expect(inbound.pushes.filter((p) => p.id === "never").map((p) => p.attempt)).toEqual([1, 2, 3]);
    await client.close();
  });

  it("a stopped instance answers UNAVAILABLE", async () => {
    const s = transport();
    const one = await s.serve(ConformanceDescriptor, "x", new TestInbound());
    await one.stop();
    const client = transport();
    const reply = await client.call(one.endpoint, envelope("echo", { n: 1 }), within(2000));
    expect(reply.payload).toMatchObject({ code: "UNAVAILABLE" });
    await Promise.all([client.close(), s.close()]);
  });
});

describe("zmq client", () => {
  it("UNAVAILABLE when no peer takes the message within sendTimeoutMs", async () => {
    const client = transport({ sendTimeoutMs: 100 });
    const t0 = Date.now();
    const err = await rejection(() => client.call("tcp://127.0.0.1:1", envelope("echo", { n: 1 }), within(5000)));
    expect(err.code).toBe("UNAVAILABLE");
    expect(Date.now() - t0).toBeLessThan(2000);
    await client.close();
  });

  it("a refused connect fails at once, marked not delivered, and the endpoint is reported down", async () => {
    const client = transport({ sendTimeoutMs: 60_000 });
    const t0 = Date.now();
    const err = await rejection(() => client.call("tcp://127.0.0.1:1", envelope("echo", { n: 1 }), within(60_000)));
    expect(err.code).toBe("UNAVAILABLE");
    expect(isNotDelivered(err)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(client.reachable?.("tcp://127.0.0.1:1")).toBe(false);
    // While down, the next call fails without waiting at all.
    const again = await rejection(() => client.call("tcp://127.0.0.1:1", envelope("echo", { n: 1 }), within(60_000)));
    expect(isNotDelivered(again)).toBe(true);
    await client.close();
  });

  it("DEADLINE_EXCEEDED when the peer accepts but never answers", async () => {
    // A TCP listener that accepts and stays silent: connected, so the call goes out and waits.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const client = transport({ sendTimeoutMs: 5000 });
    const port = (silent.address() as AddressInfo).port;
    const err = await rejection(() => client.call(`tcp://127.0.0.1:${port}`, envelope("echo", { n: 1 }), within(300)));
    expect(err.code).toBe("DEADLINE_EXCEEDED");
    // It names the endpoint and why: TCP accepted, no ZMTP greeting (a wrong port, not a slow handler).
    expect(err.message).toContain(
      `zmq tcp://127.0.0.1:${port} accepted the TCP connection but did not complete the ZMTP handshake`,
    );
    await client.close();
    silent.close();
  });

  it("after a drop, a call made between the TCP reconnect and the handshake waits for the handshake instead of failing", async () => {
    const server = transport();
    const served = await server.serve(ConformanceDescriptor, "regreet", new TestInbound());
    const target = portOf(served.endpoint);
    // A TCP relay in front of the server: the first connection passes at once, a later one only
    // after 400 ms (the window between the TCP reconnect and the ZMTP handshake, made long).
    let accepted = 0;
    const sockets = new Set<import("node:net").Socket>();
    const relay = createServer((inSock) => {
      accepted++;
      sockets.add(inSock);
      inSock.on("error", () => undefined);
      inSock.pause();
      const pipe = () => {
        const out = connect(target, "127.0.0.1", () => {
          inSock.pipe(out).pipe(inSock);
          inSock.resume();
        });
        out.on("error", () => inSock.destroy());
        inSock.on("close", () => out.destroy());
      };
      if (accepted === 1) pipe();
      else setTimeout(pipe, 400);
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    const endpoint = `tcp://127.0.0.1:${(relay.address() as AddressInfo).port}`;
    const client = transport({ sendTimeoutMs: 5000 });
    expect((await client.call(endpoint, envelope("echo", { n: 1 }), within(5000))).kind).toBe("reply");
    for (const s of sockets) s.destroy(); // the drop
    // zeromq reconnected (TCP) and the client has seen it (its monitor's connect event can come
    // after the relay's accept); the greeting waits in the relay.
    await until(() => accepted >= 2 && client.reachable(endpoint));
    const reply = await client.call(endpoint, envelope("echo", { n: 2 }), within(5000));
    expect(reply.kind).toBe("reply");
    expect((reply.payload as { n: number }).n).toBe(2);
    await client.close();
    await server.close();
    relay.close();
  });

  it("a peer that answers the greeting with something else (an HTTP server) fails the call at once, naming the endpoint", async () => {
    const http = createServer((socket) => {
      socket.on("error", () => undefined);
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    const log = captureLog();
    const client = transport({ sendTimeoutMs: 20_000 }, log);
    const port = (http.address() as AddressInfo).port;
    const t0 = Date.now();
    const err = await rejection(() =>
      client.call(`tcp://127.0.0.1:${port}`, envelope("echo", { n: 1 }), within(15_000)),
    );
    expect(err.code).toBe("UNAVAILABLE");
    expect(err.message).toContain(`zmq tcp://127.0.0.1:${port}: the ZMTP handshake failed`);
    expect(Date.now() - t0).toBeLessThan(10_000);
    // zeromq keeps retrying (every ~100 ms) and failing: one warning, not one per retry.
    await new Promise((r) => setTimeout(r, 600));
    const warned = log.records().filter((l) => String(l.msg).includes("ZMTP handshake failed"));
    expect(warned).toHaveLength(1);
    expect(warned[0]?.level).toBe(40);
    await client.close();
    http.close();
  });

  it("a connection to a peer that keeps failing the handshake is closed after idleCloseMs (no retries after)", async () => {
    let accepted = 0;
    const http = createServer((socket) => {
      accepted++;
      socket.on("error", () => undefined);
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    const client = transport({ idleCloseMs: 500 });
    const port = (http.address() as AddressInfo).port;
    await rejection(() => client.call(`tcp://127.0.0.1:${port}`, envelope("echo", { n: 1 }), within(5_000)));
    // zeromq retries every ~100 ms while the connection is open; once it is closed, no more
    // connections arrive. Before, each failed handshake's disconnect re-armed the idle timer.
    let seen = -1;
    await until(async () => {
      const before = accepted;
      await new Promise((r) => setTimeout(r, 1_000));
      seen = accepted - before;
      return seen === 0;
    }, 15_000);
    expect(seen).toBe(0);
    await client.close();
    http.close();
  });

  it("a lost connection fails the calls in flight with UNAVAILABLE, before their deadline", async () => {
    const server = transport({ closeGraceMs: 0 });
    const inbound = new TestInbound();
    const served = await server.serve(ConformanceDescriptor, "gone", inbound);
    const client = transport();
    const pending = rejection(() => client.call(served.endpoint, envelope("sleep", { ms: 30_000 }), within(20_000)));
    await until(() => inbound.active > 0);
    const t0 = Date.now();
    await server.close();
    expect((await pending).code).toBe("UNAVAILABLE");
    expect(Date.now() - t0).toBeLessThan(5000);
    await client.close();
  });

  it("rejects a non-zmq endpoint with INVALID_ARGUMENT", async () => {
    const client = transport();
    expect((await rejection(() => client.call("http://127.0.0.1:1", envelope("echo", {}), within(500)))).code).toBe(
      "INVALID_ARGUMENT",
    );
    await client.close();
  });
});

describe("zmq events", () => {
  let hub: EventHub;
  beforeAll(async () => {
    hub = await startEventHub();
  });
  afterAll(() => hub.close());

  const sub = (instanceId: string, broadcast = false): EventSubscription => ({
    source: ConformanceDescriptor,
    event: broadcast ? "flush" : "ping",
    group: "svc.G",
    instanceId,
    broadcast,
  });
  const event = (n: number, name = "ping") => ({ ...envelope(name, { n }), kind: "event" as const });

  it("without a hub, publish and subscribe fail with FAILED_PRECONDITION", async () => {
    const t = transport();
    expect((await rejection(() => t.publish(event(1), within(500)))).code).toBe("FAILED_PRECONDITION");
    expect((await rejection(() => t.subscribe(sub("i"), async () => undefined))).code).toBe("FAILED_PRECONDITION");
    await t.close();
  });

  it("a hub whose port is taken (a second process's hub) fails naming the port and the variables to set", async () => {
    // The same ports as the running hub, as a second instance of a `fanc new` zmq service binds 5571/5572.
    const t = transport({ hub: hubPorts(hub) });
    const e = await rejection(() => t.publish(event(1), within(500)));
    expect(e.code).toBe("FAILED_PRECONDITION");
    expect(e.message).toContain(`cannot bind tcp://127.0.0.1:${portOf(hub.publish)}: the port is in use`);
    expect(e.message).toContain("set FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE");
    await t.close();
  });

  it("a hub that could not bind binds on the next use once its ports are free (the failure is not kept)", async () => {
    const holder = await startEventHub();
    const ports = hubPorts(holder);
    const t = transport({ hub: ports });
    const e = await rejection(() => t.publish(event(1), within(500)));
    expect(e.message).toContain(`cannot bind tcp://127.0.0.1:${ports.publishPort}: the port is in use`);
    await holder.close();
    // The holder is gone: this transport's own hub binds those ports now, and events flow through it.
    const got: number[] = [];
    await until(async () => {
      try {
        await t.subscribe(sub("rebind"), async (env) => void got.push((env.payload as { n: number }).n));
        return true;
      } catch {
        return false;
      }
    });
    const other = transport({
      events: { publish: `tcp://127.0.0.1:${ports.publishPort}`, subscribe: `tcp://127.0.0.1:${ports.subscribePort}` },
    });
    await until(async () => {
      await other.publish(event(7), within(500));
      return got.includes(7);
    });
    expect(got).toContain(7);
    await other.close();
    await t.close();
  });

  it("a closed transport whose hub failed to bind does not bind it on a later publish", async () => {
    const holder = await startEventHub();
    const ports = hubPorts(holder);
    const t = transport({ hub: ports });
    await rejection(() => t.publish(event(1), within(500)));
    await t.close();
    await holder.close();
    // A late publish (a timer during shutdown) must fail, not bind a hub nothing will close.
    const e = await rejection(() => t.publish(event(2), within(500)));
    expect(e.message).toContain("closed");
    // The ports are free again: the holder's sockets close on zeromq's thread, a moment after
    // close() (longer on a loaded machine), so binding is retried; a hub the closed transport
    // had bound would keep them taken for good.
    let again: EventHub | undefined;
    await until(async () => {
      again = await startEventHub(ports).catch(() => undefined);
      return again !== undefined;
    });
    await again?.close();
  });

  it("detects a sequence gap, counts it and logs it", async () => {
    const log = captureLog();
    const t = transport({ events: hub }, log);
    const got: number[] = [];
    await t.subscribe(sub("gap"), async (env) => void got.push((env.payload as { n: number }).n));
    const raw = new XPublisher({ linger: 0 });
    raw.connect(hub.publish);
    const topic = ["fan", "zs", C, "ping", "g", "svc.G", "gap", ""].join("\u0000");
    const body = (n: number) => JSON.stringify(event(n));
    await until(async () => {
      await raw.send([topic, "rawpub", "1", body(1)]);
      return got.length > 0;
    });
    await raw.send([topic, "rawpub", "5", body(5)]);
    await until(() => got.includes(5));
    expect(t.eventStats().lost).toBe(3);
    expect(log.find("events lost")).toHaveLength(1);
    raw.close();
    await t.close();
  });

  it("concurrent publishes queue on the socket instead of failing (zeromq allows one send at a time)", async () => {
    const t = transport({ events: hub });
    const pub = transport({ events: hub });
    const got = new Set<number>();
    await t.subscribe(sub("many"), async (env) => void got.add((env.payload as { n: number }).n));
    await until(async () => {
      await pub.publish(event(0), within(2000));
      return got.has(0);
    });
    await Promise.all(Array.from({ length: 2000 }, (_, i) => pub.publish(event(i + 1), within(10_000))));
    await until(() => got.size === 2001, 10_000);
    await pub.close();
    await t.close();
  });

  it("a turn's events on one topic go as one message after the first, which goes alone at once; subscribers get every event in order", async () => {
    const log = captureLog();
    const t = transport({ events: hub }, log);
    const pub = transport({ events: hub });
    const got: number[] = [];
    await t.subscribe(
      { ...sub("batched"), group: "svc.Batched" },
      async (env) => void got.push((env.payload as { n: number }).n),
    );
    // A raw subscriber of its own group sees the messages themselves.
    const raw = new Subscriber({ linger: 0 });
    raw.connect(hub.subscribe);
    raw.subscribe(["fan", "zs", C, "ping", "g", "svc.Raw", "raw", ""].join("\u0000"));
    const messages: Buffer[][] = [];
    void (async () => {
      for await (const frames of raw) messages.push(frames);
    })().catch(() => undefined);
    await until(async () => {
      await pub.publish(event(0), within(2000));
      return messages.length > 0 && got.includes(0);
    });
    await new Promise((r) => setTimeout(r, 200)); // the tries' late messages
    messages.length = 0;
    got.length = 0;
    // A lone event: one message of one event, sent before the turn ends.
    await pub.publish(event(1), within(2000));
    await until(() => messages.length === 1 && got.length === 1);
    expect(messages[0]).toHaveLength(4);
    // A burst of one turn: the first alone, the other 299 in two messages (256 at most each).
    await Promise.all(Array.from({ length: 300 }, (_, i) => pub.publish(event(i + 2), within(10_000))));
    await until(() => got.length === 301, 10_000);
    await until(() => messages.reduce((n, m) => n + m.length - 3, 0) === 301);
    expect(messages.map((m) => m.length - 3)).toEqual([1, 1, 256, 43]);
    const firstSeq = Number(String(messages[0]?.[2]));
    let seq = firstSeq;
    for (const m of messages) {
      expect(Number(String(m[2]))).toBe(seq);
      seq += m.length - 3;
    }
    expect(got).toEqual(Array.from({ length: 301 }, (_, i) => i + 1));
    expect(t.eventStats()).toEqual({ lost: 0, failed: 0, malformed: 0 });
    raw.close();
    await pub.close();
    await t.close();
  });

  it("state updates (volatile) share the publisher's send queue with events: concurrent ones never fail with EBUSY", async () => {
    const t = transport({ events: hub });
    const pub = transport({ events: hub });
    const live = new Set<number>();
    const events = new Set<number>();
    await t.volatile.subscribe(sub("live"), async (env) => void live.add((env.payload as { n: number }).n));
    await t.subscribe(sub("mixed"), async (env) => void events.add((env.payload as { n: number }).n));
    await until(async () => {
      await pub.volatile.publish(event(0), within(2000));
      await pub.publish(event(0), within(2000));
      return live.has(0) && events.has(0);
    });
    // zeromq.js sends at most 512 messages synchronously per turn; the next send is delayed,
    // and a send issued meanwhile straight on the socket throws EBUSY.
    const sends: Promise<void>[] = [];
    for (let i = 1; i <= 1000; i++) {
      sends.push(pub.publish(event(i), within(10_000)));
      sends.push(pub.volatile.publish(event(i), within(10_000)));
    }
    await Promise.all(sends);
    await until(() => live.size === 1001 && events.size === 1001, 10_000);
    await pub.close();
    await t.close();
  });

  it("retries a failing handler, then drops the event with a log line", async () => {
    const log = captureLog();
    const t = transport({ events: hub }, log);
    let calls = 0;
    await t.subscribe(sub("failing"), async () => {
      calls++;
      throw new Error("handler broke");
    });
    // A subscription reaches the publisher through the hub a little later (zmq's slow joiner;
    // the full suite's load once lost the lone first event): publish until one arrives.
    for (let i = 1; calls === 0; i++) {
      if (i > 100) throw new Error("no event reached the subscription");
      await t.publish(event(i), within(2000));
      await until(() => calls > 0, 200).catch(() => undefined);
    }
    // Three attempts with backoff for each event that arrived: slow on a loaded machine.
    await until(() => t.eventStats().failed >= 1 && calls === 3 * t.eventStats().failed, 20_000);
    expect(log.find("kept failing")).toHaveLength(t.eventStats().failed);
    await t.close();
  });

  it("after unsubscribe, the group's events go to the remaining instance only", async () => {
    const a = transport({ events: hub });
    const b = transport({ events: hub });
    const pub = transport({ events: hub });
    const gotA: number[] = [];
    const gotB: number[] = [];
    const subA = await a.subscribe(sub("ua"), async (env) => void gotA.push((env.payload as { n: number }).n));
    await b.subscribe(sub("ub"), async (env) => void gotB.push((env.payload as { n: number }).n));
    await subA.close();
    // The unsubscribe reaches the publisher through the hub asynchronously: wait until three
    // probes in a row reach B (none addressed to the gone A), instead of sleeping a fixed time.
    let inARow = 0;
    for (let probe = 1000; inARow < 3; probe++) {
      if (probe > 1200) throw new Error("the publisher never learned that A unsubscribed");
      await pub.publish(event(probe), within(2000));
      const reached = await until(() => gotB.includes(probe), 1000).then(
        () => true,
        () => false,
      );
      inARow = reached ? inARow + 1 : 0;
    }
    for (let n = 0; n < 10; n++) await pub.publish(event(n), within(2000));
    await until(() => Array.from({ length: 10 }, (_, n) => n).every((n) => gotB.includes(n)));
    expect(gotA).toEqual([]);
    await Promise.all([a.close(), b.close(), pub.close()]);
  }, 120_000);

  it("a hub that is down fails publish within its deadline; once it is up, events flow", async () => {
    const probe = await startEventHub();
    const ports = {
      publishPort: Number(new URL(probe.publish.replace("tcp:", "http:")).port),
      subscribePort: Number(new URL(probe.subscribe.replace("tcp:", "http:")).port),
    };
    await probe.close();
    const t = transport({ events: { publish: probe.publish, subscribe: probe.subscribe } });
    expect((await rejection(() => t.publish(event(1), within(300)))).code).toBe("DEADLINE_EXCEEDED");
    const late = await startEventHub(ports);
    const got: number[] = [];
    await t.subscribe(sub("late"), async (env) => void got.push((env.payload as { n: number }).n));
    await t.publish(event(2), within(2000));
    await until(() => got.includes(2));
    await t.close();
    await late.close();
  });

  it("a transport can host the hub itself", async () => {
    const t = transport({ hub: {} });
    const got: number[] = [];
    await t.subscribe(sub("self", true), async (env) => void got.push((env.payload as { n: number }).n));
    await t.publish(event(7, "flush"), within(2000));
    await until(() => got.length === 1);
    expect(got).toEqual([7]);
    await t.close();
  });
});
