/**
 * The client side of the policy chain, inside the trace and deadline interceptors and the
 * App's and client's own: bulkhead → retry (and hedge) → per-instance circuit breaker →
 * transport. The Caller hands it two functions (`AttemptHost`): pick a target, skipping
 * instances, and send one attempt to a target. A call that cannot be retried or hedged takes
 * the short path (one pick, one send, the outcome recorded); the rest runs the retry loop.
 */
import { idlErrorName } from "../codec/error-wire.js";
import { Code, copyError, FanError } from "../errors.js";
import type { OutgoingRequest } from "../call/interceptors.js";
import type { Target } from "../call/route.js";
import { type AttemptOutcome, cancelled, deadlineExceeded } from "../call/pending.js";
import { lostInstanceOf } from "../call/lost.js";
import type { ShardHooks } from "../call/shard-route.js";
import { withTraceId } from "../telemetry/calls.js";
import { follow } from "../transports/abort.js";
import { backoffMs, LatencyWindow, type RetryBudget } from "./budget.js";
import { type Breaker, type Breakers, type Verdict, verdictOf } from "./breaker.js";
import type { PolicyEvents } from "./events.js";
import type { ResolvedPolicy } from "./options.js";

/** What the policy needs from the Caller. */
export interface AttemptHost {
  /**
   * The target of one attempt, skipping the instances `skip` rejects: undefined when it
   * rejects every candidate; throws UNAVAILABLE when there is no candidate at all.
   */
  pick(req: OutgoingRequest, skip: ((target: Target) => boolean) | undefined): Target | undefined;
  /**
   * Sends one attempt (`now`: the clock reading of the deadline, when no time has passed).
   * `outcome`: told the attempt's result before the returned promise settles, when the host
   * sets `outcome.attached` (one pending call carries the attempt); otherwise the policy reacts
   * to the returned promise. `hooks`: a sharded call whose owner refused it and that falls back
   * to another instance within the attempt reports the move (`moved`) and skips instances
   * `blocked` rejects.
   */
  send(
    target: Target,
    req: OutgoingRequest,
    now?: number,
    outcome?: AttemptOutcome,
    hooks?: ShardHooks,
  ): Promise<unknown>;
  /**
   * A call ends with `err` before any attempt of it was sent (bulkhead full, no instance, every
   * breaker open, deadline or cancel while waiting): returns the error the caller gets (with
   * the call's trace id), counted in the call's metrics.
   */
  refused(req: OutgoingRequest, err: unknown): unknown;
}

/** What a ClientPolicy shares with the App. */
export interface PolicyShared {
  readonly events: PolicyEvents;
  readonly breakers: Breakers | undefined;
  budget(service: string): RetryBudget;
}

/**
 * Transports on which the broker, not the caller, hands a call to one of the instances that
 * consume the version's shared queue: a breaker there guards the queue, keyed by its endpoint
 * (`amqp://{cluster}/{service}/{version}`), since a failure says nothing about one instance.
 * Every instance advertises its own endpoint, `…/{version}/{instanceId}` (transports/endpoint.ts),
 * but only a sharded call goes to the instance named there (its own queue): its breaker is keyed
 * by that endpoint, the owner's queue.
 */
const BROKER_PICKS: ReadonlySet<string> = new Set(["amqp", "redis", "nats"]);

/**
 * The shared-queue endpoint of each instance endpoint seen, by endpoint: a call with its
 * transport pinned gets a new Target each time, so the cache is not by Target. Instances come
 * and go, so it is emptied once it holds `MAX_QUEUE_KEYS`.
 */
const queueKeys = new Map<string, string>();
const MAX_QUEUE_KEYS = 1024;

/**
 * The breaker key of a target: its instance id where the caller picks the instance; on a broker,
 * the endpoint of the queue the call goes to (`sharded`: the instance's own, else the version's).
 */
export function breakerKey(target: Target, sharded: boolean): string {
  if (!BROKER_PICKS.has(target.transport.name)) return target.info.instanceId;
  if (sharded) return target.endpoint;
  let key = queueKeys.get(target.endpoint);
  if (key === undefined) {
    if (queueKeys.size >= MAX_QUEUE_KEYS) queueKeys.clear();
    key = queueEndpoint(target.endpoint);
    queueKeys.set(target.endpoint, key);
  }
  return key;
}

/** `scheme://cluster/service/version[/instance]` (each part URI-encoded) without its instance part. */
function queueEndpoint(endpoint: string): string {
  const parts = endpoint.split("/");
  return parts.length > 5 ? parts.slice(0, 5).join("/") : endpoint;
}

const DEFAULT_RETRIES = 2;
const DEFAULT_HEDGE_MS = 100;

/**
 * An attempt: its target and breaker slot, and (once sent) what its outcome feeds: the breaker,
 * the retry budget, the latency window, and the retry loop of a first attempt. The pending call
 * that carries the attempt tells it the outcome (`AttemptOutcome`), so the short path adds no
 * promise and no reaction per call.
 */
class Slot implements AttemptOutcome {
  attached = false;
  req: OutgoingRequest | undefined = undefined;
  host: AttemptHost | undefined = undefined;
  /** When it was sent (read only with hedging on: the latency window). */
  started = 0;
  /** Retries left to a first attempt made on the short path. */
  retries = 0;

  constructor(
    readonly policy: ClientPolicy,
    /** Where it goes; a sharded call falling back or redirected within the attempt moves it (`#moved`). */
    public target: Target,
    public breaker: Breaker | undefined,
    /** This attempt is its half-open breaker's one probe. */
    public probe: boolean,
  ) {}

  ok(now?: number): void {
    this.policy.attemptOk(this, now);
  }

  failed(e: unknown): Promise<unknown> | undefined {
    return this.policy.attemptFailed(this, e);
  }
}

/** Errors made here that must not be retried (every instance's breaker is open). */
const failFast = new WeakSet<object>();

/** Why a retry the call's policy allows was not made, when every breaker is open. */
const BREAKERS_OPEN = "circuit breaker open for every instance";

/**
 * The error a call ends with when a retry its policy allows is withheld (`why`: the retry
 * budget is spent, every breaker is open, the deadline is too near): a copy of `e`, its code
 * unchanged, with ` (not retried: why)` after its message and `details.notRetried` (when its
 * details are absent or an object). A user who wrote `@retry(3)` and reads one attempt's
 * error is told why there was no other. `last`: the error of the attempt before, when `e` is
 * not that error (the breaker refusal, which says why already): its message is added and it is
 * kept as the cause.
 */
function withheld(e: unknown, why: string, last?: unknown): unknown {
  if (!FanError.is(e)) return e;
  const d = e.details;
  const plain = d === undefined || (typeof d === "object" && d !== null && !Array.isArray(d));
  if (last !== undefined && last !== e) {
    const details = plain ? { ...(d as object), notRetried: why } : d;
    const before = FanError.is(last) ? `; the attempt before failed: ${last.message}` : "";
    const out = new FanError(e.code, `${e.message}${before}`, { details, cause: last });
    failFast.add(out);
    return out;
  }
  const out = copyError(e);
  out.message = `${e.message} (not retried: ${why})`;
  if (plain) (out as { details: unknown }).details = { ...(d as object | undefined), notRetried: why };
  return out;
}

/** The policy chain of one client (one Caller). */
export class ClientPolicy {
  readonly #service: string;
  readonly #shared: PolicyShared;
  readonly #breakers: Breakers | undefined;
  readonly #budget: RetryBudget;
  readonly #policy: ResolvedPolicy;
  readonly #codes: ReadonlySet<string>;
  readonly #maxInFlight: number;
  readonly #latency = new Map<string, LatencyWindow>();
  #inFlight = 0;
  /** The target of the last attempt and its breaker (`#slot`). */
  #lastTarget: Target | undefined;
  #lastBreaker: Breaker | undefined;
  #lastSharded = false;

  constructor(service: string, policy: ResolvedPolicy, shared: PolicyShared) {
    this.#service = service;
    this.#shared = shared;
    // Breakers are the App's, per instance; their thresholds too. A client may only opt out.
    this.#breakers = policy.breakers ? shared.breakers : undefined;
    this.#budget = shared.budget(service);
    this.#policy = policy;
    this.#codes = new Set(policy.retry?.codes ?? [Code.UNAVAILABLE]);
    this.#maxInFlight = policy.bulkhead?.maxInFlight ?? Number.POSITIVE_INFINITY;
  }

  /** Calls in flight through this client (the bulkhead's count). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Runs one call or push through bulkhead, retries, breakers and the transport. */
  run(req: OutgoingRequest, host: AttemptHost, now?: number): Promise<unknown> {
    if (this.#maxInFlight !== Number.POSITIVE_INFINITY) return this.#bulkhead(req, host, now);
    return this.#retrying(req, host, now);
  }

  #bulkhead(req: OutgoingRequest, host: AttemptHost, now: number | undefined): Promise<unknown> {
    if (this.#inFlight >= this.#maxInFlight) {
      this.#shared.events.emit({ type: "bulkhead", service: this.#service, method: req.method.name });
      return Promise.reject(
        host.refused(
          req,
          new FanError(
            Code.RESOURCE_EXHAUSTED,
            `${this.#service}.${req.method.name}: ${this.#maxInFlight} calls already in flight on this client (bulkhead)`,
            { details: { maxInFlight: this.#maxInFlight } },
          ),
        ),
      );
    }
    this.#inFlight++;
    const release = (): void => {
      this.#inFlight--;
    };
    const p = this.#retrying(req, host, now);
    p.then(release, release);
    return p;
  }

  /** Retries allowed for this call: the call's `retry`, else (idempotent only) options, `@retry(n)`, 2. */
  #retriesOf(req: OutgoingRequest): number {
    // Pushes are re-sent by their transport with the same id, and by the caller with its
    // idempotencyKey; a policy retry would make a new id the consumer's dedupe cannot match.
    if (req.kind === "push") return 0;
    const asked = req.opts?.retry;
    if (asked === false) return 0;
    if (typeof asked === "number") return asked;
    const retry = this.#policy.retry;
    if (retry === undefined || !req.method.idempotent) return 0;
    return retry.max ?? (req.method.retry > 0 ? req.method.retry : DEFAULT_RETRIES);
  }

  #retrying(req: OutgoingRequest, host: AttemptHost, now: number | undefined): Promise<unknown> {
    const retries = this.#retriesOf(req);
    // A sharded call has one target, its shard's owner: nothing to hedge to.
    const hedge =
      this.#policy.hedge !== undefined &&
      req.kind === "call" &&
      req.method.idempotent &&
      req.method.shard === undefined;
    if (hedge || this.#breakers?.anyNotClosed(this.#service) === true) return this.#loop(req, host, retries, hedge);
    // The short path: every breaker closed, so the first attempt takes the strategy's own pick
    // and only a failure enters the retry loop (no Set, no async function per call).
    let target: Target;
    try {
      target = host.pick(req, undefined) as Target;
    } catch (e) {
      return Promise.reject(host.refused(req, e));
    }
    return this.#attempt(this.#slot(target, req.method.shard !== undefined), req, host, now, undefined, retries);
  }

  /**
   * Attempts until one answers, the error is not retryable, the retries or the budget are
   * spent, or the next backoff would end past the deadline. `first`: the failure of a first
   * attempt made on the short path, and the key of its target.
   */
  async #loop(
    req: OutgoingRequest,
    host: AttemptHost,
    retries: number,
    hedge: boolean,
    first?: { readonly err: unknown; readonly key: string },
  ): Promise<unknown> {
    const tried = new Set<string>();
    let failed = first !== undefined;
    let err: unknown = first?.err;
    // An attempt went out: its outcome is counted in its transport's series, so the call's
    // end is never a refusal ("none") after that, whatever stops the retries.
    let sent = first !== undefined;
    if (first !== undefined) tried.add(first.key);
    // The error the call ends with, with its trace id: an attempt's own error has it already,
    // but one made here after an attempt was sent (every breaker open, no instance left) not.
    const end = (e: unknown): unknown => (sent ? withTraceId(e, req.headers, req.service.name) : host.refused(req, e));
    for (let n = 0; ; ) {
      if (!failed) {
        let slot: Slot | undefined;
        try {
          slot = await this.#choose(req, host, tried);
          return await (hedge
            ? this.#hedged(slot, req, host, tried)
            : this.#attempt(slot, req, host, undefined, tried));
        } catch (e) {
          // Every breaker open for a retry: the caller is told so, and what the attempt before said.
          err = slot === undefined && sent && failFast.has(e as object) ? withheld(e, BREAKERS_OPEN, err) : e;
          if (slot !== undefined) sent = true;
        }
      }
      failed = false;
      if (n >= retries || !this.#retryable(err)) throw end(err);
      if (!this.#budget.allows()) {
        this.#shared.events.emit({ type: "retry-throttled", service: this.#service, method: req.method.name });
        throw end(withheld(err, "retry budget spent"));
      }
      n++;
      const wait = backoffMs(n, this.#policy.retry ?? {});
      if (Date.now() + wait >= req.deadline) throw end(withheld(err, "the deadline is too near"));
      if (wait > 0) {
        try {
          await sleep(wait, req);
        } catch (e) {
          throw end(e);
        }
      }
      this.#shared.events.emit({
        type: "retry",
        service: this.#service,
        method: req.method.name,
        attempt: n + 1,
        code: (err as FanError).code,
      });
    }
  }

  #retryable(e: unknown): boolean {
    return this.#failed(e) && !failFast.has(e as object);
  }

  /**
   * A retryable code that is neither an IDL-declared error nor relayed from the instance's own
   * dependency (those are answers, never retried: another instance would call the same one).
   */
  #failed(e: unknown): boolean {
    return FanError.is(e) && this.#codes.has(e.code) && idlErrorName(e) === undefined && e.relayedFrom === undefined;
  }

  /**
   * The target of the next attempt: an instance whose breaker admits it, one not tried yet
   * if there is one; when every candidate's breaker is open or probing, waits for a probe's
   * outcome, or fails fast with UNAVAILABLE naming the open breakers.
   */
  async #choose(req: OutgoingRequest, host: AttemptHost, tried: ReadonlySet<string>): Promise<Slot> {
    const service = this.#service;
    const breakers = this.#breakers;
    const sharded = req.method.shard !== undefined;
    for (;;) {
      const blocked =
        breakers?.anyNotClosed(service) === true
          ? (t: Target) => breakers.find(service, breakerKey(t, sharded))?.admits === false
          : undefined;
      // A sharded call's retry goes to its shard's owner again (re-resolved: ownership may have
      // moved), tried or not; its host throws UNAVAILABLE naming the shard when the owner is blocked.
      const skip =
        tried.size === 0 || sharded ? blocked : (t: Target) => tried.has(breakerKey(t, false)) || blocked?.(t) === true;
      const target = host.pick(req, skip) ?? (tried.size > 0 ? host.pick(req, blocked) : undefined);
      // The breaker's slot is taken in the same synchronous run as the pick, so no other caller
      // can take a half-open breaker's one probe in between.
      if (target !== undefined) return this.#slot(target, sharded);
      const out = breakers?.list().filter((b) => b.service === service && b.state !== "closed") ?? [];
      const probing = out
        .map((b) => breakers?.find(service, b.instanceId))
        .filter((b): b is Breaker => b?.probing === true);
      if (probing.length === 0) {
        const opensIn = Math.min(...out.map((b) => breakers?.find(service, b.instanceId)?.opensInMs ?? 0));
        const err = new FanError(
          Code.UNAVAILABLE,
          `${service}.${req.method.name}: the circuit breaker of every instance is open (${out.map((b) => `${b.instanceId} ${b.state}`).join(", ")})`,
          // retryAfterMs: when the first of them lets a probe through (the gateway's Retry-After).
          { details: { service, openBreakers: out.map((b) => b.instanceId), retryAfterMs: opensIn } },
        );
        failFast.add(err);
        throw err;
      }
      // Half-open with a probe out: wait for its outcome (bounded by the deadline), then pick again.
      await untilOr(Promise.race(probing.map((b) => b.probeSettled())), req);
    }
  }

  /** Whether the breaker of a sharded call's attempt to `target` admits no attempt now. */
  #blocked(target: Target): boolean {
    return this.#breakers?.find(this.#service, breakerKey(target, true))?.admits === false;
  }

  /** Takes the breaker slot of an attempt to `target` (the probe, when half-open). */
  #slot(target: Target, sharded: boolean): Slot {
    const breakers = this.#breakers;
    if (breakers === undefined) return new Slot(this, target, undefined, false);
    // Routes hand out the same Target object for an instance each time: a run of calls to one
    // instance looks its breaker up once (breakers are never removed, so it stays the one).
    let breaker = this.#lastBreaker;
    if (target !== this.#lastTarget || sharded !== this.#lastSharded || breaker === undefined) {
      breaker = breakers.of(this.#service, breakerKey(target, sharded));
      this.#lastTarget = target;
      this.#lastSharded = sharded;
      this.#lastBreaker = breaker;
    }
    return new Slot(this, target, breaker, breaker.acquire());
  }

  /**
   * One attempt, its outcome recorded by the breaker, the budget and the latency window.
   * `retries` (the short path's first attempt): a retryable failure continues in the retry loop.
   */
  #attempt(
    slot: Slot,
    req: OutgoingRequest,
    host: AttemptHost,
    now?: number,
    tried?: Set<string>,
    retries = 0,
  ): Promise<unknown> {
    const sharded = req.method.shard !== undefined;
    tried?.add(breakerKey(slot.target, sharded));
    slot.req = req;
    slot.host = host;
    slot.retries = retries;
    if (this.#policy.hedge !== undefined) slot.started = now ?? Date.now();
    // A sharded call the owner refused and that falls back to another instance: the refusal
    // is recorded on the owner's breaker (as any failed attempt), the outcome on the other's. One
    // redirected: the redirect is an answer, the outcome the owner's it was redirected to.
    const hooks: ShardHooks | undefined = !sharded
      ? undefined
      : {
          blocked: this.#breakers === undefined ? undefined : (t) => this.#blocked(t),
          moved: (_from, err, to) => this.#moved(slot, verdictOf(err), to, tried),
          redirected: (_from, to) => this.#moved(slot, "success", to, tried),
        };
    const p = host.send(slot.target, req, now, slot, hooks);
    if (slot.attached) return p;
    return p.then(
      (v) => {
        this.attemptOk(slot);
        return v;
      },
      (e: unknown) => {
        const instead = this.attemptFailed(slot, e);
        if (instead !== undefined) return instead;
        throw e;
      },
    );
  }

  /**
   * A sharded attempt that went on from `slot.target` to `to` within the attempt (a fallback or
   * a redirect): the first instance's breaker records `verdict`, and the slot moves to `to`'s
   * breaker; `to` undefined (a redirect that cannot be followed): no breaker records the outcome.
   */
  #moved(slot: Slot, verdict: Verdict, to: Target | undefined, tried: Set<string> | undefined): void {
    slot.breaker?.record(verdict, slot.probe);
    if (to === undefined) {
      slot.breaker = undefined;
      slot.probe = false;
      return;
    }
    const next = this.#slot(to, true);
    slot.target = to;
    slot.breaker = next.breaker;
    slot.probe = next.probe;
    tried?.add(breakerKey(to, true));
  }

  /** An attempt answered (internal: `Slot`; `now`: a `Date.now()` reading of this instant, if taken). */
  attemptOk(slot: Slot, now?: number): void {
    slot.breaker?.record("success", slot.probe, now);
    this.#budget.success();
    if (this.#policy.hedge !== undefined) this.#window(slot.req as OutgoingRequest).add(Date.now() - slot.started);
  }

  /**
   * An attempt failed with `e` (internal: `Slot`): the retry loop's promise when a first attempt
   * made on the short path may be retried, else undefined (the call fails with `e`).
   */
  attemptFailed(slot: Slot, e: unknown): Promise<unknown> | undefined {
    slot.breaker?.record(verdictOf(e), slot.probe);
    if (this.#failed(e)) {
      this.#budget.failure(lostInstanceOf(e));
      if (slot.retries > 0)
        return this.#loop(slot.req as OutgoingRequest, slot.host as AttemptHost, slot.retries, false, {
          err: e,
          key: breakerKey(slot.target, slot.req?.method.shard !== undefined),
        });
    } else if (!FanError.is(e) || e.code !== Code.CANCELLED) this.#budget.success();
    return undefined;
  }

  /**
   * A hedged call: the first attempt to `first`; if it has not answered after the hedging
   * delay, a second to another instance. The first answer wins and the other attempt is
   * cancelled; when both fail, the later error is the call's.
   */
  #hedged(first: Slot, req: OutgoingRequest, host: AttemptHost, tried: Set<string>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const attempts: AbortController[] = [];
      let pending = 0;
      let done = false;
      const finish = (): void => {
        done = true;
        clearTimeout(timer);
        for (const c of attempts) c.abort(new FanError(Code.CANCELLED, "another attempt answered first (hedging)"));
      };
      const launch = (slot: Slot): void => {
        const ctl = new AbortController();
        attempts.push(ctl);
        // The attempt's own signal follows the caller's until the attempt settles (not
        // `AbortSignal.any`, which stays on the caller's signal, maybe long-lived, until it aborts).
        const unfollow = req.signal === undefined ? undefined : follow(ctl, [req.signal]);
        const sub: OutgoingRequest = { ...req, headers: { ...req.headers }, signal: ctl.signal };
        pending++;
        this.#attempt(slot, sub, host, undefined, tried).then(
          (v) => {
            unfollow?.();
            if (done) return;
            attempts.splice(attempts.indexOf(ctl), 1);
            finish();
            resolve(v);
          },
          (e: unknown) => {
            unfollow?.();
            pending--;
            // The other attempt still runs, or none was sent (the retry loop decides what next).
            if (done || pending > 0) return;
            finish();
            reject(e);
          },
        );
      };
      const delay = this.#policy.hedge?.delayMs ?? this.#window(req).p95() ?? DEFAULT_HEDGE_MS;
      const timer = setTimeout(() => {
        if (done) return;
        const skip = (t: Target): boolean =>
          tried.has(breakerKey(t, false)) ||
          this.#breakers?.find(this.#service, breakerKey(t, false))?.admits === false;
        let second: Target | undefined;
        try {
          second = host.pick(req, skip);
        } catch {
          second = undefined;
        }
        if (second === undefined) return;
        if (!this.#budget.allows()) {
          this.#shared.events.emit({ type: "retry-throttled", service: this.#service, method: req.method.name });
          return;
        }
        this.#shared.events.emit({ type: "hedge", service: this.#service, method: req.method.name });
        launch(this.#slot(second, false));
      }, delay);
      launch(first);
    });
  }

  #window(req: OutgoingRequest): LatencyWindow {
    let w = this.#latency.get(req.method.name);
    if (w === undefined) {
      w = new LatencyWindow();
      this.#latency.set(req.method.name, w);
    }
    return w;
  }
}

/** Waits `ms`, or rejects CANCELLED when the call's signal aborts. */
function sleep(ms: number, req: OutgoingRequest): Promise<void> {
  return untilOr(new Promise<void>((r) => setTimeout(r, ms)), req);
}

/** `p`, or DEADLINE_EXCEEDED at the call's deadline, or CANCELLED when its signal aborts. */
function untilOr(p: Promise<void>, req: OutgoingRequest): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const signal = req.signal;
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelled(req));
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener("abort", onAbort);
        reject(deadlineExceeded(req));
      },
      Math.max(0, req.deadline - Date.now()),
    );
    if (signal?.aborted === true) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    p.then(() => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
