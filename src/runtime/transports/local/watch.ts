/**
 * What a local hub has under way: every push and event delivery from the moment it is accepted
 * until it is acked, given up or dropped, and those that were given up or dropped. Off unless
 * asked for (`LocalHub.watch()`: a test app turns it on), so a production hub pays nothing.
 * A test app's `settled()` waits on it and reports its failures, so a push whose handler fails
 * after the push resolved is not silent in a test.
 */
import { FanError } from "../../errors.js";
import type { Envelope } from "../transport.js";

/** Follows one message's attempts (`deliver`'s observer: a tracked delivery). */
export interface AttemptObserver {
  /** The `attempt`-th delivery is handed to a consumer. */
  attempt(attempt: number): void;
  /** It was rejected with `err`; the next goes in `retryMs`, none when undefined (given up). */
  failed(attempt: number, err: unknown, retryMs: number | undefined): void;
}

/** A push or event delivery given up after its redeliveries, or dropped. */
export interface DeliveryFailure {
  readonly kind: "push" | "event";
  /** The service of the push, the publisher of the event. */
  readonly service: string;
  /** The push method, or the event's name. */
  readonly method: string;
  /** An event's subscribing group (the subscriber's service name). */
  readonly group?: string;
  /** Deliveries made: the handler failed this many times (0: dropped before any). */
  readonly attempts: number;
  /** The last attempt's error (a FanError from a dispatcher; what it caught is its `cause`). */
  readonly error: unknown;
}

/** Failures kept for the next report, at most; later ones are counted. */
const KEPT = 100;

/** One delivery under way (the hub passes it to `deliver` as its observer). */
export class Tracked implements AttemptObserver {
  attempts = 0;
  /** When the current attempt started, or the delivery was accepted. */
  since = Date.now();
  /** The last failure while a redelivery waits: its error and when the next attempt goes. */
  #retry: { err: unknown; at: number } | undefined;
  waiting = false;

  constructor(
    readonly watch: DeliveryWatch,
    readonly kind: "push" | "event",
    readonly env: Envelope,
    readonly group: string | undefined,
  ) {}

  attempt(attempt: number): void {
    this.attempts = attempt;
    this.since = Date.now();
    this.#retry = undefined;
    this.waiting = false;
  }

  failed(attempt: number, err: unknown, retryMs: number | undefined): void {
    this.attempts = attempt;
    if (retryMs !== undefined) this.#retry = { err, at: Date.now() + retryMs };
    else this.watch.end(this, { error: err });
  }

  /** What it is doing now, for a timeout's message. */
  describe(now: number): string {
    const what = describeTarget(this.kind, this.env.service, this.env.method, this.group);
    if (this.waiting) return `${what}: waiting, no instance of ${this.env.service} consumes it`;
    if (this.#retry !== undefined)
      return `${what}: attempt ${this.attempts} failed (${errorText(this.#retry.err)}), the next in ${Math.max(0, this.#retry.at - now)} ms`;
    if (this.attempts === 0) return `${what}: queued`;
    return `${what}: attempt ${this.attempts} in its handler for ${now - this.since} ms`;
  }
}

/** The deliveries of one hub under way, and those given up since the last `takeFailures`. */
export class DeliveryWatch {
  readonly #pending = new Set<Tracked>();
  #failures: DeliveryFailure[] = [];
  #uncounted = 0;
  #idle: Array<() => void> = [];

  /** Starts following a delivery accepted now; `end` (or the observer's last failure) stops. */
  begin(kind: "push" | "event", env: Envelope, group?: string): Tracked {
    const t = new Tracked(this, kind, env, group);
    this.#pending.add(t);
    return t;
  }

  /** A delivery is over: acked, or `failed` (given up, or dropped). */
  end(t: Tracked, failed?: { readonly error: unknown }): void {
    if (!this.#pending.delete(t)) return;
    if (failed !== undefined) {
      if (this.#failures.length < KEPT)
        this.#failures.push({
          kind: t.kind,
          service: t.env.service,
          method: t.env.method,
          ...(t.group === undefined ? {} : { group: t.group }),
          attempts: t.attempts,
          error: failed.error,
        });
      else this.#uncounted++;
    }
    if (this.#pending.size === 0) for (const f of this.#idle.splice(0)) f();
  }

  /** Resolves true once nothing is under way, false if something still is after `ms`. */
  idle(ms: number): Promise<boolean> {
    if (this.#pending.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#idle = this.#idle.filter((f) => f !== done);
        resolve(false);
      }, ms);
      this.#idle.push(done);
    });
  }

  /** How many deliveries are under way. */
  get size(): number {
    return this.#pending.size;
  }

  /** What is under way now, one line each. */
  pending(): string[] {
    const now = Date.now();
    return [...this.#pending].map((t) => t.describe(now));
  }

  /** The failures since the last call (each is reported once), and how many more were not kept. */
  takeFailures(): { failures: DeliveryFailure[]; more: number } {
    const out = { failures: this.#failures, more: this.#uncounted };
    this.#failures = [];
    this.#uncounted = 0;
    return out;
  }
}

/** `push a.B.m`, or `event a.B.e to c.D` (its subscribing group). */
function describeTarget(kind: string, service: string, method: string, group: string | undefined): string {
  return `${kind} ${service}.${method}${group === undefined ? "" : ` to ${group}`}`;
}

/** One failure, as a line: what, how many attempts, the last error. */
export function describeFailure(f: DeliveryFailure): string {
  const what = describeTarget(f.kind, f.service, f.method, f.group);
  const how = f.attempts === 0 ? "dropped" : `failed ${f.attempts === 1 ? "once" : `${f.attempts} times`}`;
  return `${what} ${how}: ${errorText(f.error)}`;
}

/** An error's code and message, and its cause's (a handler's exception behind an INTERNAL). */
function errorText(e: unknown): string {
  if (FanError.is(e)) {
    const cause = e.cause instanceof Error ? ` (${e.cause.name}: ${e.cause.message})` : "";
    return `${e.code} ${e.message}${cause}`;
  }
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
