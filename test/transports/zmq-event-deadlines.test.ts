/**
 * zmq events batch a turn's emits on one topic into one message; each emit keeps its own
 * deadline. The turn here outlasts the short deadlines (a busy event loop, the only way a
 * deadline passes before the batch goes: the event XPUB drops at its high-water mark rather
 * than block, so no subscriber can hold the writer up): the short emits fail DEADLINE_EXCEEDED
 * with a log line naming them, the long ones of the same batch are delivered, in order.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { FanError } from "../../src/runtime/errors.js";
import type { SendOptions } from "../../src/runtime/transports/transport.js";
import {
  type EventHub,
  startEventHub,
  type ZmqTransport,
  zmqTransport,
} from "../../src/runtime/transports/zmq/index.js";
import { envelope, until, within } from "./conformance.js";
import { ConformanceDescriptor } from "./fixtures/descriptor.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";

const subscription = (instanceId: string) => ({
  source: ConformanceDescriptor,
  event: "ping",
  group: `svc.${instanceId}`,
  instanceId,
  broadcast: false,
});

function transport(hub: EventHub, log: CapturedLog = captureLog()): ZmqTransport {
  return zmqTransport({ closeGraceMs: 200, events: hub })({
    cluster: "zd",
    log: log.log,
    maxPayloadBytes: 64 * 1024,
  }) as ZmqTransport;
}

const event = (n: number) => ({ ...envelope("ping", { n }), kind: "event" as const });

let hub: EventHub;
beforeAll(async () => {
  hub = await startEventHub();
});
afterAll(() => hub.close());

type Outcome = { ok: true; at: number } | { ok: false; at: number; code: string };

/** Emits `plan` in this turn: `[n, options]` pairs, the event `{ n }` under its options. */
function emitAll(pub: ZmqTransport, plan: Array<[number, SendOptions]>) {
  const envs = plan.map(([n]) => event(n));
  const outcomes = plan.map(
    ([, opts], i): Promise<Outcome> =>
      pub.publish(envs[i] as ReturnType<typeof event>, opts).then(
        () => ({ ok: true, at: Date.now() }),
        (e: unknown) => ({ ok: false, at: Date.now(), code: FanError.is(e) ? e.code : String(e) }),
      ),
  );
  return { envs, outcomes: Promise.all(outcomes) };
}

/** A subscriber on `instanceId`'s own group and a publisher, past the first event's round trip. */
async function pair(instanceId: string, log: CapturedLog) {
  const sub = transport(hub);
  const pub = transport(hub, log);
  const got: number[] = [];
  await sub.subscribe(subscription(instanceId), async (env) => void got.push((env.payload as { n: number }).n));
  await until(async () => {
    await pub.publish(event(0), within(2000));
    return got.includes(0);
  });
  await new Promise((r) => setTimeout(r, 100)); // the tries' late deliveries
  got.length = 0;
  return { sub, pub, got };
}

/**
 * The long emits resolved and are delivered, in order, and nothing else is; each short one
 * failed DEADLINE_EXCEEDED, not before its deadline, with a log line naming it, and took no
 * sequence number (the subscriber sees no gap).
 */
async function expectOwnDeadlines(
  run: { sub: ZmqTransport; got: number[] },
  log: CapturedLog,
  plan: Array<[number, SendOptions]>,
  envs: Array<{ id: string }>,
  settled: Outcome[],
  long: SendOptions,
): Promise<void> {
  plan.forEach(([, opts], i) => {
    if (opts === long) expect(settled[i], `emit ${i + 1}`).toMatchObject({ ok: true });
    else {
      expect(settled[i], `emit ${i + 1}`).toMatchObject({ ok: false, code: "DEADLINE_EXCEEDED" });
      expect(settled[i]?.at).toBeGreaterThanOrEqual(opts.deadline);
    }
  });
  const delivered = plan.filter(([, opts]) => opts === long).map(([n]) => n);
  await until(() => run.got.length >= delivered.length);
  await new Promise((r) => setTimeout(r, 100)); // nothing else arrives
  expect(run.got).toEqual(delivered);
  expect(run.sub.eventStats()).toEqual({ lost: 0, failed: 0, malformed: 0 });
  const dropped = log.find("past their deadline").flatMap((r) => r.ids as string[]);
  const short = envs.filter((_, i) => plan[i]?.[1] !== long).map((e) => e.id);
  expect(dropped.sort()).toEqual(short.sort());
}

it("a turn that outlasts a batched emit's deadline fails that emit alone; the batch's later-deadline emits are delivered in order", async () => {
  const log = captureLog();
  const run = await pair("d1", log);
  // One turn: the first emit goes alone at once, the other five batch at the turn's end.
  const long = within(10_000);
  const short = within(20);
  const plan: Array<[number, SendOptions]> = [
    [1, long],
    [2, short],
    [3, short],
    [4, long],
    [5, short],
    [6, long],
  ];
  const { envs, outcomes } = emitAll(run.pub, plan);
  const busyUntil = short.deadline + 30;
  while (Date.now() < busyUntil); // the turn outlasts the short deadline before the batch goes
  await expectOwnDeadlines(run, log, plan, envs, await outcomes, long);
  await run.pub.close();
  await run.sub.close();
});

it("a batch waiting in the writer behind other sends: the emits whose deadline passes meanwhile fail alone, the rest are sent", async () => {
  const log = captureLog();
  const run = await pair("d2", log);
  let updates = 0;
  await run.sub.volatile.subscribe(subscription("d2live"), async () => void updates++);
  await until(async () => {
    await run.pub.volatile.publish(event(0), within(2000));
    return updates > 0;
  });
  // State updates fill the publisher's writer in this turn and the events queue behind them.
  // zeromq.js sends 512 messages per turn, so the queue takes several turns: the short
  // deadline passes before the writer reaches the events.
  const updatesSent = Array.from({ length: 3000 }, (_, i) => run.pub.volatile.publish(event(i), within(10_000)));
  const long = within(10_000);
  const short = within(3);
  const plan: Array<[number, SendOptions]> = [
    [1, long],
    [2, short],
    [3, long],
    [4, short],
    [5, long],
  ];
  const { envs, outcomes } = emitAll(run.pub, plan);
  const settled = await outcomes;
  await Promise.all(updatesSent);
  // The events did wait past the short deadline (else this test shows nothing).
  expect(settled[0]?.at).toBeGreaterThanOrEqual(short.deadline);
  await expectOwnDeadlines(run, log, plan, envs, settled, long);
  await run.pub.close();
  await run.sub.close();
});
