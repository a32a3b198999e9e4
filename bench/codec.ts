/**
 * `npm run bench -- codec`: the cost of codecs on the local-call hot path.
 *
 * Each operation runs a batch of BATCH calls so the harness's per-op timing does not swamp
 * sub-microsecond work. Ratios are against a direct call of an async handler, which is what
 * a local call replaces; the target is a whole local call at most 3x a direct call, so
 * validating the request and the reply must stay well under that.
 */
import { codec } from "../src/runtime/codec/index.js";
import type { StructSchema } from "../src/runtime/codec/schema.js";
import { decodeReply, decodeFrameReply, encodeFrameReply } from "../src/runtime/transports/replies.js";
import type { Envelope } from "../src/runtime/transports/transport.js";
import { compare, type BenchRow } from "./lib.js";

const BATCH = 1000;

const Money: StructSchema = {
  kind: "struct",
  name: "retail.common.Money",
  fields: [
    { name: "amount", schema: { kind: "decimal" } },
    { name: "currency", schema: { kind: "string", pattern: "^[A-Z]{3}$" } },
  ],
};
const Wine: StructSchema = {
  kind: "struct",
  name: "retail.wines.Wine",
  fields: [
    { name: "id", schema: { kind: "uuid" } },
    { name: "name", schema: { kind: "string", maxLength: 200 } },
    { name: "color", schema: { kind: "enum", name: "retail.wines.Color", values: ["RED", "WHITE", "ROSE"] } },
    { name: "vintage", schema: { kind: "int", min: 1800, max: 2100 }, optional: true },
    { name: "price", schema: { kind: "ref", name: "retail.common.Money", get: () => Money } },
    { name: "tags", schema: { kind: "list", of: { kind: "string" } }, default: [] },
    { name: "stock", schema: { kind: "map", key: { kind: "string" }, of: { kind: "int" } } },
    { name: "createdAt", schema: { kind: "timestamp" } },
  ],
};
const GetInput: StructSchema = {
  kind: "struct",
  name: "retail.wines.PublicWines.get$input",
  fields: [
    { name: "storeId", schema: { kind: "string" } },
    { name: "inventoryId", schema: { kind: "string" } },
  ],
};

const wineWire = {
  id: "123e4567-e89b-12d3-a456-426614174000",
  name: "Château Margaux",
  color: "RED",
  vintage: 2015,
  price: { amount: "499.90", currency: "EUR" },
  tags: ["bordeaux", "grand cru"],
  stock: { s1: 3, s2: 0 },
  createdAt: "2024-02-29T12:30:00.250Z",
};

/** Runs the codec benchmark. */
export default async function run(): Promise<BenchRow[]> {
  const wine = codec<unknown>(Wine);
  const input = codec<unknown>(GetInput);
  const typed = wine.decode(wineWire);
  const req = { storeId: "s1", inventoryId: "i1" };
  const handler = async (r: { storeId: string; inventoryId: string }): Promise<unknown> =>
    r.storeId === "" ? null : typed;
  // A reply in a broker batch frame (nats, amqp), as bench/peers's Pricing.quote answers: what the
  // server encodes and the client decodes per call, as a whole envelope and as a compact item.
  const reply: Envelope = {
    v: 1,
    id: "868c06b003b5-2",
    kind: "reply",
    service: "bench.Pricing",
    method: "quote",
    version: "1.0.0",
    headers: {},
    payload: { symbol: "ACME", total: 37.5 },
  };
  const roundTrip = (compact: boolean) => () => {
    const text = encodeFrameReply(reply, compact);
    const bytes = Buffer.from(text, "utf8");
    return compact ? decodeFrameReply(bytes, 1 << 20, "bench.Pricing") : decodeReply(bytes, 1 << 20);
  };
  let sink: unknown;
  const batch = (fn: () => unknown) => async () => {
    for (let i = 0; i < BATCH; i++) sink = fn();
  };
  const rows = await compare(
    [
      { name: `direct async call x${BATCH}`, op: batch(() => handler(req)) },
      {
        name: `validate req + call + validate Wine x${BATCH}`,
        op: batch(() => {
          input.validate(req);
          const p = handler(req);
          wine.validate(typed);
          return p;
        }),
        note: "what a local call adds",
      },
      { name: `validate Wine x${BATCH}`, op: batch(() => wine.validate(typed)) },
      { name: `decode Wine x${BATCH}`, op: batch(() => wine.decode(wineWire)) },
      { name: `encode Wine x${BATCH}`, op: batch(() => wine.encode(typed)) },
      { name: `JSON.parse(stringify(Wine)) x${BATCH}`, op: batch(() => JSON.parse(JSON.stringify(wineWire))) },
      { name: `frame reply, whole envelope: encode + decode x${BATCH}`, op: batch(roundTrip(false)) },
      {
        name: `frame reply, compact item: encode + decode x${BATCH}`,
        op: batch(roundTrip(true)),
        note: "what a `%` frame's client gets",
      },
    ],
    { rounds: 5, durationMs: 400, warmupOps: 20 },
  );
  void sink;
  return rows;
}
