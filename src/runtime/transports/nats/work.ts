/**
 * Work consumers: pushes and event subscriptions, each a durable JetStream pull consumer that
 * every instance of the service (or, for `@broadcast`, only this instance) reads. Messages are
 * pulled only while there is room (`prefetch` in handlers at once), acknowledged when the handler
 * resolved, sent back (`nak` with a backoff) when it rejected, and kept from redelivery while a
 * handler runs long (`working`). JetStream counts deliveries, so a message that was handed out
 * `maxDeliveries` times without an ack (failures or consumers that died holding it) goes to the
 * dead-letter subject, then is acknowledged. A consumer closing hands what it holds back at once.
 */
import type { JsMsg } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { decodeEnvelope } from "../../codec/wire.js";
import { Code, FanError } from "../../errors.js";
import { ReadGate } from "../read-gate.js";
import type { Envelope } from "../transport.js";
import type { NatsLink } from "./connection.js";
import type { StreamName } from "./names.js";
import { consumerConfig, type JetStreamSide, missing, type StreamKind } from "./streams.js";
import { aboutMessage, aboutRaw } from "../log-keys.js";
import { warnDropped } from "../../telemetry/drops.js";
import { type DeliveryLimits, finalError, limitNote, limitOf, redeliver, warnFinal } from "../push-ends.js";

/** One work consumer. */
export interface WorkSpec {
  readonly stream: StreamName;
  readonly kind: StreamKind;
  readonly consumer: string;
  /** The subject the consumer reads (events: one event of the stream). */
  readonly filter?: string;
  /** Start at new messages (events) instead of every stored one (pushes). */
  readonly deliverNew: boolean;
  /** A broadcast consumer disappears this long after its instance stopped reading. */
  readonly inactiveMs?: number;
  readonly prefetch: number;
  readonly maxDeliveries: number;
  /** Pushes whose `@retry(n)` allows fewer deliveries than `maxDeliveries` (push-ends.ts). */
  readonly limits?: DeliveryLimits;
  readonly retryDelayMs: number;
  readonly ackWaitMs: number;
  /** How long one pull waits for messages. */
  readonly fetchMs: number;
  readonly maxBytes: number;
  readonly log: Logger;
  /** Stores a dead letter (resolves once it is stored). */
  readonly deadLetter: (msg: JsMsg, reason: string) => Promise<void>;
  /** Where dead letters go, for the log (`stream fan_c_dlq, subject fan.c.dlq.…`). */
  readonly deadLetters?: string;
  /** Told of every message dead-lettered (its envelope, when it decodes). */
  readonly onDeadLetter?: (env: Envelope | undefined) => void;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Acks, naks and progress notes on a closed connection throw: the server redelivers then. */
function quietly(f: () => void): void {
  try {
    f();
  } catch {
    // the connection is closed; the message comes back after its ack wait
  }
}

/** Reads one durable consumer and hands each message to `deliver`. */
export class WorkConsumer {
  readonly #inFlight = new Set<JsMsg>();
  /** Handled messages whose ack goes out at the end of this turn (`#ack`). */
  readonly #acks: JsMsg[] = [];
  /** When to pull again (read-gate.ts). */
  readonly #gate: ReadGate;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #iter: { stop(): void } | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly link: NatsLink,
    private readonly jets: JetStreamSide,
    private readonly spec: WorkSpec,
    private readonly deliver: (env: Envelope) => Promise<void>,
  ) {
    this.#gate = new ReadGate(spec.prefetch, () => this.#inFlight.size);
  }

  /** Declares the stream and consumer and starts reading; resolves once the consumer exists. */
  async start(deadline: number): Promise<void> {
    await this.#declare(deadline, false);
    const beat = Math.max(100, Math.floor(this.spec.ackWaitMs / 3));
    this.#heartbeat = setInterval(() => this.#working(), beat).unref();
    this.#loop = this.#run();
  }

  async #declare(deadline: number, again: boolean): Promise<void> {
    const s = this.spec;
    const nc = await this.link.ready(deadline);
    await this.jets.ensureStream(nc, s.stream, s.kind, again);
    await this.jets.ensureConsumer(
      nc,
      s.stream.name,
      consumerConfig(s.consumer, {
        deliverNew: s.deliverNew,
        ackWaitMs: s.ackWaitMs,
        ...(s.filter === undefined ? {} : { filter: s.filter }),
        ...(s.inactiveMs === undefined ? {} : { inactiveMs: s.inactiveMs }),
      }),
    );
  }

  async #run(): Promise<void> {
    const s = this.spec;
    while (!this.#stopped) {
      try {
        const nc = await this.link.ready(Date.now() + s.fetchMs);
        await this.#gate.wait();
        if (this.#stopped) break;
        const consumer = await this.jets.js(nc).consumers.get(s.stream.name, s.consumer);
        while (!this.#stopped && this.link.up) {
          await this.#gate.wait();
          if (this.#stopped) break;
          const iter = await consumer.fetch({ max_messages: s.prefetch - this.#inFlight.size, expires: s.fetchMs });
          this.#iter = iter;
          for await (const m of iter) this.#handle(m);
          this.#iter = undefined;
        }
      } catch (e) {
        this.#iter = undefined;
        if (this.#stopped) break;
        await this.#recover(e);
      }
    }
  }

  async #recover(e: unknown): Promise<void> {
    const s = this.spec;
    if (missing(e) && this.link.up) {
      s.log.warn(
        { stream: s.stream.name, consumer: s.consumer, err: message(e) },
        "nats stream or consumer missing (the server lost its data?); declaring it again",
      );
      await this.#declare(Date.now() + 5000, true).catch(() => undefined);
      return;
    }
    if (this.link.up) s.log.warn({ stream: s.stream.name, consumer: s.consumer, err: message(e) }, "nats pull failed");
    await new Promise((r) => setTimeout(r, 100));
  }

  #release(m: JsMsg): void {
    this.#inFlight.delete(m);
    this.#gate.released();
  }

  #handle(m: JsMsg): void {
    const s = this.spec;
    const attempt = m.info.deliveryCount;
    if (attempt > s.maxDeliveries) {
      const reason = `not acknowledged after ${attempt - 1} deliveries`;
      s.log.warn(
        {
          stream: s.stream.name,
          seq: m.seq,
          ...aboutRaw(m.data, s.maxBytes),
          deliveries: attempt - 1,
          deadLetters: s.deadLetters,
        },
        `${reason} (its consumers went away holding it); dead-lettered`,
      );
      void this.#deadLetter(m, undefined, reason);
      return;
    }
    let env: Envelope;
    try {
      env = decodeEnvelope(m.data, { maxBytes: s.maxBytes });
      if (env.kind !== "push" && env.kind !== "event" && env.kind !== "state")
        throw new FanError(Code.INVALID_ARGUMENT, `expected a push or event, got a ${env.kind}`);
    } catch (e) {
      warnDropped(
        s.log,
        { transport: "nats", endpoint: m.subject, reason: "undecodable" },
        { stream: s.stream.name, subject: m.subject, seq: m.seq, err: message(e), deadLetters: s.deadLetters },
        "undecodable nats message dead-lettered",
      );
      void this.#deadLetter(m, undefined, `undecodable: ${message(e)}`);
      return;
    }
    const limit = limitOf(s.limits, env, s.maxDeliveries);
    if (attempt > limit) {
      // Past its method's @retry limit, below the consumer's: its consumers died holding it.
      const reason = `not acknowledged after ${attempt - 1} deliveries${limitNote(limit, s.maxDeliveries)}`;
      s.log.warn(
        {
          stream: s.stream.name,
          seq: m.seq,
          ...aboutMessage(env),
          deliveries: attempt - 1,
          deadLetters: s.deadLetters,
        },
        `${reason} (its consumers went away holding it); dead-lettered`,
      );
      void this.#deadLetter(m, env, reason);
      return;
    }
    this.#inFlight.add(m);
    this.deliver({ ...env, headers: { ...env.headers, attempt } }).then(
      () => {
        this.#release(m);
        this.#ack(m);
      },
      (e: unknown) => this.#failed(m, env, attempt, e),
    );
  }

  /**
   * Acknowledges at the end of the turn, together with the turn's other acks: nats.js writes
   * what was queued before its flush microtask runs, and handlers settle over many microtask
   * rounds, so acks sent as each handler settled went out one socket write each.
   */
  #ack(m: JsMsg): void {
    this.#acks.push(m);
    if (this.#acks.length === 1) setImmediate(this.#sendAcks);
  }

  readonly #sendAcks = (): void => {
    const acks = this.#acks.splice(0);
    for (const m of acks) quietly(() => m.ack());
  };

  #failed(m: JsMsg, env: Envelope, attempt: number, e: unknown): void {
    const s = this.spec;
    const final = finalError(e);
    if (final !== undefined) {
      warnFinal(
        s.log,
        { stream: s.stream.name, seq: m.seq, attempt },
        env,
        final,
        e,
        s.deadLetters ?? "the dead-letter stream",
      );
      void this.#deadLetter(m, env, `failed with its declared error ${final.name}: ${message(e)}`);
      return;
    }
    const limit = limitOf(s.limits, env, s.maxDeliveries);
    const log = {
      stream: s.stream.name,
      seq: m.seq,
      ...aboutMessage(env),
      attempt,
      err: message(e),
      ...(attempt >= limit ? { deadLetters: s.deadLetters } : {}),
    };
    if (attempt >= limit) {
      s.log.warn(log, `delivery failed ${attempt} times${limitNote(limit, s.maxDeliveries)}; dead-lettered`);
      void this.#deadLetter(m, env, `failed ${attempt} times: ${message(e)}`);
      return;
    }
    const delay = redeliver(s.log, log, s.retryDelayMs, attempt, e, env);
    this.#release(m);
    quietly(() => m.nak(delay));
  }

  /** Stores the message as a dead letter, then acknowledges it; on failure it comes back later. */
  async #deadLetter(m: JsMsg, env: Envelope | undefined, reason: string): Promise<void> {
    const s = this.spec;
    this.#inFlight.add(m);
    try {
      await s.deadLetter(m, reason);
      quietly(() => m.ack());
      if (s.onDeadLetter !== undefined) {
        let known = env;
        if (known === undefined) {
          try {
            known = decodeEnvelope(m.data, { maxBytes: s.maxBytes });
          } catch {
            known = undefined;
          }
        }
        s.onDeadLetter(known);
      }
    } catch (e) {
      s.log.warn(
        { stream: s.stream.name, seq: m.seq, err: message(e) },
        "nats dead-lettering failed; the message comes back",
      );
      quietly(() => m.nak(s.retryDelayMs));
    } finally {
      this.#release(m);
    }
  }

  /** Keeps messages in handlers from being redelivered elsewhere. */
  #working(): void {
    if (this.#inFlight.size === 0 || !this.link.up) return;
    for (const m of this.#inFlight) quietly(() => m.working());
  }

  /** Stops pulling (messages in handlers still get acknowledged). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#gate.open();
    this.#iter?.stop();
    await this.#loop;
  }

  /** Messages in handlers. */
  get busy(): number {
    return this.#inFlight.size;
  }

  /** Stops, and hands the messages still in handlers back to the other consumers at once. */
  async close(): Promise<void> {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    await this.stop();
    this.#sendAcks();
    if (!this.link.up) return;
    for (const m of this.#inFlight) quietly(() => m.nak());
    this.#inFlight.clear();
    await this.link.flush();
  }
}
