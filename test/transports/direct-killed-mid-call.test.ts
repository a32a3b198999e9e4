/**
 * tcp and zmq between processes: a server SIGKILLed with 16 calls in flight on its connection.
 * The connection's loss fails them all at once with one error, which the retry budget counts as
 * one event (call/lost.ts): every call that may be retried is answered by the instance still
 * alive. Counted one per call, the budget let four of them through, and the floor ten more.
 */
import { describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import { shortId } from "../../src/runtime/ids.js";
import { Conformance } from "./fixtures/generated/fan/conformance.js";
import { callNames, killAndSettle, sleepCalls, Survivor } from "./fixtures/killed-mid-call.js";
import { captureLog } from "./fixtures/log.js";
import { startPeer } from "./fixtures/peers.js";
import { undoAfterEach } from "./fixtures/process-cleanup.js";
import { up } from "./processes.js";

const ETCD = "etcd://127.0.0.1:2379";
const TIMEOUT_MS = 8000;

describe.runIf(up.etcd)("a tcp or zmq server SIGKILLed with calls in flight", () => {
  const { peers, apps } = undoAfterEach(async () => undefined);

  it.each(["tcp", "zmq"] as const)(
    "%s: 16 calls lost with the connection are retried on the other instance",
    async (transport) => {
      const cluster = `lost-${transport}-${process.pid}-${shortId()}`;
      const newApp = (): App => {
        const app = createApp({ cluster, discovery: ETCD, logger: captureLog().log, transports: { [transport]: {} } });
        apps.push(app);
        return app;
      };
      const peer = await startPeer({ TRANSPORT: transport, CLUSTER: cluster });
      peers.push(peer);
      const caller = newApp();
      await caller.start();
      const set = await caller.watch(Conformance.descriptor.name);
      const client = caller.client(Conformance, { transport, policy: { breaker: false } });
      const outcomes = sleepCalls(client, 16, 2, TIMEOUT_MS);
      await peer.waitFor(() => peer.lines.filter((l) => "sleeping" in l).length === 16, 10_000);
      // Started once the peer holds every call: it can take none of them.
      const survivor = new Survivor();
      await newApp()
        .serve(Conformance, survivor, { transports: [transport] })
        .start();
      const deadline = Date.now() + 10_000;
      while (set.instances().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const { done } = await killAndSettle(peer, outcomes);
      for (const o of done) expect(o).toMatchObject({ code: "OK", message: "" });
      expect(survivor.started.sort()).toEqual(callNames(16));
    },
    60_000,
  );
});
