/**
 * zmq events over PUB/SUB through an event hub (hub.ts).
 *
 * Each subscribing instance subscribes to its own topic,
 * `fan␀{cluster}␀{service}␀{event}␀{b|g}␀{group}␀{instanceId}␀`. Subscriptions flow up through
 * the hub to every publisher's XPUB, so a publisher knows each group's live instances and
 * addresses every event to one instance per group (round-robin) or, for `@broadcast`, to
 * every instance. Each message carries the publisher's id and a sequence number per topic, so
 * a subscriber detects and logs drops (PUB/SUB is at-most-once: a full queue or a vanished
 * subscriber loses messages; this is the transport's documented weakness).
 *
 * A message is `[topic, publisherId, firstSeq, body1, body2, ...]`: the first event of an
 * event-loop turn on a topic goes alone at once, the rest of that turn's events on the topic
 * together in one message (sequence numbers firstSeq, firstSeq + 1, ...), one native send for
 * many events. Each event keeps its own deadline: the writer builds a message when it sends
 * it, of the events still within theirs (the others fail alone, logged). A subscriber older
 * than batching drops a message of more than four frames as malformed (a warn log): upgrade
 * subscribers before publishers.
 *
 * `subscribe` resolves once this transport's own XPUB has seen the subscription come back
 * from the hub, i.e. once the hub forwards it to every publisher. A publisher is ready once it
 * has seen its own marker subscription, which libzmq's XSUB replays after every subscription
 * it cached (the marker sorts last: it starts with byte 0xff).
 */
import type { Logger } from "pino";
import { Subscriber, XPublisher } from "zeromq";
import { Code, FanError } from "../../errors.js";
import { shortId } from "../../ids.js";
import type { Envelope, EventDelivery, EventSubscription, SendOptions, Unsubscribe } from "../transport.js";
import { decodeEnvelope, encodeEnvelope } from "../../codec/wire.js";
import type { EventHubEndpoints } from "./hub.js";
import { Writer } from "./writer.js";
import { warnDropped } from "../../telemetry/drops.js";

/** Counts of what events lost. */
export interface EventStats {
  /** Messages a subscriber knows it missed (sequence gaps). */
  lost: number;
  /** Deliveries whose handler kept failing (dropped after the retries). */
  failed: number;
  /** Messages that did not decode (dropped). */
  malformed: number;
}

interface Group {
  readonly broadcast: boolean;
  readonly topics: string[];
  rr: number;
}

interface Local {
  readonly deliver: EventDelivery;
  readonly last: Map<string, number>;
  tail: Promise<void>;
}

/**
 * Events of one batch that share a deadline, and so one promise: a turn's emits mostly do
 * (`Date.now()` plus the same timeout), so a batch holds a run or a few, not one per event.
 */
interface Run {
  readonly deadline: number;
  readonly bodies: Buffer[];
  /** Envelope ids, to name the events in the log line if the run is dropped. */
  readonly ids: string[];
  readonly sent: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

function newRun(deadline: number): Run {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const sent = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { deadline, bodies: [], ids: [], sent, resolve, reject };
}

/** Events that waited for the end of a turn on one topic, sent as one message. */
interface Batch {
  readonly topic: string;
  readonly service: string;
  readonly event: string;
  readonly runs: Run[];
  size: number;
}

const SEP = "\u0000";
/** Most events in one message of a topic (a batch). */
const MAX_EVENT_BATCH = 256;
const READY_TIMEOUT_MS = 5000;
const DELIVERY_ATTEMPTS = 3;
/** Ids named in one log line of dropped state updates (a stalled owner may drop thousands). */
const LOGGED_IDS = 10;

/** The PUB/SUB side of one zmq transport. */
export class EventBus {
  readonly stats: EventStats = { lost: 0, failed: 0, malformed: 0 };
  private readonly id = shortId();
  private readonly pub = new XPublisher({ linger: 0, sendHighWaterMark: 100_000 });
  /** zeromq.js allows one send at a time per socket: concurrent publishes queue here, in order. */
  private readonly writer = new Writer(this.pub, "zmq event publisher");
  private readonly sub = new Subscriber({ linger: 0, receiveHighWaterMark: 100_000 });
  private readonly groups = new Map<string, Map<string, Group>>();
  private readonly seen = new Set<string>();
  private readonly waiters = new Map<string, Array<() => void>>();
  private readonly locals = new Map<string, Local>();
  /** Lossy fan-out topics (state updates): every subscriber of this bus on the topic, and the sequence check. */
  private readonly liveTopics = new Map<string, { readonly topic: string; readonly frame: Buffer }>();
  private readonly lives = new Map<
    string,
    { readonly delivers: Set<EventDelivery>; readonly last: Map<string, number> }
  >();
  private readonly seq = new Map<string, number>();
  /** State updates dropped at their deadline in this turn, per state: logged once at the turn's end. */
  private readonly liveDrops = new Map<string, { service: string; state: string; dropped: number; ids: string[] }>();
  /** Events of this turn per topic, waiting for the turn's end to go as one message. */
  private readonly batches = new Map<string, Batch>();
  private turnScheduled = false;
  private readonly marker = `\u00ffsync${SEP}${this.id}${SEP}`;
  private ready: Promise<void> | undefined;
  /** `ready` resolved: publishes skip the deadline race (a timer per publish). */
  private started = false;
  private connected = false;
  private closed = false;

  constructor(
    private readonly hub: EventHubEndpoints,
    private readonly cluster: string,
    private readonly log: Logger,
    private readonly maxBytes: number,
  ) {}

  /** Connects once; waits (again after a failure) until the hub has echoed this bus's marker. */
  private start(): Promise<void> {
    if (!this.connected) {
      this.connected = true;
      this.pub.connect(this.hub.publish);
      this.sub.connect(this.hub.subscribe);
      void this.watchSubscriptions();
      void this.receive();
      this.sub.subscribe(Buffer.from(this.marker, "latin1"));
    }
    this.ready ??= this.seenTopic(
      this.marker,
      `zmq event hub at ${this.hub.publish} / ${this.hub.subscribe} did not answer`,
    ).then(
      () => {
        this.started = true;
      },
      (e: unknown) => {
        this.ready = undefined;
        throw e;
      },
    );
    return this.ready;
  }

  private topicOf(sub: EventSubscription): string {
    return [
      "fan",
      this.cluster,
      sub.source.name,
      sub.event,
      sub.broadcast ? "b" : "g",
      sub.group,
      sub.instanceId,
      "",
    ].join(SEP);
  }

  /** Sends an event to one instance of every subscribing group (every instance when broadcast). */
  async publish(env: Envelope, opts: SendOptions): Promise<void> {
    if (opts.signal.aborted) throw new FanError(Code.CANCELLED, `publish ${env.service}.${env.method}: cancelled`);
    if (!this.started) await this.withDeadline(this.start(), opts.deadline, `publish ${env.service}.${env.method}`);
    const body = encodeEnvelope(env);
    if (body.length > this.maxBytes)
      throw new FanError(
        Code.RESOURCE_EXHAUSTED,
        `event of ${body.length} bytes exceeds the limit of ${this.maxBytes}`,
      );
    const groups = this.groups.get(`${env.service}${SEP}${env.method}`);
    if (groups === undefined) return;
    const sends: Promise<void>[] = [];
    for (const g of groups.values()) {
      if (g.topics.length === 0) continue;
      if (!g.broadcast) g.rr = (g.rr + 1) % g.topics.length;
      if (!g.broadcast) sends.push(this.enqueue(g.topics[g.rr] as string, env, body, opts.deadline));
      else for (const topic of g.topics) sends.push(this.enqueue(topic, env, body, opts.deadline));
    }
    if (sends.length === 1) await sends[0];
    else await Promise.all(sends);
  }

  /**
   * Sends `body` on `topic`. The first event of a turn on a topic goes to zeromq at once; the
   * others of the same turn (until the microtask queue drains) go together as one message
   * `[topic, publisher, firstSeq, body1, body2, ...]` once it ends: the hub routes a message
   * by its topic frame, so events of one topic can share it.
   */
  private enqueue(topic: string, env: Envelope, body: Buffer, deadline: number): Promise<void> {
    const open = this.batches.get(topic);
    if (open !== undefined && open.size < MAX_EVENT_BATCH) {
      let run = open.runs[open.runs.length - 1];
      if (run === undefined || run.deadline !== deadline) {
        run = newRun(deadline);
        open.runs.push(run);
      }
      run.bodies.push(body);
      run.ids.push(env.id);
      open.size++;
      return run.sent;
    }
    this.batches.set(topic, { topic, service: env.service, event: env.method, runs: [], size: 0 });
    if (open === undefined) {
      // A lone event is not delayed: it goes now, and the turn's later events on the topic batch.
      if (!this.turnScheduled) {
        this.turnScheduled = true;
        process.nextTick(this.endTurn);
      }
      return this.writer.send((now) => {
        if (now >= deadline) throw this.late(env.service, env.method, [env.id]);
        return this.frames(topic, [body]);
      });
    }
    // A full batch: send it now (in order) and open the next one.
    this.flush(open);
    return this.enqueue(topic, env, body, deadline);
  }

  private readonly endTurn = (): void => {
    this.turnScheduled = false;
    const open = [...this.batches.values()];
    this.batches.clear();
    for (const b of open) this.flush(b);
  };

  /**
   * Hands a batch to the writer, which builds its message when it sends it: of the events
   * still within their own deadline then, one message; the others fail alone. So an event is
   * not failed because a sibling's earlier deadline passed, nor sent after its own.
   */
  private flush(b: Batch): void {
    if (b.size === 0) return;
    let sent: Run[] | undefined;
    this.writer
      .send((now) => {
        const live: Run[] = [];
        for (const run of b.runs) {
          if (now >= run.deadline) run.reject(this.late(b.service, b.event, run.ids));
          else live.push(run);
        }
        sent = live;
        if (live.length === 0) return undefined;
        return this.frames(b.topic, live.length === 1 ? (live[0] as Run).bodies : live.flatMap((run) => run.bodies));
      })
      .then(
        () => {
          for (const run of sent ?? []) run.resolve();
        },
        (e: unknown) => {
          for (const run of sent ?? b.runs) run.reject(e);
        },
      );
  }

  /**
   * The frames of one message of `bodies` on `topic`, numbered when the writer sends it: events
   * dropped for their deadline take no number, so subscribers see no gap for them.
   */
  private frames(topic: string, bodies: Buffer[], head: Buffer = Buffer.from(topic, "latin1")): Array<Buffer | string> {
    const first = (this.seq.get(topic) ?? 0) + 1;
    this.seq.set(topic, first + bodies.length - 1);
    return [head, this.id, String(first), ...bodies];
  }

  /** Events past their deadline before they were sent: a warn log naming them, and their error. */
  private late(service: string, event: string, ids: string[]): FanError {
    this.log.warn(
      { targetService: service, event, ids },
      "zmq: events past their deadline before they were sent; dropped",
    );
    return new FanError(
      Code.DEADLINE_EXCEEDED,
      `publish ${service}.${event}: deadline passed before the event was sent`,
    );
  }

  private liveTopic(service: string, event: string): string {
    return ["fan", this.cluster, service, event, "live", ""].join(SEP);
  }

  /**
   * State updates (`Transport.volatile`): one message on the (service, event) topic, which
   * libzmq's PUB fans out to every subscribed SUB (in the hub's native code), instead of one
   * message per subscribing instance addressed by the publisher.
   */
  async publishLive(env: Envelope, opts: SendOptions): Promise<void> {
    if (!this.started) await this.withDeadline(this.start(), opts.deadline, `publish ${env.service}.${env.method}`);
    const key = `${env.service}${SEP}${env.method}`;
    let t = this.liveTopics.get(key);
    if (t === undefined) {
      const topic = this.liveTopic(env.service, env.method);
      t = { topic, frame: Buffer.from(topic, "latin1") };
      this.liveTopics.set(key, t);
    }
    if (!this.seen.has(t.topic)) return; // nobody subscribes
    const body = encodeEnvelope(env);
    if (body.length > this.maxBytes)
      throw new FanError(
        Code.RESOURCE_EXHAUSTED,
        `event of ${body.length} bytes exceeds the limit of ${this.maxBytes}`,
      );
    const { topic, frame } = t;
    const deadline = opts.deadline;
    // Numbered when the writer takes it, as events are: an update dropped at its deadline takes
    // no number, so watchers see no sequence gap (no "lost") for a drop made here.
    await this.writer.send((now) => {
      if (now >= deadline) throw this.lateLive(env);
      return this.frames(topic, [body], frame);
    });
  }

  /**
   * A state update past its deadline before it was sent: dropped, with its error. One warn line
   * per state per turn (a stalled owner drops a queue of them at once), naming the state and
   * how many; the owner's watchers resync at its next update or heartbeat (states/owner.ts).
   */
  private lateLive(env: Envelope): FanError {
    const key = `${env.service}${SEP}${env.method}`;
    const drop = this.liveDrops.get(key);
    if (drop === undefined) {
      if (this.liveDrops.size === 0) process.nextTick(this.logLiveDrops);
      this.liveDrops.set(key, { service: env.service, state: env.method, dropped: 1, ids: [env.id] });
    } else if (++drop.dropped <= LOGGED_IDS) drop.ids.push(env.id);
    return new FanError(
      Code.DEADLINE_EXCEEDED,
      `publish ${env.service}.${env.method}: deadline passed before the state update was sent`,
    );
  }

  private readonly logLiveDrops = (): void => {
    for (const d of this.liveDrops.values())
      this.log.warn(
        { targetService: d.service, state: d.state, dropped: d.dropped, ids: d.ids },
        "zmq: state updates past their deadline before they were sent; dropped",
      );
    this.liveDrops.clear();
  };

  /** Subscribes to a live topic; resolves once the hub forwards the subscription to publishers. */
  async subscribeLive(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> {
    await this.start();
    const topic = this.liveTopic(sub.source.name, sub.event);
    let live = this.lives.get(topic);
    if (live === undefined) {
      live = { delivers: new Set(), last: new Map() };
      this.lives.set(topic, live);
      this.sub.subscribe(Buffer.from(topic, "latin1"));
    }
    live.delivers.add(deliver);
    const drop = (): void => {
      const l = this.lives.get(topic);
      l?.delivers.delete(deliver);
      if (l === undefined || l.delivers.size > 0) return;
      this.lives.delete(topic);
      if (!this.closed) this.sub.unsubscribe(Buffer.from(topic, "latin1"));
    };
    try {
      await this.seenTopic(topic, `subscription to ${sub.source.name}.${sub.event} did not reach the event hub`);
    } catch (e) {
      drop();
      throw e;
    }
    return { close: async () => drop() };
  }

  /** Subscribes; resolves once the hub forwards the subscription to publishers. */
  async subscribe(sub: EventSubscription, deliver: EventDelivery): Promise<Unsubscribe> {
    await this.start();
    const topic = this.topicOf(sub);
    this.locals.set(topic, { deliver, last: new Map(), tail: Promise.resolve() });
    this.sub.subscribe(Buffer.from(topic, "latin1"));
    try {
      await this.seenTopic(topic, `subscription to ${sub.source.name}.${sub.event} did not reach the event hub`);
    } catch (e) {
      this.locals.delete(topic);
      if (!this.closed) this.sub.unsubscribe(Buffer.from(topic, "latin1"));
      throw e;
    }
    return {
      close: async () => {
        const local = this.locals.get(topic);
        this.locals.delete(topic);
        if (!this.closed) this.sub.unsubscribe(Buffer.from(topic, "latin1"));
        await local?.tail;
      },
    };
  }

  /** Reads (un)subscriptions arriving at this transport's XPUB from the hub. */
  private async watchSubscriptions(): Promise<void> {
    try {
      for await (const [frame] of this.pub) {
        if (frame === undefined || frame.length < 2 || (frame[0] !== 0 && frame[0] !== 1)) continue;
        const topic = frame.toString("latin1", 1);
        if (frame[0] === 1) this.added(topic);
        else this.removed(topic);
      }
    } catch (e) {
      if (!this.closed) this.log.error({ err: e }, "zmq: event subscription loop failed");
    }
  }

  private added(topic: string): void {
    this.seen.add(topic);
    for (const w of this.waiters.get(topic) ?? []) w();
    this.waiters.delete(topic);
    const t = parseTopic(topic);
    if (t === undefined || t.cluster !== this.cluster) return;
    const key = `${t.service}${SEP}${t.event}`;
    const groups = this.groups.get(key) ?? new Map<string, Group>();
    this.groups.set(key, groups);
    const g = groups.get(t.group) ?? { broadcast: t.broadcast, topics: [], rr: -1 };
    groups.set(t.group, g);
    if (!g.topics.includes(topic)) g.topics.push(topic);
  }

  private removed(topic: string): void {
    this.seen.delete(topic);
    const t = parseTopic(topic);
    if (t === undefined) return;
    const g = this.groups.get(`${t.service}${SEP}${t.event}`)?.get(t.group);
    const i = g?.topics.indexOf(topic) ?? -1;
    if (i >= 0) g?.topics.splice(i, 1);
  }

  private seenTopic(topic: string, failure: string): Promise<void> {
    if (this.seen.has(topic)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new FanError(Code.UNAVAILABLE, failure)), READY_TIMEOUT_MS);
      const list = this.waiters.get(topic) ?? [];
      list.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.waiters.set(topic, list);
    });
  }

  private async receive(): Promise<void> {
    try {
      for await (const frames of this.sub) this.onEvent(frames);
    } catch (e) {
      if (!this.closed) this.log.error({ err: e }, "zmq: event receive loop failed");
    }
  }

  private onEvent(frames: Buffer[]): void {
    const [topicFrame, pubFrame, seqFrame] = frames;
    const topic = topicFrame?.toString("latin1") ?? "";
    const local = this.locals.get(topic);
    if (local === undefined) {
      const live = this.lives.get(topic);
      if (live !== undefined) this.onLive(live, frames);
      return;
    }
    // `[topic, publisher, firstSeq, body1, ...]`: one event, or a turn's batch on this topic.
    if (frames.length < 4) {
      this.malformed({ frames: frames.length }, "zmq: dropped a malformed event message");
      return;
    }
    const publisher = String(pubFrame);
    const first = Number(String(seqFrame));
    for (let i = 3; i < frames.length; i++) {
      this.checkSequence(local, publisher, first + i - 3);
      let env: Envelope;
      try {
        env = decodeEnvelope(frames[i] as Buffer, { maxBytes: this.maxBytes });
      } catch (e) {
        this.malformed({ err: (e as Error).message }, "zmq: dropped an event that does not decode");
        continue;
      }
      local.tail = local.tail.then(() => this.deliver(local, env));
    }
  }

  private onLive(
    live: { readonly delivers: Set<EventDelivery>; readonly last: Map<string, number> },
    frames: Buffer[],
  ): void {
    const [, pubFrame, seqFrame, body] = frames;
    if (frames.length !== 4 || body === undefined) {
      this.malformed({ frames: frames.length }, "zmq: dropped a malformed event message");
      return;
    }
    this.checkSequence(live, String(pubFrame), Number(String(seqFrame)));
    let env: Envelope;
    try {
      env = decodeEnvelope(body, { maxBytes: this.maxBytes });
    } catch (e) {
      this.malformed({ err: (e as Error).message }, "zmq: dropped an event that does not decode");
      return;
    }
    for (const deliver of live.delivers)
      deliver(env).catch((e: unknown) =>
        this.log.warn({ err: e, event: env.method }, "zmq: state update handler failed"),
      );
  }

  /** A malformed event message or event dropped: counted, and a (rate limited) warning. */
  private malformed(fields: Record<string, unknown>, msg: string): void {
    this.stats.malformed++;
    warnDropped(this.log, { transport: "zmq", endpoint: "events", reason: "malformed event" }, fields, msg);
  }

  private checkSequence(local: Pick<Local, "last">, publisher: string, n: number): void {
    const last = local.last.get(publisher);
    if (last !== undefined && Number.isInteger(n) && n > last + 1) {
      this.stats.lost += n - last - 1;
      this.log.warn({ publisher, missed: n - last - 1, after: last }, "zmq: events lost (sequence gap)");
    }
    if (Number.isInteger(n) && (last === undefined || n > last)) local.last.set(publisher, n);
  }

  /** Delivers one event, retrying a failing handler a few times before dropping it (logged). */
  private async deliver(local: Local, env: Envelope): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await local.deliver(attempt === 1 ? env : { ...env, headers: { ...env.headers, attempt } });
        return;
      } catch (e) {
        if (attempt >= DELIVERY_ATTEMPTS || this.closed) {
          this.stats.failed++;
          this.log.warn(
            { err: e, targetService: env.service, event: env.method, id: env.id },
            "zmq: event handler kept failing; event dropped",
          );
          return;
        }
        await new Promise((r) => setTimeout(r, 20 * attempt));
      }
    }
  }

  private async withDeadline<T>(p: Promise<T>, deadline: number, what: string): Promise<T> {
    const remaining = deadline - Date.now();
    if (!Number.isFinite(remaining)) return p;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new FanError(Code.DEADLINE_EXCEEDED, `${what}: event hub not ready within the deadline`)),
        Math.max(0, remaining),
      );
    });
    try {
      return await Promise.race([p, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes both sockets (linger 0). */
  close(): void {
    this.closed = true;
    this.pub.close();
    this.sub.close();
  }
}

function parseTopic(
  topic: string,
): { cluster: string; service: string; event: string; broadcast: boolean; group: string } | undefined {
  const parts = topic.split(SEP);
  if (parts.length !== 8 || parts[0] !== "fan") return undefined;
  const [, cluster, service, event, mode, group] = parts as [string, string, string, string, string, string];
  return { cluster, service, event, broadcast: mode === "b", group };
}
