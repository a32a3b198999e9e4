/**
 * Exchange: a small order matcher. Orders update the `book` state (merge patches) and the
 * `prices` state (full values), and every fill is published as `traded`.
 */
import type { CallContext, Publisher } from "fan/runtime";
import type { Money } from "../../generated/retail/common.js";
import {
  type ExchangeClient,
  type ExchangeConfig,
  type ExchangeHandler,
  type MarketPrice,
  type Order,
  type OrderBook,
  OrderRejected,
} from "../../generated/trading.js";

type Ctx = CallContext<ExchangeConfig>;

export class ExchangeService implements ExchangeHandler {
  readonly #orders = new Map<string, Order>();
  readonly #book: Record<string, OrderBook> = {};
  readonly #prices: Record<string, MarketPrice> = {};
  /** Quotes received through the `quote` push. */
  readonly quotes: string[] = [];

  constructor(private readonly publisher: () => Publisher<ExchangeClient>) {}

  async place({ order }: { order: Order }, ctx: Ctx): Promise<Order> {
    if (!ctx.config.symbols.includes(order.symbol))
      throw new OrderRejected({ reason: `unknown symbol ${order.symbol}` });
    if (order.quantity > ctx.config.maxOrderQuantity)
      throw new OrderRejected({ reason: `quantity above ${ctx.config.maxOrderQuantity}` });
    const opposite = order.side === "BUY" ? "SELL" : "BUY";
    const match = [...this.#orders.values()].find(
      (o) => o.symbol === order.symbol && o.side === opposite && o.price === order.price,
    );
    if (match !== undefined) {
      this.#orders.delete(match.id);
      // biome-ignore lint/complexity/useMathMinMax: quantities are bigints, which Math.min does not take
      const quantity = match.quantity < order.quantity ? match.quantity : order.quantity;
      await this.publisher().emit("traded", { symbol: order.symbol, price: order.price, quantity });
      this.#price(order.symbol, { amount: order.price, currency: "EUR" });
    } else this.#orders.set(order.id, order);
    this.#publishBook(order.symbol);
    return order;
  }

  cancel({ orderId }: { orderId: string }): boolean {
    const order = this.#orders.get(orderId);
    if (order === undefined) return false;
    this.#orders.delete(orderId);
    this.#publishBook(order.symbol);
    return true;
  }

  quote({ symbol, price }: { symbol: string; price: Money }): void {
    this.quotes.push(`${symbol} ${price.amount} ${price.currency}`);
    this.#price(symbol, price);
  }

  #price(symbol: string, last: Money): void {
    this.#prices[symbol] = { symbol, last, at: new Date() };
    this.publisher()
      .state("prices")
      .set({ ...this.#prices });
  }

  #publishBook(symbol: string): void {
    const open = [...this.#orders.values()].filter((o) => o.symbol === symbol);
    const levels = (side: Order["side"]) =>
      open.filter((o) => o.side === side).map((o) => ({ price: o.price, quantity: o.quantity }));
    const sequence = (this.#book[symbol]?.sequence ?? 0n) + 1n;
    this.#book[symbol] = { bids: levels("BUY"), asks: levels("SELL"), sequence };
    this.publisher()
      .state("book")
      .set({ ...this.#book });
  }
}
