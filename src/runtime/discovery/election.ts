/**
 * Leader election for `@unique` services, over any Registry (etcd's concurrency recipe):
 * each candidate writes `/fan/{cluster}/election/{service}/{instanceId}` with its own lease;
 * the candidate whose key has the lowest create revision leads; the others each wait for the
 * deletion of the key just before their own. A dead leader's key vanishes with its lease, so
 * a standby takes over within the TTL. The fencing token is the leader key's create revision:
 * it only grows, so a resource can refuse writes carrying an older token.
 */
import type { Logger } from "pino";
import { pino } from "pino";
import { Code, FanError } from "../errors.js";
import { checkSegment, electionPrefix } from "./keys.js";
import type { KeyValue, Lease, Registry, Watch } from "./registry.js";

/** Options of `campaign`. */
export interface CampaignOptions {
  readonly cluster: string;
  /** Fully qualified service name. */
  readonly service: string;
  readonly instanceId: string;
  /** Lease TTL: how long a dead leader holds on (default 5000 ms). */
  readonly ttlMs?: number;
  /** Aborting withdraws the candidacy (and resigns if elected). */
  readonly signal?: AbortSignal;
  /** Stored as the candidate's value (default: the instance id). */
  readonly value?: string;
  /** The candidate instance's logger (records carry its `service` and `instanceId` bindings). */
  readonly log?: Logger;
}

/** The leadership of a `@unique` service instance. */
export interface Leadership {
  /** The leader key's create revision, as decimal text. */
  readonly fencingToken: string;
  /** Called once when leadership is lost (lease lost, key deleted); immediately if already lost. */
  onLost(fn: () => void): void;
  /** True until lost or resigned. */
  readonly active: boolean;
  /** Gives leadership up: deletes the key and revokes the lease. */
  resign(): Promise<void>;
}

/**
 * Campaigns until elected; resolves with the leadership. Registry failures (etcd down, a lease
 * lost while waiting) are logged and retried with backoff (250 ms to 2 s), so a standby keeps
 * standing by through an outage. Rejects only when the signal aborts (with its reason) or on
 * bad options. A candidacy of the same instance id still in the registry (a previous
 * leadership of this instance whose lease has not expired yet) is superseded.
 */
export async function campaign(registry: Registry, opts: CampaignOptions): Promise<Leadership> {
  const prefix = electionPrefix(opts.cluster, opts.service);
  const key = prefix + checkSegment("instanceId", opts.instanceId);
  const ttlMs = opts.ttlMs ?? 5000;
  if (!Number.isFinite(ttlMs) || ttlMs <= 0)
    throw new RangeError(`campaign ttlMs must be a positive number, got ${ttlMs}`);
  const log = opts.log ?? pino({ level: "silent" });
  let delay = RETRY_MIN_MS;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const held = await campaignOnce(registry, prefix, key, ttlMs, opts);
      if (opts.signal?.aborted) {
        // aborted while the last step of taking office was in flight: withdraw, do not lead
        await held.resign();
        throw opts.signal.reason;
      }
      log.info({ fencingToken: held.fencingToken }, "elected leader");
      return held;
    } catch (e) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? e;
      log.warn({ err: e, retryInMs: delay }, "campaign failed; retrying");
      await abortableSleep(delay, opts.signal);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }
}

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 2000;

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done, { once: true });
  });
}

/** One attempt: a lease, our candidate key, then wait for our turn. */
async function campaignOnce(
  registry: Registry,
  prefix: string,
  key: string,
  ttlMs: number,
  opts: CampaignOptions,
): Promise<Held> {
  const lease = await registry.grantLease(ttlMs);
  const lost = { value: false };
  lease.onLost(() => {
    lost.value = true;
  });
  try {
    const value = opts.value ?? opts.instanceId;
    let created = await registry.put(key, value, { lease, ifAbsent: true });
    if (created === undefined) {
      await registry.delete(key); // our own stale candidacy: supersede it
      created = await registry.put(key, value, { lease, ifAbsent: true });
    }
    if (created === undefined)
      throw new FanError(Code.ABORTED, `${opts.instanceId} is campaigning for ${opts.service} elsewhere`);
    await waitForTurn(registry, prefix, key, created, lease, lost, opts);
    return await Held.start(registry, key, created, lease, opts.signal);
  } catch (e) {
    await lease.revoke().catch(() => undefined);
    throw e;
  }
}

/** Who leads a service now (the candidate with the lowest create revision), if anyone. */
export async function leader(
  registry: Registry,
  cluster: string,
  service: string,
): Promise<{ instanceId: string; fencingToken: string } | undefined> {
  const prefix = electionPrefix(cluster, service);
  const { items } = await registry.list(prefix);
  const first = lowest(items);
  return first === undefined
    ? undefined
    : { instanceId: first.key.slice(prefix.length), fencingToken: String(first.createRevision) };
}

function lowest(items: readonly KeyValue[]): KeyValue | undefined {
  let best: KeyValue | undefined;
  for (const kv of items) if (best === undefined || kv.createRevision < best.createRevision) best = kv;
  return best;
}

/** Waits until no candidate key older than ours exists. */
async function waitForTurn(
  registry: Registry,
  prefix: string,
  key: string,
  myRev: number,
  lease: Lease,
  lost: { value: boolean },
  opts: CampaignOptions,
): Promise<void> {
  for (;;) {
    opts.signal?.throwIfAborted();
    if (lost.value) throw new FanError(Code.UNAVAILABLE, `lease lost while campaigning for ${opts.service}`);
    const { items, revision } = await registry.list(prefix);
    if (!items.some((kv) => kv.key === key))
      throw new FanError(Code.ABORTED, `candidate key of ${opts.instanceId} was deleted while campaigning`);
    const older = items.filter((kv) => kv.createRevision < myRev);
    if (older.length === 0) return;
    const prev = older.reduce((a, b) => (b.createRevision > a.createRevision ? b : a));
    await waitForDelete(registry, prev.key, revision, lease, opts.signal);
  }
}

/** Resolves when `key` is deleted after `revision`, the lease is lost, or the signal aborts (rejects). */
function waitForDelete(
  registry: Registry,
  key: string,
  revision: number,
  lease: Lease,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let watch: Watch | undefined;
    let done = false;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      signal?.removeEventListener("abort", onAbort);
      void watch?.close().catch(() => undefined);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = (): void => finish(signal?.reason ?? new FanError(Code.CANCELLED, "campaign cancelled"));
    // The signal may have aborted while the candidate list was being read: an abort listener
    // added now would never fire, and the standby would wait for the leader to go.
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    lease.onLost(() => finish());
    registry
      .watch(key, revision, (ev) => {
        if (ev.type === "reset" || (ev.type === "delete" && ev.key === key)) finish();
      })
      .then((w) => {
        watch = w;
        if (done) void w.close().catch(() => undefined);
      }, finish);
  });
}

/** A held leadership: watches its own key and lease. */
class Held implements Leadership {
  private readonly lostFns: (() => void)[] = [];
  private isActive = true;
  private watch: Watch | undefined;

  private constructor(
    private readonly registry: Registry,
    private readonly key: string,
    private readonly lease: Lease,
    readonly fencingToken: string,
  ) {}

  static async start(registry: Registry, key: string, rev: number, lease: Lease, signal?: AbortSignal): Promise<Held> {
    const held = new Held(registry, key, lease, String(rev));
    lease.onLost(() => held.lose());
    const kv = await registry.get(key);
    if (kv === undefined || kv.createRevision !== rev) held.lose();
    held.watch = await registry.watch(key, kv?.modRevision ?? rev, (ev) => {
      if ((ev.type === "delete" && ev.key === key) || ev.type === "reset") void held.checkStillHeld();
    });
    if (signal !== undefined) signal.addEventListener("abort", () => void held.resign(), { once: true });
    return held;
  }

  get active(): boolean {
    return this.isActive;
  }

  onLost(fn: () => void): void {
    if (this.isActive) this.lostFns.push(fn);
    else queueMicrotask(fn);
  }

  async resign(): Promise<void> {
    if (!this.isActive) return;
    this.isActive = false;
    await this.watch?.close().catch(() => undefined);
    await this.registry.delete(this.key).catch(() => undefined);
    await this.lease.revoke().catch(() => undefined);
  }

  private async checkStillHeld(): Promise<void> {
    let kv: KeyValue | undefined;
    try {
      kv = await this.registry.get(this.key);
    } catch {
      return; // registry unreachable: the lease decides (onLost) whether leadership is gone
    }
    if (kv === undefined || String(kv.createRevision) !== this.fencingToken) this.lose();
  }

  private lose(): void {
    if (!this.isActive) return;
    this.isActive = false;
    void this.watch?.close().catch(() => undefined);
    void this.lease.revoke().catch(() => undefined);
    for (const fn of this.lostFns.splice(0)) {
      try {
        fn();
      } catch {
        // a listener's failure must not stop the others
      }
    }
  }
}
