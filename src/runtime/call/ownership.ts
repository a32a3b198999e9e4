/**
 * The serving side of sharding: which shards one served instance owns, recomputed from the
 * discovery cache of its own service whenever an instance joins or leaves (the same
 * `assignShards` every client runs), the guard that answers a call for a shard it does not
 * own with a redirect naming the owner, and the handler's `onShards` hook, called once after
 * registration and on every change. A call for a shard this instance owns reaches the handler
 * only once the `onShards` that gave it the shard resolved: until then the guard holds it (up
 * to its deadline); after that hook threw, it answers UNAVAILABLE and calls the hook again.
 *
 * A shard moves between live instances (a join) by a hand-over over the instances' discovery
 * records, no channel of its own: each instance advertises `serving`, the shards it owns or is
 * still releasing. The instance losing a shard redirects new calls for it at once, but the calls
 * it admitted for it run to the end and may still write its sharded states; once they settled
 * (bounded by their deadlines) its `onShards` hears of the loss, its states save and leave, and
 * its record drops the shard. The instance gaining it holds its calls, and runs `onShards` for
 * it, only once the previous owner's record no longer serves it (or is gone), or the bound the
 * previous owner advertised (`releasingUntil`) passed: then with a warning.
 *
 * A graceful stop hands over the same way (`leave`): its record stays, marked `stopping` (routing
 * counts it as gone, so the other instances own its shards at once), serving every shard it held
 * until its calls drained and its states saved; the instances taking them wait for that.
 */
import semver from "semver";
import type { Logger } from "pino";
import type { LifecycleContext, ShardChange, ShardHooks } from "./context.js";
import type { ServiceDescriptor } from "../descriptor.js";
import type { Directory, InstanceInfo, ServingInfo } from "../discovery/types.js";
import { Code, type WireError } from "../errors.js";
import { type CallSignal, onAbort, signalOf } from "../transports/abort.js";
import { assignShards, ownedBy, shardOf, type Redirect } from "./shards.js";

/** True when a service has `@shard` methods or states (only those take part in ownership). */
export function isSharded(d: ServiceDescriptor): boolean {
  return (
    Object.values(d.methods).some((m) => m.shard !== undefined) ||
    Object.values(d.states).some((s) => s.sharded === true)
  );
}

/** What the owners of sharded states follow (states/owner.ts). */
export interface ShardOwnership {
  readonly instanceId: string;
  /**
   * The shards owned now: not those gained from a previous owner that has not released them yet
   * (`awaitedFrom`), whose states must not be loaded or written before that release.
   */
  owned(): readonly number[];
  /** The owner of `shard` in this instance's view (undefined before the first view, or none). */
  ownerOf(shard: number): string | undefined;
  /** Calls `fn` on every change of the owned shards, after `onShards`; returns its removal. */
  onChange(fn: (change: ShardChange) => void | Promise<void>): () => void;
  /**
   * True while `shard` was lost to another instance but is not released yet: calls admitted for
   * it still run, and may still write its states (the new owner waits for the release).
   */
  releasing?(shard: number): boolean;
  /**
   * While `shard` moved to this instance but its previous owner has not released it yet: the
   * instances whose records still serve it (else undefined).
   */
  awaitedFrom?(shard: number): readonly string[] | undefined;
}

/** How this instance's discovery record says what it serves (`Registration.update`). */
export type Advertise = (serving: ServingInfo) => Promise<void>;

/**
 * The hand-over's bounds. The releasing side gives up waiting for its calls `marginMs` past the
 * latest deadline among them, that deadline counted at most `maxReleaseMs` past the move (a push
 * with a long `@ttl` would hold the shard, and its new owner's calls, that long); the gaining side waits for the previous owner's release up to the
 * `releasingUntil` it advertises plus `takeoverMs`, or, while that owner has not advertised one
 * (it has not seen the change yet), `noticeMs` plus `takeoverMs` after it began to wait.
 * `takeoverMs` is clearly larger than `marginMs`: at a call running past its deadline the old
 * owner gives up (and releases: states saved, record rewritten) `takeoverMs - marginMs` before
 * the gaining side would take the shard over, so the release is what it sees, not its own bound
 * with both writing the shard; equal, both would act at the same moment and the taker would win.
 * A release waits at most `saveMs` for its states (their last heartbeat and snapshot save) before
 * its record drops the shard: within `takeoverMs - marginMs`, so a save that hangs neither holds
 * every later change of this instance's shards nor outlasts the gaining side's bound.
 */
export interface ReleaseLimits {
  readonly marginMs: number;
  readonly takeoverMs: number;
  readonly noticeMs: number;
  readonly maxReleaseMs: number;
  readonly saveMs: number;
}

export const RELEASE_LIMITS: ReleaseLimits = {
  marginMs: 2000,
  takeoverMs: 5000,
  noticeMs: 10_000,
  maxReleaseMs: 30_000,
  saveMs: 2500,
};

/** Per shard: may its calls reach the handler (a `Uint8Array` of these, read on every call). */
const WAITING = 0;
const READY = 1;
const FAILED = 2;
/** A failed `onShards` is called again for its shards after 1 s, doubling up to 30 s. */
const RETRY_MS = 1000;
const RETRY_MAX_MS = 30_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A failed write of what this instance serves is tried again after 100 ms, doubling up to 5 s. */
const ADVERTISE_RETRY_MS = 100;
const ADVERTISE_RETRY_MAX_MS = 5000;

/** How long holding calls may go unnoticed, and how many may wait. */
export interface HoldLimits {
  /** An `onShards` running this long is logged as a warning (calls wait for it)... */
  readonly slowHookMs: number;
  /** ...and again every this long while it still runs. */
  readonly slowHookRepeatMs: number;
  /** Calls and pushes held at once; more answer UNAVAILABLE naming the shard. */
  readonly maxHeld: number;
  /**
   * How long calls may have been held (since the first of the ones now held) before a transport
   * window's share bounds them (`HoldWindow`): a brief hook under a burst keeps holding them all,
   * a slow one stops filling the window.
   */
  readonly windowAfterMs: number;
}

/** 10,000 held calls are a few MB; over http nothing else bounds them (load shedding is opt-in). */
export const HOLD_LIMITS: HoldLimits = {
  slowHookMs: 10_000,
  slowHookRepeatMs: 60_000,
  maxHeld: 10_000,
  windowAfterMs: 3000,
};

/**
 * The share of one transport window (its calls' or its push queue's: transport.ts `window`)
 * that calls and pushes held for shards not ready may take: a held one keeps its slot, so
 * without a bound a hook that runs long would let held work fill the window and every other
 * call wait behind it. Counted by `guard` while held.
 */
export interface HoldWindow {
  held: number;
  /** At most this many held at once; one more is refused (UNAVAILABLE naming the shard). */
  readonly max: number;
  /** How the refusal names it: `redis maxInFlight 256`. */
  readonly name: string;
}

/** Three quarters of a window of `size` (a quarter, at least one slot, stays free for the rest). */
export function holdWindow(transport: string, size: number, option: string): HoldWindow {
  return { held: 0, max: Math.max(0, size - Math.max(1, Math.ceil(size / 4))), name: `${transport} ${option} ${size}` };
}

/**
 * The refusals of a shard not ready here that say nothing of the call or push itself: the hook
 * gaining it failed, or it would be held past `maxHeld` or the window's share. A push from a
 * broker's queue refused so is kept by its consumer, not counted as a delivery (kept-push.ts).
 */
const notReadyRefusals = new WeakSet<WireError>();

/** Whether the guard refused with `err` for this instance's state alone (see `notReadyRefusals`). */
export function isNotReady(err: WireError): boolean {
  return notReadyRefusals.has(err);
}

function notReady(err: WireError): WireError {
  notReadyRefusals.add(err);
  return err;
}

/**
 * What the guard answers: a redirect, a hold that settles with one (or none: check again), the
 * shard the call is admitted for (the caller reports its end: `settled`), or undefined (the call
 * names no shard).
 */
export type Guarded = WireError | Promise<WireError | undefined> | number | undefined;

/** Ownership of one served instance. */
export class Ownership implements ShardOwnership {
  readonly #d: ServiceDescriptor;
  readonly #instanceId: string;
  readonly #pinned: readonly number[];
  readonly #log: Logger;
  readonly #handler: ShardHooks;
  readonly #context: () => LifecycleContext;
  #owners: (string | undefined)[] | undefined;
  #owned: readonly number[] = [];
  #off: (() => void) | undefined;
  #notified: Promise<void> = Promise.resolve();
  /** WAITING, READY or FAILED per shard (see `guard`). */
  readonly #ready: Uint8Array;
  /** The change that last gained each shard: only its hook's outcome decides the shard's state. */
  readonly #gainedIn: Uint32Array;
  #seq = 0;
  /** Calls held for a shard (or the first view): woken on every change of what this one owns. */
  readonly #waiters = new Set<() => void>();
  /**
   * Since when calls have waited (`limits.windowAfterMs`): the start of the `onShards` running now,
   * else of the first call now held (the first view not computed yet).
   */
  #heldSince = 0;
  #hookSince: number | undefined;
  /**
   * From `freeze` or `stop` to the next `start`: discovery is followed only for shards this
   * instance loses (`#follow`); calls for shards not ready are refused, not held (and, once
   * `stop` dropped the table, all of them).
   */
  #frozen = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #retryMs = RETRY_MS;
  /** Calls and pushes admitted per shard that have not settled, and the latest deadline among them. */
  readonly #running: Uint32Array;
  readonly #runUntil: Float64Array;
  /** Per shard releasing: by when it is released (`releasingUntil`: its calls' deadline, capped). */
  readonly #releaseBy: Float64Array;
  /** From `leave` (a graceful stop) to the next `start`: what the record serves meanwhile. */
  #leaving: ServingInfo | undefined;
  /**
   * Shards lost while calls admitted for them run: released (hooks told, states saved) once they
   * settled or their bound passed. Then in `#releaseQueued` until that release has run.
   */
  readonly #releasing = new Map<number, ReturnType<typeof setTimeout>>();
  readonly #releaseQueued = new Set<number>();
  /** Shards gained from a live instance that has not released them yet, and since when. */
  readonly #awaiting = new Map<number, { readonly since: number }>();
  #awaitTimer: ReturnType<typeof setTimeout> | undefined;
  #advertise: Advertise | undefined;
  #advertising: Promise<void> | undefined;
  #advertiseAgain = false;
  /** The last `serving()` written (JSON), and the retry of a failed write while it differs. */
  #advertised: string | undefined;
  #advertiseRetry: ReturnType<typeof setTimeout> | undefined;
  #advertiseRetryMs = ADVERTISE_RETRY_MS;
  /** The instances of the last view (their records tell what they still serve). */
  #view: readonly InstanceInfo[] = [];
  readonly release: ReleaseLimits;

  constructor(
    d: ServiceDescriptor,
    instanceId: string,
    pinned: readonly number[],
    handler: object,
    context: () => LifecycleContext,
    log: Logger,
    readonly limits: HoldLimits = HOLD_LIMITS,
    release: Partial<ReleaseLimits> = {},
  ) {
    this.release = { ...RELEASE_LIMITS, ...release };
    this.#running = new Uint32Array(d.shards);
    this.#runUntil = new Float64Array(d.shards);
    this.#releaseBy = new Float64Array(d.shards);
    this.#d = d;
    this.#instanceId = instanceId;
    this.#pinned = pinned;
    this.#handler = handler as ShardHooks;
    this.#context = context;
    this.#log = log;
    this.#ready = new Uint8Array(d.shards);
    this.#gainedIn = new Uint32Array(d.shards);
  }

  /**
   * The shards owned now (none before the first discovery view), without those awaited from
   * their previous owner: `ctx.shards` and the sharded states see a shard only once its calls
   * may run here.
   */
  owned(): readonly number[] {
    return this.#ownedNow();
  }

  awaitedFrom(shard: number): readonly string[] | undefined {
    if (!this.#awaiting.has(shard)) return undefined;
    return this.#servedElsewhere(shard).map((i) => i.instanceId);
  }

  get instanceId(): string {
    return this.#instanceId;
  }

  ownerOf(shard: number): string | undefined {
    return this.#owners?.[shard];
  }

  readonly #listeners = new Set<(change: ShardChange) => void | Promise<void>>();

  releasing(shard: number): boolean {
    return this.#releasing.has(shard) || this.#releaseQueued.has(shard);
  }

  /** The shards this instance's record advertises: owned, or lost and not released yet. */
  serving(): ServingInfo {
    if (this.#leaving !== undefined) return this.#leaving;
    const all = new Set([...this.#ownedNow(), ...this.#releasing.keys(), ...this.#releaseQueued]);
    let until = 0;
    for (const s of this.#releasing.keys()) until = Math.max(until, this.#releaseBy[s] as number);
    return {
      serving: [...all].sort((a, b) => a - b),
      ...(until > 0 && Number.isFinite(until) ? { releasingUntil: Math.round(until) } : {}),
    };
  }

  onChange(fn: (change: ShardChange) => void | Promise<void>): () => void {
    this.#listeners.add(fn);
    return () => void this.#listeners.delete(fn);
  }

  /**
   * Follows the service's instances; resolves once the first `onShards` ran. Bound again after
   * `stop` (a `@unique` instance that leads again), it starts afresh: `onShards` gains every
   * shard it owns, since others served them while it was gone (its hook heard of no loss).
   */
  async start(directory: Directory, advertise?: Advertise): Promise<void> {
    this.#advertise = advertise;
    this.#advertised = undefined;
    this.#advertiseRetryMs = ADVERTISE_RETRY_MS;
    this.#frozen = false;
    this.#leaving = undefined;
    this.#releaseQueued.clear();
    this.#awaiting.clear();
    this.#view = [];
    this.#owned = [];
    this.#notifiedOnce = false;
    this.#retryMs = RETRY_MS;
    const set = await directory.watch(this.#d.name);
    // Stopping instances' records too: they still serve the shards they release.
    const update = (): void => this.#update(set.records?.() ?? set.instances());
    this.#off = set.onChange(update);
    update();
    await this.#notified;
  }

  /**
   * As the instance begins to stop: no `onShards` from now on, and the table only loses shards
   * (`#follow`) until `stop`, so the calls that still arrive meanwhile are redirected or served
   * as before, except that a shard not ready answers UNAVAILABLE (stopping) instead of holding
   * them, and the calls held now answer so too.
   */
  freeze(): void {
    this.#frozen = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    // Stopping: the stop path drains every call, and unbinding releases every state then. A
    // shard releasing now stays so (its admitted calls may still write it) until that.
    for (const [s, t] of this.#releasing) {
      clearTimeout(t);
      this.#releaseQueued.add(s);
    }
    this.#releasing.clear();
    // Kept (not this instance's: `owned` leaves them out) but never gained from now on.
    clearTimeout(this.#awaitTimer);
    this.#awaitTimer = undefined;
    this.#advertise = undefined;
    clearTimeout(this.#advertiseRetry);
    this.#advertiseRetry = undefined;
    this.#wake();
  }

  /**
   * As a graceful stop begins (`freeze`, then this): every shard it owns or still releases is
   * releasing until the stop released its states, so the calls it drains may write them; what
   * the record should say meanwhile is returned (the caller writes it, and removes the record
   * once the states are saved): those shards, `until` (the drain's end) and `stopping`.
   */
  leave(until: number): ServingInfo {
    const held = this.serving().serving;
    this.freeze();
    for (const s of this.#ownedNow()) this.#releaseQueued.add(s);
    this.#leaving = { serving: held, releasingUntil: Math.round(until), stopping: true };
    return this.#leaving;
  }

  /** A call or push the guard admitted for `shard` settled (its handler ended). */
  readonly settled = (shard: number): void => {
    const n = (this.#running[shard] as number) - 1;
    this.#running[shard] = Math.max(0, n);
    if (n > 0) return;
    this.#runUntil[shard] = 0;
    if (this.#releasing.has(shard)) this.#released([shard]);
  };

  /**
   * Drops the table once the instance takes no more calls (the shared instance cache stays
   * open for clients): a sharded call that still comes answers UNAVAILABLE (stopping).
   */
  stop(): void {
    this.freeze();
    this.#off?.();
    this.#off = undefined;
    this.#owners = undefined;
  }

  /**
   * What a call for `input`'s shard gets: a redirect when another instance owns the shard;
   * a hold while the `onShards` that gave it to this one has not resolved (settles when
   * something changed, to check again, or with an error once `deadline` passed; with none,
   * early, when `signal` aborts: the caller checks it); UNAVAILABLE after that hook threw;
   * undefined when the handler may take it. A hold counts in `window` (the one the call came
   * on) while it lasts; with `window` full it is refused instead (UNAVAILABLE naming the shard).
   */
  readonly guard = (
    paths: readonly (readonly string[])[],
    input: unknown,
    deadline: number,
    signal?: CallSignal,
    window?: HoldWindow,
  ): Guarded => {
    const owners = this.#owners;
    if (owners === undefined) return this.#frozen ? this.#stopping() : this.#hold(undefined, deadline, signal, window);
    const shard = shardOf(input, paths, this.#d.shards);
    if (shard === undefined) return undefined;
    const owner = owners[shard];
    // The fast path is one typed-array read past the redirect check.
    if (owner === this.#instanceId) {
      if (this.#ready[shard] !== READY) return this.#notReady(shard, deadline, signal, window);
      this.#running[shard]++;
      if (deadline > (this.#runUntil[shard] as number)) this.#runUntil[shard] = deadline;
      return shard;
    }
    const details: Redirect = {
      redirect: true,
      shard,
      from: this.#instanceId,
      ...(owner === undefined ? {} : { owner }),
    };
    return {
      code: Code.UNAVAILABLE,
      message: `${this.#instanceId} does not own shard ${shard} of ${this.#d.name}${owner === undefined ? "" : `; ${owner} does`}`,
      details,
    };
  };

  #notReady(shard: number, deadline: number, signal: CallSignal | undefined, window?: HoldWindow): Guarded {
    if (this.#frozen) return this.#stopping();
    if (this.#ready[shard] !== FAILED) return this.#hold(shard, deadline, signal, window);
    return notReady({
      code: Code.UNAVAILABLE,
      message: `shard ${shard} of ${this.#d.name} is unavailable on ${this.#instanceId}: its onShards hook failed on gaining it (see its log); it is called again`,
      details: { shard },
    });
  }

  /**
   * Waits for the next change of what this instance owns or has loaded, `deadline` (a change
   * after it is too late as well), or the abort of `signal` (settles with no error: the caller
   * answers for its own signal).
   */
  #hold(
    shard: number | undefined,
    deadline: number,
    signal: CallSignal | undefined,
    window: HoldWindow | undefined,
  ): Guarded {
    if (this.#waiters.size >= this.limits.maxHeld) return this.#full(shard);
    if (this.#waiters.size === 0) this.#heldSince = Date.now();
    else if (
      window !== undefined &&
      window.held >= window.max &&
      Date.now() - (this.#hookSince ?? this.#heldSince) >= this.limits.windowAfterMs
    )
      return this.#windowFull(shard, window);
    if (window !== undefined) window.held++;
    return new Promise((resolve) => {
      let off: (() => void) | undefined;
      let ended = false;
      const end = (err: WireError | undefined): void => {
        if (ended) return;
        ended = true;
        if (window !== undefined) window.held--;
        clearTimeout(timer);
        this.#waiters.delete(wake);
        off?.();
        resolve(err);
      };
      const wake = (): void =>
        end(this.#frozen ? this.#stopping() : Date.now() >= deadline ? this.#late(shard) : undefined);
      const timer = setTimeout(
        () => end(this.#late(shard)),
        // setTimeout fires at once past 2^31 - 1 ms: a farther deadline waits that long.
        Math.min(Math.max(0, deadline - Date.now()), MAX_TIMER_MS),
      );
      this.#waiters.add(wake);
      // Held calls are rare: making a served call's lazy signal here costs nothing that matters.
      if (signal !== undefined) off = onAbort(signalOf(signal), () => end(undefined));
    });
  }

  #wake(): void {
    if (this.#waiters.size === 0) return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  #late(shard: number | undefined): WireError {
    const what =
      shard === undefined
        ? `${this.#instanceId} had not computed which shards of ${this.#d.name} it owns`
        : this.#awaiting.has(shard)
          ? `shard ${shard} of ${this.#d.name} was not ready on ${this.#instanceId}: its previous owner had not released it`
          : `shard ${shard} of ${this.#d.name} was not ready on ${this.#instanceId}: the onShards hook gaining it had not resolved`;
    return {
      code: Code.DEADLINE_EXCEEDED,
      message: `${what} by the deadline`,
      ...(shard === undefined ? {} : { details: { shard } }),
    };
  }

  #full(shard: number | undefined): WireError {
    const what =
      shard === undefined
        ? `${this.#instanceId} has not computed which shards of ${this.#d.name} it owns yet`
        : `shard ${shard} of ${this.#d.name} is not ready on ${this.#instanceId}: the onShards hook gaining it has not resolved`;
    return notReady({
      code: Code.UNAVAILABLE,
      message: `${what}, and ${this.#waiters.size} calls are held already (at most ${this.limits.maxHeld})`,
      ...(shard === undefined ? {} : { details: { shard } }),
    });
  }

  #windowFull(shard: number | undefined, window: HoldWindow): WireError {
    const what =
      shard === undefined
        ? `${this.#instanceId} has not computed which shards of ${this.#d.name} it owns yet`
        : `shard ${shard} of ${this.#d.name} is not ready on ${this.#instanceId}: its onShards hook is still running`;
    return notReady({
      code: Code.UNAVAILABLE,
      message: `${what}, and the ${window.held} calls and pushes held for that already take all of ${window.name} they may (${window.max}; the rest serves other work): try again`,
      ...(shard === undefined ? {} : { details: { shard } }),
    });
  }

  #stopping(): WireError {
    return { code: Code.UNAVAILABLE, message: `this instance of ${this.#d.name} is stopping` };
  }

  #update(all: readonly InstanceInfo[]): void {
    const major = semver.major(this.#d.version);
    const domain: InstanceInfo[] = all.filter((i) => semver.major(i.version) === major);
    // A stopping instance owns nothing (its calls go elsewhere); its record still serves what it releases.
    const live = domain.filter((i) => i.stopping !== true);
    if (this.#frozen) {
      this.#follow(assignShards(live, this.#d.shards));
      return;
    }
    const me = this.#instanceId;
    this.#view = domain;
    const members: { instanceId: string; shards: readonly number[] }[] = [...live];
    // Before our own registration is visible here we still count ourselves, as clients will.
    if (!domain.some((i) => i.instanceId === me)) members.push({ instanceId: me, shards: this.#pinned });
    this.#owners = assignShards(members, this.#d.shards);
    const owned = ownedBy(this.#owners, me);
    const before = this.#owned;
    if (sameList(before, owned) && this.#notifiedOnce) {
      this.#checkAwaiting();
      return;
    }
    this.#owned = owned;
    const first = !this.#notifiedOnce;
    this.#notifiedOnce = true;
    const gained: number[] = [];
    for (const s of owned) {
      if (!first && before.includes(s)) continue;
      // Lost a moment ago and still releasing: it never stopped serving it (no hook heard of it).
      const t = this.#releasing.get(s);
      if (t !== undefined) {
        clearTimeout(t);
        this.#releasing.delete(s);
        continue;
      }
      if (this.#servedElsewhere(s).length > 0) {
        this.#awaiting.set(s, { since: Date.now() });
        // No hook of an earlier change gaining it decides its readiness now.
        this.#gainedIn[s] = 0;
        if (this.#ready[s] !== FAILED) this.#ready[s] = WAITING;
      } else gained.push(s);
    }
    const lost: number[] = [];
    for (const s of first ? [] : before) {
      if (owned.includes(s)) continue;
      // Gained from a previous owner that had not released it yet: no hook heard of it either.
      if (this.#awaiting.delete(s)) continue;
      if ((this.#running[s] as number) > 0) this.#drain(s);
      else {
        lost.push(s);
        this.#releaseQueued.add(s);
      }
    }
    this.#log.info(
      {
        owned: owned.length,
        gained: gained.length,
        lost: lost.length,
        releasing: this.#releasing.size,
        awaiting: this.#awaiting.size,
      },
      "shards changed",
    );
    // A change that only awaits or releases later tells the hooks nothing yet (they hear of it then).
    if (first || gained.length > 0 || lost.length > 0) this.#enqueue({ owned: this.#ownedNow(), gained, lost }, true);
    this.#advertiseNow();
    this.#checkAwaiting();
    // Held calls look again: a shard that moved away is redirected now, not at its deadline.
    this.#wake();
  }

  /** The owned shards whose hooks ran or run (not those awaiting their previous owner's release). */
  #ownedNow(): readonly number[] {
    return this.#awaiting.size === 0 ? this.#owned : this.#owned.filter((s) => !this.#awaiting.has(s));
  }

  /** The other instances of the last view whose records say they still serve `shard`. */
  #servedElsewhere(shard: number): InstanceInfo[] {
    // A record of an older version has none (nothing to wait for); a malformed one counts as none.
    return this.#view.filter(
      (i) => i.instanceId !== this.#instanceId && Array.isArray(i.serving) && i.serving.includes(shard),
    );
  }

  /**
   * A shard lost while calls admitted for it run: released once the last of them settles
   * (`settled`), or `marginMs` past the latest of their deadlines, with a warning.
   */
  #drain(shard: number): void {
    const deadline = this.#runUntil[shard] as number;
    const now = Date.now();
    // A long push ttl would hold the shard (and its new owner's calls for it) that long.
    const cap = now + this.release.maxReleaseMs;
    const until = Math.min(deadline, cap);
    this.#releaseBy[shard] = until;
    const ms = Math.min(Math.max(0, until - now) + this.release.marginMs, MAX_TIMER_MS);
    const t = setTimeout(() => {
      if (!this.#releasing.has(shard)) return;
      const to = this.#owners?.[shard] ?? "another instance";
      const running = `${this.#running[shard]} calls or pushes admitted for it on ${this.#instanceId} still run`;
      this.#log.warn(
        {
          shard,
          running: this.#running[shard],
          ...(deadline > cap ? { maxReleaseMs: this.release.maxReleaseMs } : {}),
        },
        deadline > cap
          ? `shard ${shard} of ${this.#d.name} moved to ${to}, and ${running} ${Math.round((Date.now() - now) / 1000)} s later, their deadline ${Number.isFinite(deadline) ? `${Math.round((deadline - now) / 1000)} s past the move` : "(none)"} (a long @ttl or timeout) is past the bound of a release (maxReleaseMs ${this.release.maxReleaseMs} ms): releasing it now (their writes to its states are refused from now on)`
          : `shard ${shard} of ${this.#d.name} moved to ${to}, and ${running} ${this.release.marginMs} ms past the latest of their deadlines: releasing it now (their writes to its states are refused from now on)`,
      );
      this.#released([shard]);
    }, ms);
    t.unref?.();
    this.#releasing.set(shard, t);
  }

  /** Releases shards whose admitted calls settled: their loss is told (hooks, states) now. */
  #released(shards: readonly number[]): void {
    const out = shards.filter((s) => this.#releasing.has(s));
    if (out.length === 0) return;
    for (const s of out) {
      clearTimeout(this.#releasing.get(s));
      this.#releasing.delete(s);
      this.#releaseQueued.add(s);
    }
    if (this.#frozen) return;
    this.#log.info({ released: out }, "shards released: the calls admitted for them settled");
    this.#enqueue({ owned: this.#ownedNow(), gained: [], lost: out }, true);
  }

  /**
   * Gains the awaited shards that no other instance serves any more (released, or its record
   * gone), and those whose bound passed (with a warning); then waits for the next bound.
   */
  #checkAwaiting(): void {
    clearTimeout(this.#awaitTimer);
    this.#awaitTimer = undefined;
    if (this.#awaiting.size === 0 || this.#frozen) return;
    const now = Date.now();
    const gained: number[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const [s, w] of this.#awaiting) {
      const holders = this.#servedElsewhere(s);
      if (holders.length === 0) {
        gained.push(s);
        continue;
      }
      const bound =
        Math.max(
          ...holders.map((i) =>
            typeof i.releasingUntil === "number" ? i.releasingUntil : w.since + this.release.noticeMs,
          ),
        ) + this.release.takeoverMs;
      if (now < bound) {
        next = Math.min(next, bound);
        continue;
      }
      const names = holders.map((i) => i.instanceId).join(", ");
      this.#log.warn(
        { shard: s, previousOwners: names, waitedMs: now - w.since },
        `shard ${s} of ${this.#d.name} moved to ${this.#instanceId}, but ${names} has not released it in ${Math.round((now - w.since) / 1000)} s (its calls for it run past their deadlines, or it does not answer): taking it over now; until it releases it, both may write its states`,
      );
      gained.push(s);
    }
    for (const s of gained) this.#awaiting.delete(s);
    if (gained.length > 0) {
      this.#log.info({ gained }, "shards released by their previous owner: taking them over");
      this.#enqueue({ owned: this.#ownedNow(), gained, lost: [] }, true);
      this.#advertiseNow();
    }
    if (next < Number.POSITIVE_INFINITY) {
      this.#awaitTimer = setTimeout(() => this.#checkAwaiting(), Math.min(next - now, MAX_TIMER_MS));
      this.#awaitTimer.unref?.();
    }
  }

  /**
   * Writes what this instance serves into its record (one write at a time, the latest last). A
   * failed write is tried again, 100 ms later doubling up to 5 s, while what the record holds
   * differs from `serving()`: nothing else would write it before the next change, and an instance
   * gaining a shard would meanwhile take it with no hand-over, or wait out its bound.
   */
  #advertiseNow(): void {
    if (this.#advertise === undefined) return;
    if (this.#advertising !== undefined) {
      this.#advertiseAgain = true;
      return;
    }
    clearTimeout(this.#advertiseRetry);
    this.#advertiseRetry = undefined;
    const run = async (): Promise<void> => {
      let failed: unknown;
      do {
        this.#advertiseAgain = false;
        const fn = this.#advertise;
        if (fn === undefined) break;
        const info = this.serving();
        try {
          await fn(info);
          this.#advertised = JSON.stringify(info);
          failed = undefined;
        } catch (e) {
          failed = e;
        }
      } while (this.#advertiseAgain);
      // Cleared in the same turn as the last check: a change after it writes again.
      this.#advertising = undefined;
      if (failed === undefined) {
        if (this.#advertiseRetryMs > ADVERTISE_RETRY_MS)
          this.#log.info("the shards this instance serves are written into its discovery record again");
        this.#advertiseRetryMs = ADVERTISE_RETRY_MS;
        return;
      }
      if (this.#advertise === undefined || this.#frozen) return;
      const ms = this.#advertiseRetryMs;
      // The first failure of a run is a warning; the retries that fail again say nothing more.
      if (ms === ADVERTISE_RETRY_MS)
        this.#log.warn(
          { err: failed },
          "writing the shards this instance serves into its discovery record failed: tried again 100 ms later, doubling up to every 5 s, until it succeeds; meanwhile an instance gaining one of them may take it before this one released it, or wait for it up to its bound",
        );
      this.#advertiseRetryMs = Math.min(ms * 2, ADVERTISE_RETRY_MAX_MS);
      this.#advertiseRetry = setTimeout(() => {
        this.#advertiseRetry = undefined;
        // Back to what the record holds (lost and gained again meanwhile): nothing to write.
        if (JSON.stringify(this.serving()) === this.#advertised) this.#advertiseRetryMs = ADVERTISE_RETRY_MS;
        else this.#advertiseNow();
      }, ms);
      this.#advertiseRetry.unref?.();
    };
    this.#advertising = run();
  }

  #notifiedOnce = false;

  /**
   * A stopping instance's table follows `next` (the view without counting itself once its
   * deregistration shows) where another instance now owns a shard, so a shard taken from it
   * during the stop is redirected to the taker, which serves it, instead of served here too; it
   * never gains one (no `onShards` runs while stopping), and keeps a shard nobody else took.
   */
  #follow(next: readonly (string | undefined)[]): void {
    const owners = this.#owners;
    if (owners === undefined) return;
    const me = this.#instanceId;
    let lost = false;
    for (let s = 0; s < owners.length; s++) {
      const to = next[s];
      if (to === undefined || to === me || to === owners[s]) continue;
      if (owners[s] === me) lost = true;
      owners[s] = to;
    }
    if (!lost) return;
    const owned = ownedBy(owners, me);
    this.#log.info({ owned: owned.length, lost: this.#owned.length - owned.length }, "shards taken while stopping");
    this.#owned = owned;
  }

  /** Queues the hooks of `change`; its gained shards wait (calls held) until they resolved. */
  #enqueue(change: ShardChange, listeners: boolean): void {
    const seq = ++this.#seq;
    for (const s of change.gained) {
      this.#gainedIn[s] = seq;
      if (this.#ready[s] !== FAILED) this.#ready[s] = WAITING;
    }
    for (const s of change.lost) this.#ready[s] = WAITING;
    this.#notified = this.#notified.then(() => this.#notify(change, seq, listeners));
  }

  async #notify(change: ShardChange, seq: number, listeners: boolean): Promise<void> {
    const fn = this.#handler.onShards;
    let ok = true;
    // Armed until the listeners too are told: a release waits there for its states to leave and save.
    const watch = this.#watchSlow(change);
    try {
      if (typeof fn === "function") {
        this.#hookSince = Date.now();
        try {
          await fn.call(this.#handler, change, this.#context());
        } catch (e) {
          ok = false;
          this.#log.error(
            { err: e, gained: change.gained },
            `onShards hook failed: calls for the shards it gained answer UNAVAILABLE until it succeeds (called again in ${this.#retryMs / 1000} s)`,
          );
        } finally {
          this.#hookSince = undefined;
        }
      }
      watch.step = "listeners";
      if (listeners) await this.#told(change);
    } finally {
      clearTimeout(watch.timer);
    }
    // Only the latest change gaining a shard decides: an older one's outcome is stale.
    for (const s of change.gained) if (this.#gainedIn[s] === seq) this.#ready[s] = ok ? READY : FAILED;
    if (ok) this.#retryMs = RETRY_MS;
    else this.#scheduleRetry();
    // Released (hooks and states told): the record stops serving them, and their new owner takes them.
    if (change.lost.length > 0) {
      for (const s of change.lost) this.#releaseQueued.delete(s);
      this.#advertiseNow();
    }
    this.#wake();
  }

  /**
   * Warns while the `onShards` of `change`, then its listeners (the states, which on a release
   * send their last heartbeat and save their snapshot), run past `slowHookMs`, then every
   * `slowHookRepeatMs`: the calls for the shards being loaded wait for them, and so do every later
   * change and the release of a lost shard; one that never resolves would hold them with nothing
   * else said.
   */
  #watchSlow(change: ShardChange): SlowWatch {
    const t0 = Date.now();
    const watch: SlowWatch = { timer: undefined, step: "hook" };
    const arm = (ms: number): void => {
      watch.timer = setTimeout(warn, ms);
      watch.timer.unref?.();
    };
    const warn = (): void => {
      if (this.#frozen) return;
      const held = this.#owned.filter((s) => this.#ready[s] === WAITING);
      const named = held.length > 20 ? `${held.slice(0, 20).join(", ")}, … (${held.length})` : held.join(", ");
      const s = Math.round((Date.now() - t0) / 1000);
      const what =
        watch.step === "hook"
          ? `onShards of ${this.#d.name} on ${this.#instanceId} has not resolved`
          : `the states of ${this.#d.name} on ${this.#instanceId} following a change of its shards (gained ${change.gained.join(", ") || "none"}, lost ${change.lost.join(", ") || "none"}: states leave, send their last heartbeat and save their snapshot) have not finished`;
      this.#log.warn(
        // The served instance's logger names the service and instance too.
        { gained: change.gained, lost: change.lost, held, heldCalls: this.#waiters.size, step: watch.step },
        `${what} in ${s} s: calls for shards ${named || "(none)"} are held until ${watch.step === "hook" ? "it does" : "they do"} (${this.#waiters.size} now)${watch.step === "hook" ? "" : ", and later changes of its shards, and the release of the lost ones to their new owner, wait for it"}`,
      );
      arm(this.limits.slowHookRepeatMs);
    };
    arm(this.limits.slowHookMs);
    return watch;
  }

  /** Calls `onShards` again with the owned shards whose hook failed, as gained. */
  #scheduleRetry(): void {
    if (this.#retry !== undefined || this.#frozen) return;
    const ms = this.#retryMs;
    this.#retryMs = Math.min(ms * 2, RETRY_MAX_MS);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#frozen) return;
      const gained = this.#ownedNow().filter((s) => this.#ready[s] === FAILED);
      if (gained.length > 0) this.#enqueue({ owned: this.#ownedNow(), gained, lost: [] }, false);
    }, ms);
    this.#retry.unref?.();
  }

  /**
   * Tells the listeners of `change`; a release (lost shards) waits for them at most `saveMs`:
   * past it, with a warning, the record drops the shards anyway and later changes go on.
   */
  async #told(change: ShardChange): Promise<void> {
    const told = this.#tell(change);
    if (change.lost.length === 0) return told;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.release.saveMs);
      timer.unref?.();
    });
    const cut = await Promise.race([told.then(() => false), late]).finally(() => clearTimeout(timer));
    if (cut)
      this.#log.warn(
        { lost: change.lost, saveMs: this.release.saveMs },
        `releasing shards ${change.lost.join(", ")} of ${this.#d.name} on ${this.#instanceId}: their states have not sent their last heartbeat and saved their snapshot in ${this.release.saveMs} ms (the snapshot store or the transport does not answer): released anyway, so their new owner may resume an older snapshot, without this owner's latest writes (a save that lands later may still overwrite it)`,
      );
  }

  async #tell(change: ShardChange): Promise<void> {
    for (const l of [...this.#listeners]) {
      try {
        await l(change);
      } catch (e) {
        this.#log.error({ err: e }, "following a change of the owned shards failed");
      }
    }
  }
}

/** The slow-hook warning of one change (`#watchSlow`) and the step it waits in. */
interface SlowWatch {
  timer: ReturnType<typeof setTimeout> | undefined;
  step: "hook" | "listeners";
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
