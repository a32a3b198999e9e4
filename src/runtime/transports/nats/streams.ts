/**
 * The JetStream side of the nats transport: declaring streams and durable consumers (the same
 * configuration from every App, so declaring is idempotent), and publishing with a PubAck. Each
 * send carries a `Nats-Msg-Id` of its own, so sending it again after a lost PubAck is dropped by
 * the stream's duplicate window instead of stored twice: a push or event whose outcome is
 * unknown is sent again until its deadline (at least once, never silently dropped). The id is
 * per send, not the envelope's: a producer's own re-send with the same idempotency key reaches
 * the consumer, whose dedupe window drops it and counts it, as on every transport.
 */
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { notSent } from "../../call/outcome.js";
import { Code, FanError } from "../../errors.js";
import type { SendOptions } from "../transport.js";
import type { NatsLink } from "./connection.js";
import type { StreamName } from "./names.js";

/** What kind of stream: retention and limits follow from it. */
export type StreamKind = "push" | "event" | "dlq";

/** Stream limits the transport options set. */
export interface StreamLimits {
  /** Replicas of every stream (a NATS cluster: 3); default 1. */
  readonly replicas: number;
  /** Messages kept per event stream (oldest dropped beyond); default 100 000. */
  readonly eventsMaxMsgs: number;
  /** Dead letters kept per cluster; default 100 000. */
  readonly deadLettersMaxMsgs: number;
}

function streamConfig(s: StreamName, kind: StreamKind, l: StreamLimits): Partial<StreamConfig> & { name: string } {
  const base = {
    name: s.name,
    subjects: [...s.subjects],
    storage: StorageType.File,
    num_replicas: l.replicas,
    duplicate_window: 120_000_000_000,
  };
  if (kind === "push") return { ...base, retention: RetentionPolicy.Workqueue, discard: DiscardPolicy.New };
  if (kind === "event")
    return { ...base, retention: RetentionPolicy.Interest, max_msgs: l.eventsMaxMsgs, discard: DiscardPolicy.Old };
  return { ...base, retention: RetentionPolicy.Limits, max_msgs: l.deadLettersMaxMsgs, discard: DiscardPolicy.Old };
}

/** A durable pull consumer's configuration. */
export function consumerConfig(
  name: string,
  o: { filter?: string; deliverNew: boolean; ackWaitMs: number; inactiveMs?: number },
): Partial<ConsumerConfig> {
  return {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: o.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
    ack_wait: o.ackWaitMs * 1_000_000,
    // The transport counts deliveries and dead-letters itself (also those no consumer acknowledged).
    max_deliver: -1,
    max_ack_pending: 10_000,
    ...(o.filter === undefined ? {} : { filter_subject: o.filter }),
    ...(o.inactiveMs === undefined ? {} : { inactive_threshold: o.inactiveMs * 1_000_000 }),
  };
}

/** This process's part of every send's `Nats-Msg-Id`. */
const SENDER = randomBytes(6).toString("hex");
let sends = 0;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** True when the error says no stream took the message (no responders on its subject). */
export function noStream(e: unknown): boolean {
  const name = (e as Error | undefined)?.name ?? "";
  return /NoResponders|JetStreamNotEnabled/.test(name) || /no responders|not enabled/i.test(message(e));
}

/** True when the error says the stream or consumer does not exist (any more). */
export function missing(e: unknown): boolean {
  return /not found/i.test(message(e)) || /NotFound/.test((e as Error | undefined)?.name ?? "");
}

/** JetStream clients of one connection, and declaring with memory of what was declared. */
export class JetStreamSide {
  readonly #declared = new Map<string, Promise<void>>();
  #jsm: { nc: NatsConnection; jsm: Promise<JetStreamManager> } | undefined;
  #js: { nc: NatsConnection; js: JetStreamClient } | undefined;

  constructor(
    private readonly link: NatsLink,
    private readonly limits: StreamLimits,
    private readonly log: Logger,
  ) {}

  /** The JetStream client of the current connection. */
  js(nc: NatsConnection): JetStreamClient {
    if (this.#js?.nc !== nc) this.#js = { nc, js: jetstream(nc, { timeout: 5000 }) };
    return this.#js.js;
  }

  #manager(nc: NatsConnection): Promise<JetStreamManager> {
    if (this.#jsm?.nc !== nc) this.#jsm = { nc, jsm: jetstreamManager(nc, { timeout: 5000, checkAPI: false }) };
    return this.#jsm.jsm;
  }

  /** Creates the stream unless it exists (once per process unless `again`). */
  ensureStream(nc: NatsConnection, s: StreamName, kind: StreamKind, again = false): Promise<void> {
    const key = `stream ${s.name}`;
    if (again) this.#declared.delete(key);
    let p = this.#declared.get(key);
    if (p === undefined) {
      p = this.#addStream(nc, s, kind);
      this.#declared.set(key, p);
      p.catch(() => this.#declared.delete(key));
    }
    return p;
  }

  async #addStream(nc: NatsConnection, s: StreamName, kind: StreamKind): Promise<void> {
    const jsm = await this.#manager(nc);
    try {
      await jsm.streams.add(streamConfig(s, kind, this.limits));
    } catch (e) {
      // Declared already with another configuration (an operator's change, other limits): use it.
      await jsm.streams.info(s.name).catch(() => {
        throw new FanError(Code.UNAVAILABLE, `nats stream ${s.name} cannot be created: ${message(e)}`, { cause: e });
      });
      this.log.info({ stream: s.name, err: message(e) }, "nats stream exists with another configuration; using it");
    }
  }

  /** Creates the durable consumer unless it exists. */
  async ensureConsumer(nc: NatsConnection, stream: string, cfg: Partial<ConsumerConfig>): Promise<void> {
    const jsm = await this.#manager(nc);
    const name = cfg.durable_name as string;
    try {
      await jsm.consumers.add(stream, cfg);
    } catch (e) {
      await jsm.consumers.info(stream, name).catch(() => {
        throw new FanError(Code.UNAVAILABLE, `nats consumer ${stream}/${name} cannot be created: ${message(e)}`, {
          cause: e,
        });
      });
      this.log.info({ stream, consumer: name, err: message(e) }, "nats consumer exists with another configuration; using it");
    }
  }

  /** Deletes a durable consumer (a broadcast subscription's); never throws. */
  async deleteConsumer(stream: string, name: string): Promise<void> {
    const nc = this.link.nc;
    if (nc === undefined || !this.link.up) return;
    try {
      await (await this.#manager(nc)).consumers.delete(stream, name);
    } catch (e) {
      this.log.debug({ stream, consumer: name, err: message(e) }, "nats consumer not deleted (it expires by itself)");
    }
  }

  /**
   * Publishes to `subject` (stored by `stream`, declared on demand) and waits for the PubAck;
   * sends again until the deadline while the outcome is unknown. Failures say whether the
   * message may have been stored (`maybeDelivered`).
   */
  async publish(
    subject: string,
    body: Uint8Array,
    id: string,
    stream: { readonly name: StreamName; readonly kind: StreamKind },
    opts: SendOptions,
    hdrs?: Readonly<Record<string, string>>,
  ): Promise<void> {
    let maybe = false;
    const msgID = `${id}~${SENDER}.${++sends}`;
    const fail = (e: FanError): FanError => (maybe ? e : notSent(e));
    for (;;) {
      if (opts.signal.aborted) throw fail(new FanError(Code.CANCELLED, "cancelled"));
      const nc = await this.link.ready(opts.deadline, opts.signal).catch((e: unknown) => {
        throw fail(FanError.from(e, Code.UNAVAILABLE));
      });
      const left = opts.deadline - Date.now();
      if (left <= 0) throw fail(new FanError(Code.DEADLINE_EXCEEDED, `${subject}: no PubAck before the deadline`));
      const h = natsHeaders();
      for (const [k, v] of Object.entries(hdrs ?? {})) h.set(k, v);
      try {
        const ack = await this.js(nc).publish(subject, body, {
          msgID,
          timeout: Math.max(1, Math.min(left, 5000)),
          retries: 0,
          ...(hdrs === undefined ? {} : { headers: h }),
        });
        if (ack.duplicate) this.log.debug({ subject, id }, "nats publish was a duplicate (stored by an earlier try)");
        return;
      } catch (e) {
        if (noStream(e)) {
          // Nothing stored it: declare the stream (a first push, or a server that lost its data).
          await this.ensureStream(nc, stream.name, stream.kind, true).catch((err: unknown) => {
            throw fail(FanError.from(err, Code.UNAVAILABLE));
          });
          continue;
        }
        if (/MAX_PAYLOAD|maximum payload/i.test(message(e)))
          throw notSent(new FanError(Code.RESOURCE_EXHAUSTED, `${subject}: ${message(e)}`));
        if (/api error|JetStreamApiError/i.test(`${(e as Error).name} ${message(e)}`))
          throw notSent(new FanError(Code.UNAVAILABLE, `nats refused the message on ${subject}: ${message(e)}`));
        maybe = true;
        if (opts.deadline <= Date.now())
          throw new FanError(Code.UNAVAILABLE, `nats lost before the message was stored: ${message(e)}`, { cause: e });
        if (this.link.up) await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}
