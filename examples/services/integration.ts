/**
 * IntegrationApi: talks to point-of-sale systems. Here a small in-memory stand-in: a sync
 * status per store, a `resync` push that syncs a store and announces it with `storeSynced`.
 */
import type { CallContext, Publisher } from "fan/runtime";
import {
  type IntegrationApiClient,
  type IntegrationApiHandler,
  type SyncStatus,
  SyncFailed,
} from "../../generated/integration/api.js";

/** Stores whose point-of-sale system is unreachable. */
const OFFLINE = new Set(["offline-store"]);

export class IntegrationService implements IntegrationApiHandler {
  readonly #status = new Map<string, SyncStatus>();

  constructor(private readonly events: () => Publisher<IntegrationApiClient>) {}

  ping(): string {
    return "pong";
  }

  status({ storeId }: { storeId: string }): SyncStatus {
    if (OFFLINE.has(storeId))
      throw new SyncFailed({ storeId, reason: "point of sale unreachable" }, `cannot reach ${storeId}`);
    return this.#status.get(storeId) ?? { storeId, pending: 0, errors: [] };
  }

  async resync(
    { storeId, full }: { storeId: string; full: boolean },
    ctx: CallContext<Record<string, never>>,
  ): Promise<void> {
    const status: SyncStatus = { storeId, lastSync: new Date(), pending: 0, errors: [] };
    this.#status.set(storeId, status);
    ctx.log.info({ storeId, full }, "store resynced");
    await this.events().emit("storeSynced", { status });
  }
}
