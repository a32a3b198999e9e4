/**
 * The event hub zmq events go through: an XSUB/XPUB forwarder (zmq's "Espresso" pattern).
 * Publishers connect to its XSUB side, subscribers to its XPUB side; subscriptions flow up to
 * every publisher, which is how a publisher learns who subscribes (see events.ts). A hub keeps
 * no messages: PUB/SUB is at-most-once, and subscribers detect drops by sequence number.
 *
 * Run one per cluster: inside an App (`zmqTransport({ hub: { ... } })`) or on its own
 * (`startEventHub()`), and give every zmq transport its two endpoints as `events`.
 */
import { XPublisher, XSubscriber, Proxy as ZmqProxy } from "zeromq";
import { Code, FanError } from "../../errors.js";

/** Where a hub binds. */
export interface EventHubOptions {
  /** Interface to bind; default 127.0.0.1. */
  readonly host?: string;
  /** Port publishers connect to; default 0 (chosen by the OS). */
  readonly publishPort?: number;
  /** Port subscribers connect to; default 0 (chosen by the OS). */
  readonly subscribePort?: number;
}

/** The two endpoints of a hub, as every zmq transport's `events` option takes them. */
export interface EventHubEndpoints {
  /** Publishers connect here (the hub's XSUB). */
  readonly publish: string;
  /** Subscribers connect here (the hub's XPUB). */
  readonly subscribe: string;
}

/** A running hub. */
export interface EventHub extends EventHubEndpoints {
  close(): Promise<void>;
}

/** Starts an event hub; its forwarding runs on a zeromq worker thread. */
export async function startEventHub(opts: EventHubOptions = {}): Promise<EventHub> {
  const host = opts.host ?? "127.0.0.1";
  const xsub = new XSubscriber({ linger: 0, receiveHighWaterMark: 0 });
  const xpub = new XPublisher({ linger: 0, sendHighWaterMark: 100_000 });
  try {
    await bindHub(xsub, host, opts.publishPort, "FAN_ZMQ_EVENTS_PUBLISH");
    await bindHub(xpub, host, opts.subscribePort, "FAN_ZMQ_EVENTS_SUBSCRIBE");
  } catch (e) {
    xsub.close();
    xpub.close();
    throw e;
  }
  const publish = advertised(xsub.lastEndpoint, host);
  const subscribe = advertised(xpub.lastEndpoint, host);
  const proxy = new ZmqProxy(xsub, xpub);
  const running = proxy.run().catch(() => undefined);
  return {
    publish,
    subscribe,
    close: async () => {
      proxy.terminate();
      await Promise.race([running, new Promise((r) => setTimeout(r, 1000))]);
    },
  };
}

/**
 * Binds one of the hub's sockets; a port in use (another process hosts a hub there, as a second
 * instance of a `fanc new` service would) is an error naming the port and what to set instead.
 */
async function bindHub(
  socket: XSubscriber | XPublisher,
  host: string,
  p: number | undefined,
  env: string,
): Promise<void> {
  const address = `tcp://${host}:${port(p)}`;
  try {
    await socket.bind(address);
  } catch (e) {
    if ((e as { code?: string }).code !== "EADDRINUSE") throw e;
    throw new FanError(
      Code.FAILED_PRECONDITION,
      `the zmq event hub cannot bind ${address}: the port is in use (another process's hub?); to use that hub instead, set FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE to its endpoints (${env} is ${address}), or give this hub other ports`,
      { cause: e },
    );
  }
}

function port(p: number | undefined): string {
  return p !== undefined && p > 0 ? String(p) : "*";
}

function advertised(lastEndpoint: string | null, host: string): string {
  const p = new URL((lastEndpoint ?? "").replace(/^tcp:/, "http:")).port;
  return `tcp://${host === "0.0.0.0" || host === "*" ? "127.0.0.1" : host}:${p}`;
}
