/**
 * The publishing side of a service: events (`emit`) and replicated states (`state(name)`),
 * plus `listen`, the subscription behind a client's `events.x.subscribe(fn)`. An event
 * inherits the trace of the call that emits it.
 */
import type { Logger } from "pino";
import type { Infra } from "../app/infra.js";
import { traceProduced } from "../telemetry/calls.js";
import { codec } from "../codec/index.js";
import type {
  EventDescriptor,
  EventStream,
  ServiceDescriptor,
  Sharded,
  ShardedStateHandle,
  StateHandle,
  Subscription,
} from "../descriptor.js";
import { Code, FanError } from "../errors.js";
import { nextEnvelopeId } from "../ids.js";
import { type FollowHost, followedSubscription } from "./followed-events.js";
import type { StateOwners } from "../states/index.js";
import type { StatePublisherOf } from "../states/publishers.js";
import type { Envelope, EnvelopeHeaders, EventSubscription } from "../transports/transport.js";

const NEVER: AbortSignal = new AbortController().signal;
/** How long a publish may block before it fails with DEADLINE_EXCEEDED. */
const PUBLISH_TIMEOUT_MS = 10_000;

/**
 * Event names and payload types of a generated client type (its `events.x` are
 * `EventStream<Payload>`); any name and payload when the client type is not known.
 */
export type EventsOf<C> = C extends { readonly events: infer E }
  ? { [K in keyof E]: E[K] extends EventStream<infer T> ? T : never }
  : Record<string, unknown>;

/** State names and value types of a generated client type (its `states.x` are `StateHandle<T>`). */
export type StatesOf<C> = C extends { readonly states: infer S }
  ? {
      [K in keyof S]: S[K] extends ShardedStateHandle<infer T>
        ? Sharded<T>
        : S[K] extends StateHandle<infer T>
          ? T
          : never;
    }
  : Record<string, unknown>;

/**
 * Events and states of one service, typed by the service's generated client type `C`:
 * `app.publisher(PublicWines).emit("wineChanged", { wine })` checks the name and the payload.
 */
export class Publisher<C = unknown> {
  readonly #service: ServiceDescriptor;
  readonly #infra: Infra;
  readonly #states: StateOwners;
  readonly #log: Logger;

  constructor(service: ServiceDescriptor, infra: Infra, states: StateOwners, log: Logger) {
    this.#service = service;
    this.#infra = infra;
    this.#states = states;
    this.#log = log;
  }

  /** Publishes event `name` with its typed payload to every subscribing service. */
  async emit<K extends keyof EventsOf<C> & string>(
    name: K,
    payload: EventsOf<C>[K],
    headers: Readonly<Record<string, string>> = {},
  ): Promise<void> {
    const ev = this.#event(name);
    await this.#infra.open();
    const transport = this.#infra.eventTransport(this.#service);
    const values = transport === this.#infra.local && this.#infra.local.acceptsValues;
    const c = codec(ev.payload);
    const traced: EnvelopeHeaders = { ...headers };
    traceProduced(this.#service.name, name, "event", traced);
    const env: Envelope = {
      v: 1,
      id: nextEnvelopeId(),
      kind: "event",
      service: this.#service.name,
      method: name,
      version: this.#service.version,
      headers: traced,
      payload: values ? c.complete(payload, name) : c.encode(payload, name),
      form: values ? "value" : "wire",
    };
    await transport.publish(env, { signal: NEVER, deadline: Date.now() + PUBLISH_TIMEOUT_MS });
  }

  /** The owner of state `name` (`set`, and `patch` for `@delta` states); this App must serve the service. */
  state<K extends keyof StatesOf<C> & string>(name: K): StatePublisherOf<StatesOf<C>[K]> {
    return this.#states.owner(this.#service, name) as unknown as StatePublisherOf<StatesOf<C>[K]>;
  }

  /** Receives every event `name` (its own group): what `client.events.x.subscribe(fn)` does. */
  async listen(name: string, fn: (event: unknown) => void | Promise<void>, group: string): Promise<Subscription> {
    const ev = this.#event(name);
    await this.#infra.open();
    const c = codec(ev.payload);
    const sub: EventSubscription = {
      source: this.#service,
      event: name,
      group,
      instanceId: group,
      broadcast: false,
      ephemeral: true,
    };
    const infra = this.#infra;
    const host: FollowHost = {
      stopping: NEVER,
      eventTransport: (s) => infra.eventTransport(s),
      eventCarriers: () => infra.eventCarriers(),
      transport: (n) => infra.transport(n),
      directory: () => infra.discovery.directory,
    };
    // As a served subscription does: also where the service's instances are registered as publishing.
    const deliver = async (env: Envelope): Promise<void> => {
      let value: unknown;
      try {
        value = env.form === "value" ? c.complete(env.payload, name) : c.decode(env.payload, name);
      } catch (e) {
        this.#log.warn({ err: e, targetService: this.#service.name, event: name }, "undecodable event dropped");
        return;
      }
      await fn(value);
    };
    const unsub = await followedSubscription(host, sub, deliver, this.#log, `a client subscription (${group})`);
    return { unsubscribe: () => unsub.close() };
  }

  #event(name: string): EventDescriptor {
    const ev = this.#service.events[name];
    if (ev === undefined) throw new FanError(Code.UNIMPLEMENTED, `${this.#service.name} has no event ${name}`);
    return ev;
  }
}
