/**
 * Circuit breakers, one per (service, instance) a client App calls. A breaker counts the
 * outcomes of attempts to its instance over a sliding window; it opens when the failures
 * reach a threshold (and a share of the attempts), stays open for `openMs`, then lets exactly
 * one probe through (half-open): its success closes the breaker, its failure opens it again.
 * Only failures that say something about the instance count (see `verdictOf`): a caller's
 * mistake, an IDL-declared error or an error relayed from the instance's own dependency is an
 * answer from a healthy instance. An open breaker turns half-open at `openMs` by itself (one
 * unref'd timer while it is open, none per call), so its log line, event, metric and published
 * record say so on time even when no call reads it.
 *
 * The state machine is written here rather than taken from cockatiel: routing asks each
 * instance's breaker "may I send to you now?" without executing anything, and half-open
 * callers wait on the probe's result; docs/decisions.md says more.
 */
import type { Logger } from "pino";
import { idlErrorName } from "../codec/error-wire.js";
import { Code, FanError } from "../errors.js";
import type { BreakerState, PolicyEvents } from "./events.js";

/** Options of the per-instance circuit breakers. */
export interface BreakerOptions {
  /** Failures within the window that open the breaker (default 5). */
  readonly failures?: number;
  /** ... and the share of attempts in the window that failed, 0–1 (default 0.5). */
  readonly ratio?: number;
  /** The sliding window, ms (default 10 000). */
  readonly windowMs?: number;
  /** How long an open breaker refuses before it lets one probe through, ms (default 2 000). */
  readonly openMs?: number;
}

/** Codes that count against an instance; any other answer shows it is alive. */
const FAILURE_CODES: ReadonlySet<string> = new Set([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.INTERNAL]);

/** What an attempt's outcome means for its instance's breaker. */
export type Verdict = "success" | "failure" | "neutral";

/**
 * UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL and anything not a FanError (a transport failure)
 * count against the instance; IDL-declared errors, errors the instance relayed from its own
 * calls (`relayedFrom`: a dependency failed, not it) and every other code (the caller's
 * mistakes, NOT_FOUND...) are answers from a healthy instance; CANCELLED (the caller, or a
 * hedge that lost) says nothing.
 */
export function verdictOf(e: unknown): Verdict {
  if (!FanError.is(e)) return "failure";
  if (e.code === Code.CANCELLED) return "neutral";
  if (idlErrorName(e) !== undefined || e.relayedFrom !== undefined) return "success";
  return FAILURE_CODES.has(e.code) ? "failure" : "success";
}

const BUCKETS = 10;

/** One instance's breaker. */
export class Breaker {
  readonly service: string;
  readonly instanceId: string;
  #state: BreakerState = "closed";
  #openedAt = 0;
  #probing = false;
  #probeWaiters: (() => void)[] = [];
  /** Turns the open breaker half-open at `openMs`; set only while open. */
  #halfOpenTimer: ReturnType<typeof setTimeout> | undefined;
  // Sliding window: BUCKETS buckets of windowMs / BUCKETS each.
  readonly #ok = new Array<number>(BUCKETS).fill(0);
  readonly #bad = new Array<number>(BUCKETS).fill(0);
  #bucketStart = 0;
  #bucket = 0;
  readonly #failures: number;
  readonly #ratio: number;
  readonly #bucketMs: number;
  readonly #openMs: number;
  readonly #now: () => number;
  readonly #onChange: (b: Breaker, from: BreakerState, to: BreakerState) => void;

  constructor(
    service: string,
    instanceId: string,
    opts: BreakerOptions,
    now: () => number,
    onChange: (b: Breaker, from: BreakerState, to: BreakerState) => void,
  ) {
    this.service = service;
    this.instanceId = instanceId;
    this.#failures = opts.failures ?? 5;
    this.#ratio = opts.ratio ?? 0.5;
    this.#bucketMs = Math.max(1, (opts.windowMs ?? 10_000) / BUCKETS);
    this.#openMs = opts.openMs ?? 2000;
    this.#now = now;
    this.#onChange = onChange;
    this.#bucketStart = now();
  }

  /** The state now (an open breaker whose time is up reads half-open). */
  get state(): BreakerState {
    if (this.#state === "open" && this.#now() - this.#openedAt >= this.#openMs) this.#move("half-open");
    return this.#state;
  }

  /** Ms until an open breaker lets a probe through (0 when it is not open). */
  get opensInMs(): number {
    return this.state === "open" ? Math.max(0, this.#openMs - (this.#now() - this.#openedAt)) : 0;
  }

  /** Failures and attempts in the current window. */
  get window(): { failures: number; total: number } {
    this.#roll(this.#now());
    let failures = 0;
    let total = 0;
    for (let i = 0; i < BUCKETS; i++) {
      failures += this.#bad[i] as number;
      total += (this.#bad[i] as number) + (this.#ok[i] as number);
    }
    return { failures, total };
  }

  /** May an attempt go to this instance now? (closed, or half-open with no probe out). */
  get admits(): boolean {
    const s = this.state;
    return s === "closed" || (s === "half-open" && !this.#probing);
  }

  /** Half-open with its one probe out: callers may wait for its outcome. */
  get probing(): boolean {
    return this.#probing && this.state === "half-open";
  }

  /**
   * Takes the slot of an attempt about to be sent (call only when `admits`); returns true
   * when that attempt is the half-open probe. Its outcome must be reported with `record`.
   */
  acquire(): boolean {
    if (this.state !== "half-open" || this.#probing) return false;
    this.#probing = true;
    return true;
  }

  /**
   * Reports an attempt's outcome (`probe`: what `acquire` returned; `now`: a `Date.now()` reading
   * of this instant, if the caller took one; used only when this breaker's clock is `Date.now`).
   */
  record(verdict: Verdict, probe: boolean, now?: number): void {
    if (probe) {
      this.#probing = false;
      if (verdict === "success") this.#close();
      else if (verdict === "failure") this.#open();
      this.#wake();
      return;
    }
    if (verdict === "neutral" || this.#state !== "closed") return;
    this.#roll(now !== undefined && this.#now === Date.now ? now : this.#now());
    if (verdict === "success") {
      this.#ok[this.#bucket]++;
      return;
    }
    this.#bad[this.#bucket]++;
    const w = this.window;
    if (w.failures >= this.#failures && w.failures >= this.#ratio * w.total) this.#open();
  }

  /** Resolves when the current probe has an outcome (at once when there is none). */
  probeSettled(): Promise<void> {
    if (!this.#probing) return Promise.resolve();
    return new Promise((resolve) => this.#probeWaiters.push(resolve));
  }

  /** Clears the half-open timer (the App stops); the state is kept. */
  dispose(): void {
    clearTimeout(this.#halfOpenTimer);
    this.#halfOpenTimer = undefined;
  }

  #open(): void {
    this.dispose();
    this.#openedAt = this.#now();
    this.#move("open");
    // The timer, not a clock reading, decides: Node may fire it a millisecond before
    // `Date.now()` shows openMs elapsed, and an injected test clock does not move with it.
    this.#halfOpenTimer = setTimeout(() => {
      this.#halfOpenTimer = undefined;
      if (this.#state === "open") this.#move("half-open");
    }, this.#openMs);
    this.#halfOpenTimer.unref?.();
  }

  #close(): void {
    this.#ok.fill(0);
    this.#bad.fill(0);
    this.#move("closed");
  }

  #move(to: BreakerState): void {
    const from = this.#state;
    if (from === to) return;
    if (from === "open") this.dispose();
    this.#state = to;
    this.#onChange(this, from, to);
  }

  #wake(): void {
    const waiters = this.#probeWaiters;
    this.#probeWaiters = [];
    for (const w of waiters) w();
  }

  /** Advances the window to `now`, zeroing the buckets that fell out of it. */
  #roll(now: number): void {
    const steps = Math.floor((now - this.#bucketStart) / this.#bucketMs);
    if (steps <= 0) return;
    for (let i = 0; i < Math.min(steps, BUCKETS); i++) {
      this.#bucket = (this.#bucket + 1) % BUCKETS;
      this.#ok[this.#bucket] = 0;
      this.#bad[this.#bucket] = 0;
    }
    this.#bucketStart += steps * this.#bucketMs;
  }
}

/** A breaker's state as `app.policy.breakers()` reports it. */
export interface BreakerInfo {
  readonly service: string;
  readonly instanceId: string;
  readonly state: BreakerState;
  readonly failures: number;
  readonly total: number;
}

/** The breakers of one App, by service and instance; logs one line per transition. */
export class Breakers {
  readonly #byService = new Map<string, Map<string, Breaker>>();
  /** Breakers not closed, per service: routing filters only when some are. */
  readonly #notClosed = new Map<string, number>();
  readonly #opts: BreakerOptions;
  readonly #log: Logger;
  readonly #events: PolicyEvents;
  readonly #now: () => number;

  constructor(opts: BreakerOptions, log: Logger, events: PolicyEvents, now: () => number = Date.now) {
    this.#opts = opts;
    this.#log = log;
    this.#events = events;
    this.#now = now;
  }

  /** The breaker of one instance (made on first use). */
  of(service: string, instanceId: string): Breaker {
    let m = this.#byService.get(service);
    if (m === undefined) {
      m = new Map();
      this.#byService.set(service, m);
    }
    let b = m.get(instanceId);
    if (b === undefined) {
      b = new Breaker(service, instanceId, this.#opts, this.#now, (br, from, to) => this.#changed(br, from, to));
      m.set(instanceId, b);
    }
    return b;
  }

  /** The breaker of an instance if one exists. */
  find(service: string, instanceId: string): Breaker | undefined {
    return this.#byService.get(service)?.get(instanceId);
  }

  /** True when some breaker of `service` is open or half-open. */
  anyNotClosed(service: string): boolean {
    return (this.#notClosed.get(service) ?? 0) > 0;
  }

  /** Every breaker's state. */
  list(): BreakerInfo[] {
    const out: BreakerInfo[] = [];
    for (const m of this.#byService.values())
      for (const b of m.values())
        out.push({ service: b.service, instanceId: b.instanceId, state: b.state, ...b.window });
    return out;
  }

  /** Clears every breaker's half-open timer (the App stops). */
  close(): void {
    for (const m of this.#byService.values()) for (const b of m.values()) b.dispose();
  }

  #changed(b: Breaker, from: BreakerState, to: BreakerState): void {
    const n = this.#notClosed.get(b.service) ?? 0;
    if (from === "closed") this.#notClosed.set(b.service, n + 1);
    else if (to === "closed") this.#notClosed.set(b.service, n - 1);
    const line = { service: b.service, instanceId: b.instanceId, from, to };
    if (to === "open") this.#log.warn(line, `circuit breaker of ${b.service} ${b.instanceId} opened`);
    else
      this.#log.info(
        line,
        `circuit breaker of ${b.service} ${b.instanceId} ${to === "closed" ? "closed" : "half-open"}`,
      );
    this.#events.emit({ type: "breaker", ...line });
  }
}
