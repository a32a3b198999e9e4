import type { CallContext } from "fan/runtime";
import { IntegrationApi } from "../generated/integration/api.js";
import { type PublicWinesConfig, type PublicWinesHandler, type Wine, WineNotFound } from "../generated/retail/wines.js";

export class Wines implements PublicWinesHandler {         // a missing method is a type error
  readonly stores = new Map<string, Map<string, Wine>>();  // store id -> inventory id -> wine

  async get({ storeId, inventoryId }: { storeId: string; inventoryId: string },
            ctx: CallContext<PublicWinesConfig>): Promise<Wine> {
    ctx.log.info({ storeId }, "get");                      // service, instance, method, trace id
    const status = await ctx.client(IntegrationApi).status({ storeId }); // inherits deadline + trace
    if (status.pending > 0) ctx.log.warn({ pending: status.pending }, "store not in sync");
    const wine = this.stores.get(storeId)?.get(inventoryId);
    if (!wine) throw new WineNotFound({ inventoryId });    // rebuilt as WineNotFound on the client
    return wine;
  }

  invalidate({ storeId }: { storeId: string }): void {     // one method per rpc, push and `on`
    this.stores.delete(storeId);
  }
}
