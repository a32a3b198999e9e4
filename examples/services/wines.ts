/**
 * PublicWines: the wine catalogue. Wines live in memory per store; every change is published
 * as `wineChanged` and replicated through the `inventory` state (merge patches).
 */
import type { CallContext, Publisher } from "fan/runtime";
import { IntegrationApi } from "../../generated/integration/api.js";
import {
  type Payment,
  type PublicWinesClient,
  type PublicWinesConfig,
  type PublicWinesHandler,
  type Wine,
  type WineFilter,
  OutOfStock,
  WineNotFound,
} from "../../generated/retail/wines.js";

type Ctx = CallContext<PublicWinesConfig>;

export class WinesService implements PublicWinesHandler {
  readonly #stores = new Map<string, Map<string, Wine>>();
  /** Stores whose cache was invalidated (the `invalidate` push). */
  readonly invalidated: string[] = [];

  constructor(private readonly publisher: () => Publisher<PublicWinesClient>) {}

  get({ storeId, inventoryId }: { storeId: string; inventoryId: string }): Wine {
    const wine = this.#stores.get(storeId)?.get(inventoryId);
    if (wine === undefined) throw new WineNotFound({ inventoryId }, `no wine ${inventoryId} in ${storeId}`);
    return wine;
  }

  list({ storeId, filter }: { storeId: string; filter?: WineFilter | undefined }, ctx: Ctx): Wine[] {
    const all = [...(this.#stores.get(storeId)?.values() ?? [])].filter(
      (w) => filter?.color === undefined || w.color === filter.color,
    );
    const offset = filter?.page?.offset ?? 0;
    const limit = Math.min(filter?.page?.limit ?? ctx.config.pageSize, ctx.config.pageSize);
    return all.slice(offset, offset + limit);
  }

  async create({ storeId, wine }: { storeId: string; wine: Wine }, ctx: Ctx): Promise<Wine> {
    // A nested call: it inherits this call's deadline and trace without passing anything.
    const sync = await ctx.client(IntegrationApi).status({ storeId });
    ctx.log.info({ storeId, wine: wine.id, pendingSync: sync.pending }, "creating wine");
    let store = this.#stores.get(storeId);
    if (store === undefined) {
      store = new Map();
      this.#stores.set(storeId, store);
    }
    store.set(wine.id, wine);
    await this.publisher().emit("wineChanged", { wine });
    this.publisher()
      .state("inventory")
      .patch({ [wine.id]: wine });
    return wine;
  }

  add(req: { storeId: string; wine: Wine }, ctx: Ctx): Promise<Wine> {
    return this.create(req, ctx);
  }

  async sell(
    { storeId, inventoryId, quantity }: { storeId: string; inventoryId: string; payment: Payment; quantity: number },
    ctx: Ctx,
  ): Promise<void> {
    const wine = this.get({ storeId, inventoryId });
    const available = wine.stock[storeId] ?? 0;
    if (available < quantity) throw new OutOfStock({ inventoryId, available }, `only ${available} left`);
    const sold: Wine = { ...wine, stock: { ...wine.stock, [storeId]: available - quantity } };
    this.#stores.get(storeId)?.set(inventoryId, sold);
    ctx.log.info({ storeId, inventoryId, quantity }, "sold");
    await this.publisher().emit("wineChanged", { wine: sold });
    this.publisher()
      .state("inventory")
      .patch({ [inventoryId]: sold });
  }

  invalidate({ storeId }: { storeId: string }): void {
    this.invalidated.push(storeId);
  }
}
