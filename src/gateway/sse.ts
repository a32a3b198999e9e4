/**
 * Server-Sent Events: `GET /_fan/events/<service>/<event>` streams every event of a service
 * (one `data:` line of wire JSON each), `GET /_fan/states/<service>/<state>` a state's value
 * (the current value first, then the value after every change). One broadcast subscription per
 * event is shared by every browser watching it (made on the first, closed after the last), on
 * the event transport the service's instances publish on, as `fanc subscribe` subscribes; one
 * watch view (replica) per state likewise, on its owners' transport, and per shard of a sharded
 * state (`?shard=N`); a resync that brings the value last sent sends nothing.
 * `?shard=all` streams every shard of a sharded state on one stream, from one shared
 * `watchAll()` set: each line names its shard, `{"shard":N,"value":V}` for a value and
 * `{"shard":N,"status":S,"reason":R}` when that shard's status changes (a new stream gets
 * every shard's status, then every value held).
 */
import type { ServerResponse } from "node:http";
import type { Logger } from "pino";
import { EVENT_TRANSPORTS, eventTransport, eventTransportChoice } from "../cli/events.js";
import type { App } from "../runtime/app/app.js";
import type { StateWatchOptions } from "../runtime/states/app-states.js";
import { codec } from "../runtime/codec/index.js";
import type {
  EventDescriptor,
  ServiceDescriptor,
  ShardedStateHandle,
  ShardedStateSet,
  StateDescriptor,
  StateHandle,
  StateView,
  TransportName,
} from "../runtime/descriptor.js";
import { Code, FanError } from "../runtime/errors.js";
import { nextEnvelopeId } from "../runtime/ids.js";
import { gatewayRefusal } from "./exposure.js";
import type { Unsubscribe } from "../runtime/transports/transport.js";

/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;

/** An open event stream on a response. */
export interface SseStream {
  send(data: string): void;
  close(): void;
  /** Ends the stream with a last `event: fan-error` whose data is the coded error's JSON. */
  fail(error: { readonly code: string; readonly message: string }): void;
}

/** The headers of an event stream (a HEAD gets them alone). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
  // A stream's connection is never reused: once it ends, it closes.
  connection: "close",
};

/** A client this far behind (bytes queued in the gateway) is cut off rather than buffered without bound. */
export const MAX_BUFFERED = 1024 * 1024;

/**
 * Starts an event stream on `res` (status, headers, a first comment so EventSource opens).
 * `name` (the stream's path) names it in the warn line when a stalled client is cut off: the
 * browser reconnects, and a state stream restarts from the current value.
 */
export function openSse(res: ServerResponse, headers: Record<string, string>, log: Logger, name: string): SseStream {
  res.writeHead(200, { ...headers, ...SSE_HEADERS });
  const write = (chunk: string): void => {
    if (res.destroyed) return;
    res.write(chunk);
    if (res.writableLength <= MAX_BUFFERED) return;
    log.warn(
      { stream: name, buffered: res.writableLength },
      "closed an event stream whose client does not read (more than 1 MiB queued); it reconnects",
    );
    res.destroy();
  };
  write("retry: 2000\n: subscribed\n\n");
  const timer = setInterval(() => write(": keepalive\n\n"), KEEPALIVE_MS);
  timer.unref();
  res.once("close", () => clearInterval(timer));
  return {
    send: (data) => write(`data: ${data}\n\n`),
    close: () => {
      clearInterval(timer);
      res.end();
    },
    fail: (error) => {
      clearInterval(timer);
      write(`event: fan-error\ndata: ${JSON.stringify(error)}\n\n`);
      res.end();
    },
  };
}

/** A number per descriptor object (`keyOf`). */
const ids = new WeakMap<ServiceDescriptor, number>();
let nextId = 0;

/**
 * The key of what streams share: the service's descriptor object as well as the names, so
 * that after a reload changed a service (a new descriptor, catalog.ts) new streams subscribe
 * with its new schemas while those opened before keep theirs.
 */
function keyOf(svc: ServiceDescriptor, ...names: readonly string[]): string {
  let id = ids.get(svc);
  if (id === undefined) {
    id = nextId++;
    ids.set(svc, id);
  }
  return [svc.name, id, ...names].join("\u0000");
}

/** A service's event transport as chosen now, and whether its instances said so (`known`) or it is a guess. */
interface Choice {
  readonly via: TransportName;
  /** False when no registered instance advertises an event transport (none registered, an owner restarting). */
  readonly known: boolean;
}

/**
 * The event transport of a service, for its event and state streams alike: the one its
 * instances publish on (`fanc subscribe`'s default, read from discovery). When they publish on
 * one this App did not open, an UNAVAILABLE error naming it: a stream on another would stay
 * silent. With no instance advertising one (an owner restarting), `previous` when given (the
 * transport they published on before), else the first this App has open, as a guess (`known`
 * false) that event streams check again when the instances change.
 */
async function chooseVia(app: App, svc: ServiceDescriptor, previous?: TransportName): Promise<Choice> {
  const open = new Set(app.transportNames());
  const usable = EVENT_TRANSPORTS.filter((t) => svc.transports.includes(t) && open.has(t));
  const instances = (await app.watch(svc.name)).instances();
  const { via: theirs, warning } = eventTransportChoice(svc, instances);
  // Instances publishing on different transports: said once per distinct case, not at every resubscription.
  if (warning !== undefined && !warned.has(warning)) {
    warned.add(warning);
    app.log.warn({ service: svc.name }, `gateway streams: ${warning}`);
  }
  // Only a transport an instance records (or advertises) is theirs; without one, it is a guess.
  if (theirs !== undefined && instances.some((i) => i.events === theirs || i.endpoints[theirs] !== undefined)) {
    if (usable.includes(theirs)) return { via: theirs, known: true };
    throw gatewayRefusal(
      Code.UNAVAILABLE,
      `${svc.name} publishes on ${theirs}, which the gateway did not open; add it to --transports (open: ${[...open].join(", ")})`,
    );
  }
  if (previous !== undefined && usable.includes(previous)) return { via: previous, known: false };
  const via = usable[0];
  if (via === undefined)
    throw gatewayRefusal(
      Code.UNAVAILABLE,
      `${svc.name} allows no event transport the gateway has open (it allows ${svc.transports.join(", ")}; open: ${[...open].join(", ")})`,
    );
  return { via, known: false };
}

/** The disagreement warnings logged already (`chooseVia`). */
const warned = new Set<string>();

/** `chooseVia`'s transport alone (state streams ask it again at each resubscription). */
async function eventVia(app: App, svc: ServiceDescriptor, previous?: TransportName): Promise<TransportName> {
  return (await chooseVia(app, svc, previous)).via;
}

interface Topic {
  readonly listeners: Set<(data: string) => void>;
  /** Resolves once the first subscription is in place. */
  ready: Promise<void>;
  /** The transport subscribed on, and the subscription there. */
  via: TransportName | undefined;
  sub: Promise<Unsubscribe> | undefined;
  /** Stops following the service's instances. */
  unwatch: (() => void) | undefined;
  /** Re-evaluations run one after another. */
  chain: Promise<void>;
  closed: boolean;
}

/** Shared event subscriptions, fanned out to every stream that watches them. */
export class EventHub {
  readonly #topics = new Map<string, Topic>();

  constructor(
    private readonly app: App,
    private readonly log: Logger,
  ) {}

  /**
   * Adds `fn` to the event's listeners; resolves once the subscription is in place, with its
   * removal. The topic follows the service's instances while it lives: when they come to
   * publish on another transport than the one subscribed on (the first browser came while none
   * was registered, or the owners moved), it subscribes there and closes the old subscription.
   */
  async attach(svc: ServiceDescriptor, event: EventDescriptor, fn: (data: string) => void): Promise<() => void> {
    const key = keyOf(svc, event.name);
    let topic = this.#topics.get(key);
    if (topic === undefined) {
      const made: Topic = {
        listeners: new Set(),
        ready: Promise.resolve(),
        via: undefined,
        sub: undefined,
        unwatch: undefined,
        chain: Promise.resolve(),
        closed: false,
      };
      made.ready = this.#open(made, svc, event);
      topic = made;
      this.#topics.set(key, topic);
      made.ready.catch(() => {
        if (this.#topics.get(key) === made) this.#topics.delete(key);
        this.#shut(made);
      });
    }
    const t = topic;
    t.listeners.add(fn);
    try {
      await t.ready;
    } catch (e) {
      t.listeners.delete(fn);
      throw e;
    }
    return () => {
      t.listeners.delete(fn);
      if (t.listeners.size > 0 || this.#topics.get(key) !== t) return;
      this.#topics.delete(key);
      this.#shut(t);
    };
  }

  /** The topic's first subscription, then a watch of the service's instances that moves it when they move. */
  async #open(t: Topic, svc: ServiceDescriptor, event: EventDescriptor): Promise<void> {
    const first = await chooseVia(this.app, svc);
    t.via = first.via;
    t.sub = this.#subscribe(t, svc, event, first.via);
    await t.sub;
    if (t.closed) return;
    const set = await this.app.watch(svc.name);
    if (t.closed) return;
    t.unwatch = set.onChange(() => {
      t.chain = t.chain.then(() => this.#recheck(t, svc, event));
    });
    // Instances may have changed between the choice and the watch.
    if (!first.known) t.chain = t.chain.then(() => this.#recheck(t, svc, event));
  }

  /** Subscribes again on the instances' transport when it is not the one subscribed on. */
  async #recheck(t: Topic, svc: ServiceDescriptor, event: EventDescriptor): Promise<void> {
    if (t.closed) return;
    let choice: Choice;
    try {
      choice = await chooseVia(this.app, svc, t.via);
    } catch (e) {
      this.log.warn(
        { service: svc.name, event: event.name, via: t.via, err: (e as Error).message },
        "the event stream's service moved to a transport the gateway cannot subscribe on; it stays on the old one",
      );
      return;
    }
    if (!choice.known || choice.via === t.via || t.closed) return;
    const old = t.sub;
    const next = this.#subscribe(t, svc, event, choice.via);
    try {
      await next;
    } catch (e) {
      this.log.warn(
        { service: svc.name, event: event.name, via: choice.via, err: (e as Error).message },
        "subscribing an event stream on its service's transport failed; it stays on the old one",
      );
      return;
    }
    if (t.closed) {
      void next.then((s) => s.close()).catch(() => undefined);
      return;
    }
    this.log.info(
      { service: svc.name, event: event.name, from: t.via, to: choice.via },
      "event stream moved to its service's transport",
    );
    t.via = choice.via;
    t.sub = next;
    void old
      ?.then((s) => s.close())
      .catch((e: unknown) => this.log.warn({ err: (e as Error).message }, "closing an event subscription failed"));
  }

  #subscribe(t: Topic, svc: ServiceDescriptor, event: EventDescriptor, via: TransportName): Promise<Unsubscribe> {
    const sub = this.#subscribeOn(t, svc, event, via);
    if (via !== "zmq") return sub;
    // zmq carries events through an event hub only: say how `fanc gateway` is given one.
    return sub.catch((e: unknown) => {
      if (!FanError.is(e) || e.code !== Code.FAILED_PRECONDITION) throw e;
      throw gatewayRefusal(
        Code.UNAVAILABLE,
        `the events of ${svc.name} come over zmq here, which needs an event hub: start the gateway with FAN_ZMQ_EVENTS_PUBLISH and FAN_ZMQ_EVENTS_SUBSCRIBE set to the hub's endpoints, as its services have them (or FAN_ZMQ_HUB=<publish>,<subscribe>; in code, zmqTransport({ events: { publish, subscribe } }))`,
      );
    });
  }

  #subscribeOn(t: Topic, svc: ServiceDescriptor, event: EventDescriptor, via: TransportName): Promise<Unsubscribe> {
    const c = codec<Record<string, unknown>>(event.payload);
    return eventTransport(this.app, via).subscribe(
      {
        source: svc,
        event: event.name,
        group: "fan.gateway",
        instanceId: `gateway-${process.pid}-${nextEnvelopeId()}`,
        broadcast: true,
      },
      async (env) => {
        let data: string;
        try {
          data = JSON.stringify(c.encode(c.decode(env.payload, event.name), event.name));
        } catch (e) {
          this.log.warn(
            { service: svc.name, event: event.name, err: (e as Error).message },
            "dropped an event that does not match the IDL",
          );
          return;
        }
        for (const l of t.listeners) l(data);
      },
    );
  }

  /** Stops the topic's watch and closes its subscription. */
  #shut(t: Topic): Promise<void> {
    t.closed = true;
    t.unwatch?.();
    t.unwatch = undefined;
    const sub = t.sub;
    return t.chain.then(async () => {
      // A subscription that failed has nothing to close (its error went to the browser).
      const u = await sub?.catch(() => undefined);
      try {
        await u?.close();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, "closing an event subscription failed");
      }
    });
  }

  /** Closes every subscription. */
  async close(): Promise<void> {
    const topics = [...this.#topics.values()];
    this.#topics.clear();
    await Promise.allSettled(topics.map((t) => this.#shut(t)));
  }
}

interface Watched {
  readonly listeners: Set<(data: string) => void>;
  readonly view: StateView<unknown>;
  /** Resolves once the replica has a value (rejects when none comes in time). */
  readonly first: Promise<void>;
  /** The last value sent, as JSON (a new stream starts with it). */
  last: string | undefined;
}

/** The shared `watchAll()` set behind the `?shard=all` streams of one state. */
interface WatchedAll {
  readonly listeners: Set<(data: string) => void>;
  readonly set: ShardedStateSet<unknown>;
  /** Each shard's last value line, by shard number. */
  readonly values: (string | undefined)[];
}

/** How long the first stream of a state waits for its owner's value before answering an error. */
const FIRST_VALUE_MS = 10_000;

/**
 * Shared state replicas: one watch view per state, whatever the number of streams on it (made
 * for the first, closed after the last). A stream gets the current value, then every change.
 */
export class StateHub {
  readonly #watched = new Map<string, Watched>();
  readonly #all = new Map<string, WatchedAll>();

  /** Watches subscribe on the transport the state's owners publish on, asked again at each resubscription. */
  readonly #opts: StateWatchOptions;
  /** The transport each service's owners were last seen to publish on. */
  readonly #via = new Map<string, TransportName>();

  constructor(private readonly app: App) {
    this.#opts = {
      updatesVia: async (svc) => {
        const via = await eventVia(app, svc, this.#via.get(svc.name));
        this.#via.set(svc.name, via);
        return via;
      },
    };
  }

  /** `shard`: the one shard of a sharded state this stream follows (undefined for a state that is not sharded). */
  async attach(
    svc: ServiceDescriptor,
    state: StateDescriptor,
    shard: number | undefined,
    fn: (data: string) => void,
  ): Promise<() => void> {
    const key = keyOf(svc, state.name, String(shard ?? ""));
    let w = this.#watched.get(key);
    if (w === undefined) {
      const c = codec<unknown>(state.schema);
      const handle = this.app.state(svc, state.name, this.#opts);
      const view =
        shard === undefined
          ? (handle as StateHandle<unknown>).watch()
          : (handle as ShardedStateHandle<unknown>).watch({ shard });
      const listeners = new Set<(data: string) => void>();
      const made: Watched = {
        listeners,
        view,
        first: view.ready(FIRST_VALUE_MS).then(() => undefined),
        last: undefined,
      };
      view.subscribe((change) => {
        const data = JSON.stringify(c.encode(change.value, state.name));
        // A resync's snapshot of the value already sent is not sent again (docs/decisions.md).
        if (change.cause === "snapshot" && data === made.last) return;
        made.last = data;
        for (const l of listeners) l(data);
      });
      w = made;
      this.#watched.set(key, w);
      w.first.catch(() => {
        if (this.#watched.get(key) === made) this.#watched.delete(key);
        void view.close();
      });
    }
    const t = w;
    await t.first;
    if (t.last === undefined && t.view.current !== undefined)
      t.last = JSON.stringify(codec(state.schema).encode(t.view.current, state.name));
    if (t.last !== undefined) fn(t.last);
    t.listeners.add(fn);
    return () => {
      t.listeners.delete(fn);
      if (t.listeners.size > 0 || this.#watched.get(key) !== t) return;
      this.#watched.delete(key);
      void t.view.close();
    };
  }

  /**
   * Every shard of a sharded state on one stream (`?shard=all`): `fn` gets each shard's status,
   * then each value held, at once (no wait for a first value: a shard with no owner is reported
   * as `owner-absent`, not answered as an error), then every change and status change of any shard.
   */
  attachAll(svc: ServiceDescriptor, state: StateDescriptor, fn: (data: string) => void): () => void {
    const key = keyOf(svc, state.name, "all");
    let w = this.#all.get(key);
    if (w === undefined) {
      const c = codec<unknown>(state.schema);
      const set = (this.app.state(svc, state.name, this.#opts) as ShardedStateHandle<unknown>).watchAll();
      const listeners = new Set<(data: string) => void>();
      const made: WatchedAll = { listeners, set, values: [] };
      for (const v of set.views) {
        v.subscribe((change) => {
          // A snapshot of a shard whose owner has no value yet: nothing to send (its status says live).
          if (change.value === undefined) return;
          const data = JSON.stringify({ shard: v.shard, value: c.encode(change.value, state.name) });
          if (change.cause === "snapshot" && data === made.values[v.shard]) return;
          made.values[v.shard] = data;
          for (const l of listeners) l(data);
        });
        v.onStatus((status, reason) => {
          const data = statusLine(v.shard, status, reason);
          for (const l of listeners) l(data);
        });
      }
      w = made;
      this.#all.set(key, w);
    }
    const t = w;
    for (const v of t.set.views) fn(statusLine(v.shard, v.status, v.reason));
    for (const v of t.set.views) {
      const held = t.values[v.shard];
      if (held !== undefined) fn(held);
    }
    t.listeners.add(fn);
    return () => {
      t.listeners.delete(fn);
      if (t.listeners.size > 0 || this.#all.get(key) !== t) return;
      this.#all.delete(key);
      void t.set.close();
    };
  }

  async close(): Promise<void> {
    const views = [...this.#watched.values()].map((w) => w.view);
    const sets = [...this.#all.values()].map((w) => w.set);
    this.#watched.clear();
    this.#all.clear();
    await Promise.allSettled([...views.map((v) => v.close()), ...sets.map((s) => s.close())]);
  }
}

/** One shard's status on a `?shard=all` stream (the reason omitted when there is none). */
function statusLine(shard: number, status: string, reason: string | undefined): string {
  return JSON.stringify(reason === undefined ? { shard, status } : { shard, status, reason });
}
