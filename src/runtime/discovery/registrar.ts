/**
 * Registration of served instances: every instance of one Directory is written under
 * `/fan/{cluster}/services/{service}/{instanceId}` with one shared lease, which the registry
 * client keeps alive. A process that dies stops renewing it and its keys vanish after the
 * TTL; a graceful deregister deletes the key at once. When the lease is lost (registry down
 * longer than the TTL, or wiped), a new lease is granted and every live registration is
 * written again, retrying until the registry answers.
 */
import type { Logger } from "pino";
import semver from "semver";
import type { Lease, Registry } from "./registry.js";
import { checkSegment, instanceKey } from "./keys.js";
import type { InstanceInfo, Registration } from "./types.js";

/** The argument of `Directory.register`. */
export type RegisterInfo = Omit<InstanceInfo, "startedAt" | "load"> & Partial<Pick<InstanceInfo, "startedAt" | "load">>;

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;

/** Owns the lease and the live registrations of one Directory. */
export class Registrar {
  private lease: Promise<Lease> | undefined;
  private readonly live = new Map<string, LiveRegistration>();
  private recovering = false;
  private closed = false;

  constructor(
    private readonly registry: Registry,
    private readonly cluster: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  /** Registers one instance; rejects with a clear error on bad input or when the registry fails. */
  async register(input: RegisterInfo): Promise<Registration> {
    if (this.closed)
      throw new Error(`cannot register ${String(input.service)}: the App is stopped (its discovery is closed)`);
    const info = normalise(input);
    const key = instanceKey(this.cluster, info.service, info.instanceId);
    if (this.live.has(key)) throw new Error(`instance ${info.instanceId} of ${info.service} is already registered`);
    const reg = new LiveRegistration(this, key, info);
    this.live.set(key, reg);
    try {
      await this.write(reg);
    } catch (e) {
      this.live.delete(key);
      throw e;
    }
    return reg;
  }

  /** The lease's id, for tests and `fanc ls`. */
  async leaseId(): Promise<string | undefined> {
    return this.lease === undefined ? undefined : (await this.lease).id;
  }

  /** @internal Writes a registration with the current lease. */
  async write(reg: LiveRegistration): Promise<void> {
    if (this.live.get(reg.key) !== reg) return;
    const lease = await this.currentLease();
    await this.registry.put(reg.key, JSON.stringify(reg.info), { lease });
    // deregistered while the put was in flight: do not leave it behind
    if (this.live.get(reg.key) !== reg) await this.registry.delete(reg.key);
  }

  /** @internal */
  isLive(reg: LiveRegistration): boolean {
    return this.live.get(reg.key) === reg;
  }

  /** @internal */
  async remove(reg: LiveRegistration): Promise<void> {
    if (this.live.get(reg.key) !== reg) return;
    this.live.delete(reg.key);
    await this.registry.delete(reg.key);
  }

  /** Deregisters everything (revokes the lease, so every key goes at once). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const keys = [...this.live.keys()];
    this.live.clear();
    const lease = this.lease;
    this.lease = undefined;
    if (lease === undefined) return;
    try {
      await (await lease).revoke();
    } catch (e) {
      this.log.warn({ err: e }, "discovery: lease revoke failed; deleting keys");
      await Promise.allSettled(keys.map((k) => this.registry.delete(k)));
    }
  }

  private currentLease(): Promise<Lease> {
    if (this.lease === undefined) {
      const p = this.registry.grantLease(this.ttlMs);
      this.lease = p;
      p.then(
        (l) => l.onLost(() => this.lost(p)),
        () => {
          if (this.lease === p) this.lease = undefined;
        },
      );
    }
    return this.lease;
  }

  /** Writes registrations again, 32 at a time (thousands of instances come back in a few round trips). */
  private async writeAll(regs: readonly LiveRegistration[]): Promise<void> {
    for (let i = 0; i < regs.length; i += 32) await Promise.all(regs.slice(i, i + 32).map((r) => this.write(r)));
  }

  private lost(which: Promise<Lease>): void {
    if (this.lease !== which || this.closed) return;
    this.lease = undefined;
    this.log.warn(
      { instances: this.live.size },
      "discovery: registration lease lost; registering again with a new lease",
    );
    void this.recover();
  }

  private async recover(): Promise<void> {
    if (this.recovering) return;
    this.recovering = true;
    let delay = RETRY_MIN_MS;
    try {
      while (!this.closed && this.live.size > 0) {
        try {
          await this.writeAll([...this.live.values()]);
          this.log.info({ instances: this.live.size }, "discovery: instances registered again");
          return;
        } catch (e) {
          this.log.warn({ err: e, retryInMs: delay }, "discovery: registering again failed");
          await new Promise((r) => setTimeout(r, delay).unref());
          delay = Math.min(delay * 2, RETRY_MAX_MS);
        }
      }
    } finally {
      this.recovering = false;
    }
  }
}

/** One registered instance. */
class LiveRegistration implements Registration {
  constructor(
    private readonly owner: Registrar,
    readonly key: string,
    public info: InstanceInfo,
  ) {}

  async update(
    patch: Partial<Pick<InstanceInfo, "load" | "shards" | "endpoints" | "serving" | "releasingUntil" | "stopping">>,
  ): Promise<void> {
    if (!this.owner.isLive(this))
      throw new Error(`${this.info.instanceId} of ${this.info.service} is not registered any more`);
    const { releasingUntil: _, ...rest } = this.info;
    this.info = normalise({ ...(patch.serving === undefined ? this.info : rest), ...patch });
    await this.owner.write(this);
  }

  async deregister(): Promise<void> {
    await this.owner.remove(this);
  }
}

function normalise(i: RegisterInfo): InstanceInfo {
  if (typeof i !== "object" || i === null) throw new TypeError("register: instance info must be an object");
  checkSegment("service", i.service);
  checkSegment("instanceId", i.instanceId);
  if (typeof i.version !== "string" || semver.valid(i.version) === null) {
    throw new TypeError(`register ${i.service}: version ${JSON.stringify(i.version)} is not a semver version`);
  }
  if (typeof i.appId !== "string" || i.appId === "")
    throw new TypeError(`register ${i.service}: appId must be a non-empty string`);
  const endpoints = i.endpoints ?? {};
  for (const [t, e] of Object.entries(endpoints)) {
    if (typeof e !== "string") throw new TypeError(`register ${i.service}: endpoint ${t} must be a string`);
  }
  const shards = i.shards ?? [];
  if (!Array.isArray(shards) || !shards.every(Number.isInteger))
    throw new TypeError(`register ${i.service}: shards must be integers`);
  const out: InstanceInfo = {
    service: i.service,
    instanceId: i.instanceId,
    version: i.version,
    endpoints: { ...endpoints },
    shards: [...shards],
    startedAt: i.startedAt ?? Date.now(),
    load: i.load ?? 0,
    appId: i.appId,
  };
  if (i.events !== undefined && typeof i.events !== "string")
    throw new TypeError(`register ${i.service}: events must be a transport name`);
  if (i.serving !== undefined && !(Array.isArray(i.serving) && i.serving.every(Number.isInteger)))
    throw new TypeError(`register ${i.service}: serving must be integers`);
  const withServing =
    i.serving === undefined
      ? out
      : {
          ...out,
          serving: [...i.serving],
          ...(typeof i.releasingUntil === "number" ? { releasingUntil: i.releasingUntil } : {}),
        };
  const withCount = i.shardCount === undefined ? withServing : { ...withServing, shardCount: i.shardCount };
  const withEvents = i.events === undefined ? withCount : { ...withCount, events: i.events };
  const withStop = i.stopping === true ? { ...withEvents, stopping: true as const } : withEvents;
  return i.zone === undefined ? withStop : { ...withStop, zone: i.zone };
}
