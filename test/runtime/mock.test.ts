import { describe, expect, it } from "vitest";
import type { CallContext } from "../../src/runtime/call/context.js";
import {
  type CallOptions,
  defineService,
  type EventStream,
  type ServiceDescriptor,
  type StateHandle,
} from "../../src/runtime/descriptor.js";
import { FanError } from "../../src/runtime/errors.js";
import { createMock, type MethodMock, type ServiceMock } from "../../src/runtime/call/mock.js";
import type { StructSchema } from "../../src/runtime/codec/schema.js";
import { ColorSchema, MoneySchema } from "./codec-fixtures.js";

// --- A hand-written copy of what fanc generates for PublicWines and Sync (docs/generated-code.md).

type Color = "RED" | "WHITE" | "ROSE";
interface Wine {
  id: string;
  name: string;
  color: Color;
  vintage?: number | undefined;
  price: { amount: string; currency: string };
  tags: string[];
  createdAt: Date;
}
const WineSchema: StructSchema = {
  kind: "struct",
  name: "retail.wines.Wine",
  fields: [
    { name: "id", schema: { kind: "uuid" } },
    { name: "name", schema: { kind: "string", maxLength: 200 } },
    { name: "color", schema: { kind: "ref", name: "retail.wines.Color", get: () => ColorSchema } },
    { name: "vintage", schema: { kind: "int", min: 1800 }, optional: true },
    { name: "price", schema: { kind: "ref", name: "retail.common.Money", get: () => MoneySchema } },
    { name: "tags", schema: { kind: "list", of: { kind: "string" } }, default: [] },
    { name: "createdAt", schema: { kind: "timestamp" } },
  ],
};
const wineRef = { kind: "ref", name: "retail.wines.Wine", get: () => WineSchema } as const;

class WineNotFound extends FanError {
  static readonly errorName = "retail.wines.WineNotFound";
  readonly inventoryId: string;
  constructor(fields: { inventoryId: string }, message?: string) {
    super("NOT_FOUND", message ?? "WineNotFound", { details: fields });
    this.name = "WineNotFound";
    this.inventoryId = fields.inventoryId;
  }
}

const PublicWinesDescriptor: ServiceDescriptor = {
  name: "retail.wines.PublicWines",
  version: "2.1.0",
  transports: ["local"],
  shards: 16,
  unique: false,
  methods: {
    get: {
      name: "get",
      kind: "rpc",
      input: {
        kind: "struct",
        name: "retail.wines.PublicWines.get$input",
        fields: [
          { name: "storeId", schema: { kind: "string", minLength: 1 } },
          { name: "inventoryId", schema: { kind: "string" } },
        ],
      },
      output: wineRef,
      timeoutMs: 2000,
      idempotent: false,
      retry: 0,
      throws: ["retail.wines.WineNotFound"],
    },
    count: {
      name: "count",
      kind: "rpc",
      input: {
        kind: "struct",
        name: "retail.wines.PublicWines.count$input",
        fields: [{ name: "limit", schema: { kind: "int" }, default: 10 }],
      },
      output: { kind: "int64" },
      timeoutMs: 10_000,
      idempotent: true,
      retry: 0,
      throws: [],
    },
    invalidate: {
      name: "invalidate",
      kind: "push",
      input: {
        kind: "struct",
        name: "retail.wines.PublicWines.invalidate$input",
        fields: [{ name: "storeId", schema: { kind: "string" } }],
      },
      output: { kind: "void" },
      timeoutMs: 10_000,
      ttlMs: 30_000,
      idempotent: false,
      retry: 0,
      throws: [],
    },
  },
  events: {
    wineChanged: {
      name: "wineChanged",
      payload: {
        kind: "struct",
        name: "retail.wines.PublicWines.wineChanged$payload",
        fields: [{ name: "wine", schema: wineRef }],
      },
      broadcast: false,
    },
  },
  states: {
    inventory: {
      name: "inventory",
      schema: { kind: "map", key: { kind: "string" }, of: { kind: "int" } },
      mode: "delta",
    },
  },
  subscriptions: [],
  depends: [],
  errors: {},
};

interface PublicWinesHandler {
  get(req: { storeId: string; inventoryId: string }, ctx: CallContext): Promise<Wine> | Wine;
  count(req: { limit?: number }, ctx: CallContext): Promise<bigint> | bigint;
  invalidate(req: { storeId: string }, ctx: CallContext): Promise<void> | void;
}
interface PublicWinesClient {
  get(req: { storeId: string; inventoryId: string }, opts?: CallOptions): Promise<Wine>;
  count(req: { limit?: number }, opts?: CallOptions): Promise<bigint>;
  invalidate(req: { storeId: string }, opts?: CallOptions): Promise<void>;
  readonly events: { readonly wineChanged: EventStream<{ wine: Wine }> };
  readonly states: { readonly inventory: StateHandle<Record<string, number>> };
}
const PublicWines = defineService<PublicWinesHandler, PublicWinesClient>({
  descriptor: PublicWinesDescriptor,
  createClient: (c) => ({
    get: (req, opts) => c.call("get", req, opts) as Promise<Wine>,
    count: (req, opts) => c.call("count", req, opts) as Promise<bigint>,
    invalidate: (req, opts) => c.push("invalidate", req, opts),
    events: { wineChanged: c.event("wineChanged") as EventStream<{ wine: Wine }> },
    states: { inventory: c.state("inventory") as StateHandle<Record<string, number>> },
  }),
});
interface PublicWinesMock extends ServiceMock<PublicWinesHandler, PublicWinesClient> {
  readonly get: MethodMock<{ storeId: string; inventoryId: string }, Wine, PublicWinesMock>;
  readonly count: MethodMock<{ limit?: number }, bigint, PublicWinesMock>;
  readonly invalidate: MethodMock<{ storeId: string }, void, PublicWinesMock>;
}
function mockPublicWines(): PublicWinesMock {
  return createMock(PublicWines) as PublicWinesMock;
}

const SyncDescriptor: ServiceDescriptor = {
  ...PublicWinesDescriptor,
  name: "retail.wines.Sync",
  methods: {
    ping: {
      name: "ping",
      kind: "rpc",
      input: { kind: "struct", name: "retail.wines.Sync.ping$input", fields: [] },
      output: { kind: "string" },
      timeoutMs: 10_000,
      idempotent: false,
      retry: 0,
      throws: [],
    },
  },
  events: {},
  states: {},
  subscriptions: [
    {
      service: "retail.wines.PublicWines",
      event: "wineChanged",
      handler: "onWineChanged",
      source: () => PublicWinesDescriptor,
    },
  ],
};
interface SyncHandler {
  ping(req: Record<string, never>, ctx: CallContext): Promise<string> | string;
  onWineChanged(event: { wine: Wine }, ctx: CallContext): Promise<void> | void;
}
interface SyncClient {
  ping(req: Record<string, never>, opts?: CallOptions): Promise<string>;
}
const Sync = defineService<SyncHandler, SyncClient>({
  descriptor: SyncDescriptor,
  createClient: (c) => ({ ping: (req, opts) => c.call("ping", req, opts) as Promise<string> }),
});
interface SyncMock extends ServiceMock<SyncHandler, SyncClient> {
  readonly ping: MethodMock<Record<string, never>, string, SyncMock>;
  readonly onWineChanged: MethodMock<{ wine: Wine }, void, SyncMock>;
}
const mockSync = (): SyncMock => createMock(Sync) as SyncMock;

// --- Tests

const WINE: Wine = {
  id: "123e4567-e89b-12d3-a456-426614174000",
  name: "Margaux",
  color: "RED",
  price: { amount: "10.00", currency: "EUR" },
  tags: [],
  createdAt: new Date("2024-01-01T00:00:00Z"),
};

/** A minimal call context, as an App would pass to a served handler. */
const ctx = { service: "retail.wines.PublicWines", method: "get" } as unknown as CallContext;

async function rejection(p: Promise<unknown>): Promise<FanError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!FanError.is(e)) throw new Error(`expected a FanError rejection, got ${String(e)}`);
  return e;
}

describe("createMock", () => {
  it("chains configuration: each method returns the service mock", async () => {
    const m = mockSync().ping.returns("pong");
    expect(m.ping.calls).toEqual([]);
    expect(await m.client.ping({})).toBe("pong");
    const same = m.onWineChanged
      .implements(() => undefined)
      .ping.throws(new Error("x"))
      .ping.reset();
    expect(same).toBe(m);
  });

  it("returns a value through the client, with inputs recorded and outputs copied", async () => {
    const m = mockPublicWines().get.returns(WINE);
    const req = { storeId: "s1", inventoryId: "i1" };
    const got = await m.client.get(req);
    expect(got).toEqual(WINE);
    expect(got).not.toBe(WINE);
    expect(got.createdAt).toBeInstanceOf(Date);
    expect(m.get.calls).toEqual([{ req }]);
    expect(m.get.calls[0]?.req).not.toBe(req);
    expect("ctx" in (m.get.calls[0] as object)).toBe(false);
  });

  it("runs an implementation, which sees the decoded request with defaults applied", async () => {
    const m = mockPublicWines().count.implements((req) => BigInt(req.limit ?? -1) * 2n);
    expect(await m.client.count({})).toBe(20n);
    expect(await m.client.count({ limit: 4 })).toBe(8n);
    expect(m.count.calls.map((c) => c.req)).toEqual([{ limit: 10 }, { limit: 4 }]);
  });

  it("rejects with a configured typed error, as is", async () => {
    const err = new WineNotFound({ inventoryId: "nope" });
    const m = mockPublicWines().get.throws(err);
    await expect(m.client.get({ storeId: "s", inventoryId: "nope" })).rejects.toBe(err);
    await expect(m.client.get({ storeId: "s", inventoryId: "nope" })).rejects.toBeInstanceOf(WineNotFound);
    expect(m.get.calls).toHaveLength(2);
  });

  it("turns a plain error thrown by an implementation into INTERNAL, like a real server", async () => {
    const m = mockPublicWines().get.implements(() => {
      throw new TypeError("boom");
    });
    const e = await rejection(m.client.get({ storeId: "s", inventoryId: "i" }));
    expect(e.code).toBe("INTERNAL");
    expect(e.message).toBe("boom");
  });

  it("rejects UNIMPLEMENTED when a method has no behaviour", async () => {
    const m = mockPublicWines();
    const e = await rejection(m.client.get({ storeId: "s", inventoryId: "i" }));
    expect(e.code).toBe("UNIMPLEMENTED");
    expect(e.message).toBe(
      "mock retail.wines.PublicWines.get has no behaviour: call .returns(), .implements() or .throws()",
    );
    expect(m.get.calls).toHaveLength(1);
  });

  it("reset forgets calls and behaviour", async () => {
    const m = mockPublicWines().get.returns(WINE);
    await m.client.get({ storeId: "s", inventoryId: "i" });
    m.get.reset();
    expect(m.get.calls).toEqual([]);
    expect((await rejection(m.client.get({ storeId: "s", inventoryId: "i" }))).code).toBe("UNIMPLEMENTED");
  });

  it("catches bad input with INVALID_ARGUMENT and a path, before the mock runs", async () => {
    const m = mockPublicWines().get.returns(WINE);
    const e = await rejection(m.client.get({ storeId: "", inventoryId: "i" }));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.details).toEqual({ path: "storeId" });
    const missing = await rejection(m.client.get({ storeId: "s" } as never));
    expect(missing.details).toEqual({ path: "inventoryId" });
    expect(m.get.calls).toHaveLength(0);
  });

  it("catches a configured reply that does not fit the IDL with INTERNAL", async () => {
    const m = mockPublicWines().get.returns({ ...WINE, color: "BLUE" as Color });
    const e = await rejection(m.client.get({ storeId: "s", inventoryId: "i" }));
    expect(e.code).toBe("INTERNAL");
    expect(e.message).toMatch(
      /^mock retail\.wines\.PublicWines\.get replied with a value that does not fit the IDL: reply\.color: expected one of RED, WHITE, ROSE/,
    );
    expect(e.details).toEqual({ path: "reply.color" });
    m.count.returns(5 as unknown as bigint);
    expect((await rejection(m.client.count({}))).message).toMatch(
      /reply: expected an int64 \(a bigint\), got number 5/,
    );
  });

  it("runs pushes through the mock and resolves with nothing", async () => {
    const m = mockPublicWines().invalidate.returns(undefined);
    await expect(m.client.invalidate({ storeId: "s1" })).resolves.toBeUndefined();
    expect(m.invalidate.calls).toEqual([{ req: { storeId: "s1" } }]);
    expect((await rejection(m.client.invalidate({ storeId: 5 } as never))).details).toEqual({ path: "storeId" });
  });

  it("has a handler that delegates to the mocks and records the context", async () => {
    const m = mockSync()
      .ping.returns("pong")
      .onWineChanged.implements(() => undefined);
    expect(await m.handler.ping({}, ctx)).toBe("pong");
    await m.handler.onWineChanged({ wine: WINE }, ctx);
    // ctx is recorded, not enumerable: toEqual compares the requests.
    expect(m.ping.calls).toEqual([{ req: {} }]);
    expect(m.ping.calls[0]?.ctx).toBe(ctx);
    expect(m.onWineChanged.calls[0]?.ctx).toBe(ctx);
    expect(m.onWineChanged.calls[0]?.req.wine).toBe(WINE);
  });

  it("passes the request and context to implementations through the handler", async () => {
    const seen: unknown[] = [];
    const m = mockPublicWines().get.implements((req, c) => {
      seen.push(req.inventoryId, c?.method);
      return WINE;
    });
    expect(await m.handler.get({ storeId: "s", inventoryId: "i9" }, ctx)).toBe(WINE);
    expect(seen).toEqual(["i9", "get"]);
  });

  it("keeps mocks of different services and instances apart", async () => {
    const a = mockPublicWines().get.returns(WINE);
    const b = mockPublicWines();
    await a.client.get({ storeId: "s", inventoryId: "i" });
    expect(b.get.calls).toHaveLength(0);
    expect((await rejection(b.client.get({ storeId: "s", inventoryId: "i" }))).code).toBe("UNIMPLEMENTED");
    expect(a.definition).toBe(PublicWines);
    expect(a.method("get")).toBe(a.get);
    expect(() => a.method("nope")).toThrow(/has no method nope/);
  });
});

describe("createMock: events and states", () => {
  it("delivers emitted events to client subscribers, checked and copied, until unsubscribed", async () => {
    const m = mockPublicWines();
    const seen: { wine: Wine }[] = [];
    const sub = await m.client.events.wineChanged.subscribe((e) => {
      seen.push(e);
    });
    await m.emit("wineChanged", { wine: WINE });
    expect(seen).toEqual([{ wine: WINE }]);
    expect(seen[0]?.wine).not.toBe(WINE);
    await sub.unsubscribe();
    await m.emit("wineChanged", { wine: WINE });
    expect(seen).toHaveLength(1);
  });

  it("rejects an event payload that does not fit the IDL, and unknown events", async () => {
    const m = mockPublicWines();
    const e = await rejection(m.emit("wineChanged", { wine: { ...WINE, vintage: 1700 } }));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.details).toEqual({ path: "wineChanged.wine.vintage" });
    expect((await rejection(m.emit("nope", {}))).code).toBe("NOT_FOUND");
    expect(
      (await rejection(m.client.events.wineChanged.subscribe(() => undefined).then(() => m.emit("other", {})))).code,
    ).toBe("NOT_FOUND");
  });

  it("runs every subscriber even when one fails, then rejects with the failure", async () => {
    const m = mockPublicWines();
    let ran = 0;
    await m.client.events.wineChanged.subscribe(() => {
      throw new Error("first fails");
    });
    await m.client.events.wineChanged.subscribe(() => {
      ran++;
    });
    await expect(m.emit("wineChanged", { wine: WINE })).rejects.toThrow("first fails");
    expect(ran).toBe(1);
  });

  it("serves state values set on the mock to get() and watchers", async () => {
    const m = mockPublicWines();
    expect((await rejection(m.client.states.inventory.get())).code).toBe("UNAVAILABLE");
    const seen: Record<string, number>[] = [];
    const sub = await m.client.states.inventory.watch((v) => seen.push(v));
    m.setState("inventory", { s1: 3 });
    expect(await m.client.states.inventory.get()).toEqual({ s1: 3 });
    m.setState("inventory", { s1: 2 });
    await sub.unsubscribe();
    m.setState("inventory", { s1: 1 });
    expect(seen).toEqual([{ s1: 3 }, { s1: 2 }]);
    // setState is typed by the client's states; past the types, the run-time checks refuse the same.
    // @ts-expect-error inventory holds ints
    expect(() => m.setState("inventory", { s1: "x" })).toThrow(/inventory\["s1"\]: expected an int/);
    // @ts-expect-error PublicWines has no state "nope"
    expect(() => m.setState("nope", 1)).toThrow(/has no state nope/);
  });
});

describe("createMock: method names that collide", () => {
  const names = ["emit", "client", "toString", "__proto__"];
  const descriptor: ServiceDescriptor = {
    ...SyncDescriptor,
    name: "t.Odd",
    subscriptions: [],
    methods: Object.fromEntries(
      names.map((n) => [n, { ...(SyncDescriptor.methods.ping as ServiceDescriptor["methods"][string]), name: n }]),
    ),
  };
  const Odd = defineService<
    Record<string, (req: unknown, ctx: CallContext) => Promise<unknown>>,
    { call(m: string): Promise<unknown> }
  >({
    descriptor,
    createClient: (c) => ({ call: (m) => c.call(m, {}) }),
  });

  it("lets a method mock replace emit, keeps definition/handler/client, and reaches every mock by name", async () => {
    const m = createMock(Odd);
    const emit = m.method("emit");
    expect((m as unknown as Record<string, unknown>).emit).toBe(emit);
    expect(m.definition).toBe(Odd);
    emit.returns("e");
    m.method("client").returns("c");
    m.method("toString").returns("s");
    m.method("__proto__").returns("p");
    expect(Object.getPrototypeOf(m.handler)).toBe(Object.prototype);
    for (const [name, want] of [
      ["emit", "e"],
      ["client", "c"],
      ["toString", "s"],
      ["__proto__", "p"],
    ] as const) {
      expect(await m.client.call(name)).toBe(want);
      expect(await (m.handler[name] as (r: unknown, c: CallContext) => Promise<unknown>)({}, ctx)).toBe(want);
    }
    expect((await rejection(m.client.call("valueOf"))).code).toBe("NOT_FOUND");
  });
});
