/**
 * Lightspeed (a point-of-sale system) and LightspeedSync, the one active synchroniser
 * (`@unique`): it follows catalogue changes and store syncs, and reports every so often
 * with a `@timer`.
 */
import { timer, type CallContext, type TaskContext } from "fan/runtime";
import type { LightspeedSyncHandler, SyncStatus } from "../../generated/integration/api.js";
import type { LightspeedHandler, Wine } from "../../generated/retail/wines.js";

type Ctx = CallContext<Record<string, never>>;

export class LightspeedService implements LightspeedHandler {
  state({ service, event }: { service: string; event?: string | undefined }): string {
    return event === undefined ? `${service}: idle` : `${service}: last ${event}`;
  }
}

export class LightspeedSyncService implements LightspeedSyncHandler {
  /** What this synchroniser saw, in order. */
  readonly seen: string[] = [];
  ticks = 0;

  ping(_req: Record<string, never>, ctx: Ctx): string {
    return `sync leader ${ctx.instanceId} (fencing token ${ctx.fencingToken ?? "none"})`;
  }

  onWineChanged({ wine }: { wine: Wine }, ctx: Ctx): void {
    ctx.log.debug({ wine: wine.id }, "wine changed");
    this.seen.push(`wineChanged ${wine.name}`);
  }

  onCacheFlush(): void {
    this.seen.push("cacheFlush");
  }

  onStoreSynced({ status }: { status: SyncStatus }): void {
    this.seen.push(`storeSynced ${status.storeId}`);
  }

  @timer("50ms")
  heartbeat(ctx: TaskContext): void {
    this.ticks++;
    ctx.log.debug({ ticks: this.ticks }, "sync heartbeat");
  }
}
