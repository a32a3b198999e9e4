/**
 * Taken notices, the serving side. NATS hands a call on a version's subject to one member of the
 * queue group and cannot tell the caller when that member dies; the caller would wait for its
 * deadline. So a call still running `TAKEN_NOTICE_MS` to twice that after it arrived is announced
 * to its client (when the client reads notices: names.ts `noticedClient`): one reply frame per
 * client and tick whose item `0` is `@[instanceId, seq, …]` (batch-frame.ts), on one of the
 * client's reply subjects. The caller's instance watch then fails the call once this instance's
 * discovery lease is gone (call/instance-watch.ts).
 *
 * A call answered sooner costs nothing: one timer per served instance runs every
 * `TAKEN_NOTICE_MS` only while calls are in flight, and reads only those (the frame pump's
 * `inFlight`, keyed `{client}.{seq}`), keeping where each is in `LazyAbort.notice`. Calls to the instance's own subject (sharded) are
 * announced too; their client knows their instance already and ignores them.
 */
import type { Logger } from "pino";
import type { LazyAbort } from "../abort.js";
import { TAKEN_SEQ, takenNotice } from "../batch-frame.js";
import type { NatsLink } from "./connection.js";
import { noticedClient } from "./names.js";

/** A call still running this long (up to twice this) after it arrived is announced to its caller. */
export const TAKEN_NOTICE_MS = 100;

/** Most calls one notice names (a notice stays far below any `max_payload`). */
const NOTICE_MAX = 4096;

/** The notices of one served instance. */
export class TakenNotices {
  /** The tick, while calls are in flight. */
  #ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly link: NatsLink,
    private readonly instance: string,
    /** The served calls not answered yet, by `{client}{seq}` (batching/served.ts). */
    private readonly inFlight: ReadonlyMap<string, LazyAbort>,
    private readonly log: Logger,
  ) {}

  /** Calls arrived: ticks until none is in flight. */
  arm(): void {
    if (this.#ticker !== undefined) return;
    this.#ticker = setInterval(this.#tick, TAKEN_NOTICE_MS);
    this.#ticker.unref();
  }

  /** Stops ticking (the instance closed). */
  close(): void {
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /** Tells the clients of the calls in flight since the last tick which instance took them (each call once). */
  readonly #tick = (): void => {
    if (this.inFlight.size === 0) {
      this.close();
      return;
    }
    let notices: Map<string, number[]> | undefined;
    for (const [key, ac] of this.inFlight) {
      const state = ac.notice;
      if (state === 2) continue;
      if (state === 0) {
        // Arrived since the last tick: told at the next one, if still running then.
        ac.notice = noticedClient(key) === undefined ? 2 : 1;
        continue;
      }
      ac.notice = 2;
      const client = noticedClient(key) as string;
      notices ??= new Map();
      let seqs = notices.get(client);
      if (seqs === undefined) {
        seqs = [];
        notices.set(client, seqs);
      }
      seqs.push(Number(key.slice(client.length)));
    }
    if (notices !== undefined) this.#send(notices);
  };

  #send(notices: Map<string, number[]>): void {
    const nc = this.link.nc;
    for (const [client, seqs] of notices)
      for (let i = 0; i < seqs.length; i += NOTICE_MAX)
        try {
          if (nc === undefined || !this.link.up) throw new Error("not connected");
          const notice = takenNotice(this.instance, seqs.slice(i, i + NOTICE_MAX));
          nc.publish(`${client}${TAKEN_SEQ}`, `#${TAKEN_SEQ}\n${notice}`);
        } catch (e) {
          this.log.warn(
            { err: (e as Error).message, calls: Math.min(NOTICE_MAX, seqs.length - i) },
            "nats taken notice not sent: if this instance dies, those calls' callers wait for their deadline",
          );
        }
  }
}
