/**
 * The redis transport's lossy fan-out (`Transport.volatile`), which replicated states use for
 * their updates: PUBLISH on the shared command connection, SUBSCRIBE on one dedicated
 * connection per transport, one channel per (service, state). Nothing is stored or
 * acknowledged, so an update costs one command for the owner and one read per watcher process
 * (a stream with a consumer group per watcher cost an XREADGROUP and an XACK per watcher). What
 * is published while a subscriber is away is lost; states see the gap in their sequence numbers
 * and take a snapshot. After a reconnection every channel is subscribed again.
 */
import type { Logger } from "pino";
import { Code, FanError } from "../../errors.js";
import { decodeEnvelope, encodeEnvelope } from "../../codec/wire.js";
import type { Envelope, EventDelivery, EventSubscription, SendOptions, Unsubscribe } from "../transport.js";
import { type RedisClient, ready, send, unavailable } from "./clients.js";
import { eventKey } from "./names.js";
import { warnDropped } from "../../telemetry/drops.js";

export class RedisPubSub {
  #sub: RedisClient | undefined;
  readonly #channels = new Map<string, Set<EventDelivery>>();

  constructor(
    private readonly cmd: RedisClient,
    private readonly connectSub: () => RedisClient,
    private readonly cluster: string,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  #channel(service: string, event: string): string {
    return `${eventKey(this.cluster, service, event)}.live`;
  }

  /** PUBLISHes; resolves when Redis took it (however many subscribers got it). */
  async publish(env: Envelope, opts: SendOptions): Promise<void> {
    const body = encodeEnvelope(env);
    if (body.length > this.maxBytes)
      throw new FanError(
        Code.RESOURCE_EXHAUSTED,
        `message of ${body.length} bytes exceeds the limit of ${this.maxBytes}`,
      );
    await ready(this.cmd, opts.deadline, opts.signal);
    try {
      await send(this.cmd, "PUBLISH", [this.#channel(env.service, env.method), body]);
    } catch (e) {
      throw unavailable("redis PUBLISH failed", e);
    }
  }

  /** Subscribes to the channel of `sub`'s event; resolves once Redis confirmed the subscription. */
  async subscribe(sub: EventSubscription, deliver: EventDelivery, deadline: number): Promise<Unsubscribe> {
    const channel = this.#channel(sub.source.name, sub.event);
    const conn = this.#connection();
    let set = this.#channels.get(channel);
    if (set === undefined) {
      set = new Set();
      this.#channels.set(channel, set);
    }
    set.add(deliver);
    try {
      await ready(conn, deadline);
      await conn.subscribe(channel);
    } catch (e) {
      this.#drop(channel, deliver);
      throw unavailable(`cannot subscribe to ${channel}`, e);
    }
    return { close: async () => this.#drop(channel, deliver) };
  }

  #drop(channel: string, deliver: EventDelivery): void {
    const set = this.#channels.get(channel);
    set?.delete(deliver);
    if (set === undefined || set.size > 0) return;
    this.#channels.delete(channel);
    if (this.#sub?.status === "ready") this.#sub.unsubscribe(channel).catch(() => undefined);
  }

  #connection(): RedisClient {
    if (this.#sub !== undefined) return this.#sub;
    const conn = this.connectSub();
    this.#sub = conn;
    conn.on("messageBuffer", (channel: Buffer, message: Buffer) => this.#receive(channel.toString(), message));
    // autoResubscribe is off (clients.ts): subscribe again after every reconnection.
    let first = true;
    conn.on("ready", () => {
      if (first) {
        first = false;
        return;
      }
      const channels = [...this.#channels.keys()];
      if (channels.length === 0) return;
      conn.subscribe(...channels).then(
        () =>
          this.log.info({ channels: channels.length }, "redis: state channels subscribed again after a reconnection"),
        (e: unknown) => this.log.warn({ err: e }, "redis: subscribing state channels again failed"),
      );
    });
    return conn;
  }

  #receive(channel: string, message: Buffer): void {
    const set = this.#channels.get(channel);
    if (set === undefined) return;
    let env: Envelope;
    try {
      env = decodeEnvelope(message, { maxBytes: this.maxBytes });
    } catch (e) {
      warnDropped(
        this.log,
        { transport: "redis", endpoint: channel, reason: "undecodable" },
        { err: (e as Error).message, channel, bytes: message.length },
        "redis: malformed state update dropped",
      );
      return;
    }
    for (const deliver of set)
      deliver(env).catch((e: unknown) => this.log.warn({ err: e, channel }, "redis: state update handler failed"));
  }

  close(): void {
    this.#channels.clear();
  }
}
