import { defineService, type CallContext, type CallOptions, type ServiceDescriptor } from "fan/runtime";
import { createTestApp } from "fan/testing";
import { describe, expect, it } from "vitest";
import { memoryRegistry } from "../../src/runtime/discovery/index.js";
import { eventually } from "./fixtures/impl.js";

const descriptor: ServiceDescriptor = {
  name: "test.shop.Sync",
  version: "1.0.0",
  transports: ["local"],
  shards: 16,
  unique: true,
  methods: {
    whoami: {
      name: "whoami",
      kind: "rpc",
      input: { kind: "struct", name: "test.shop.Sync.whoami$input", fields: [] },
      output: { kind: "string" },
      timeoutMs: 1000,
      idempotent: true,
      retry: 0,
      throws: [],
    },
  },
  events: {},
  states: {},
  subscriptions: [],
  depends: [],
  errors: {},
};
interface SyncHandler {
  whoami(req: Record<string, never>, ctx: CallContext<Record<string, never>>): string;
}
interface SyncClient {
  whoami(req?: Record<string, never>, opts?: CallOptions): Promise<string>;
}
const Sync = defineService<SyncHandler, SyncClient>({
  descriptor,
  createClient: (c) => ({ whoami: (req, opts) => c.call("whoami", req ?? {}, opts) as Promise<string> }),
});
const handler: SyncHandler = { whoami: (_req, ctx) => `${ctx.instanceId} ${ctx.fencingToken}` };

describe("@unique services", () => {
  it("serve from one leader at a time; a standby takes over with a higher fencing token", async () => {
    const registry = memoryRegistry();
    const a = createTestApp({ discovery: registry }).serve(Sync, handler, { instanceId: "sync-a" });
    const b = createTestApp({ discovery: registry, uniqueWaitMs: 50 }).serve(Sync, handler, { instanceId: "sync-b" });
    const caller = createTestApp({ discovery: registry });
    await a.start();
    await b.start();
    await caller.start();
    const client = caller.client(Sync);
    const first = await client.whoami();
    expect(first).toMatch(/^sync-a \d+$/);
    for (let i = 0; i < 5; i++) expect(await client.whoami()).toBe(first);
    await a.stop();
    let next = "";
    await eventually(() => {
      void client.whoami().then(
        (s) => (next = s),
        () => undefined,
      );
      return next.startsWith("sync-b");
    }, 3000);
    const [, tokenA] = first.split(" ");
    const [, tokenB] = next.split(" ");
    expect(BigInt(tokenB as string)).toBeGreaterThan(BigInt(tokenA as string));
    await b.stop();
    await caller.stop();
  });
});
