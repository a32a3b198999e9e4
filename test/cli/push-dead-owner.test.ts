/**
 * `fanc push` and `fanc call` of a `@shard` method whose owner was SIGKILLed (its registration
 * not yet expired, its own amqp queue gone with its connection): fanc says what the generated
 * client says, `shard N of <service> is unavailable: its owner <id>: ...` with the shard and,
 * for a push, `maybeDelivered: false` in the error's fields, `--json` included. It printed only
 * the transport's message (`instance ... is not serving on amqp (no request queue)`), without
 * the `maybeDelivered` an operator needs to know whether to send the push again.
 * The owner is a child process (test/sharding's serve-store.ts), fanc runs in-process.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as call } from "../../src/cli/call.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { type Child, kill, serveStore } from "../sharding/helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { captureIo } from "./helpers.js";

describeEtcd("fanc push / call to a dead shard owner (amqp)", () => {
  const cluster = randomCluster();
  const C = ["--idl", "test/sharding/fixtures/idl", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  let owner: Child | undefined;

  beforeAll(async () => {
    // Alone, it owns every shard; its lease outlives the test, so it stays registered once killed.
    owner = await serveStore({
      etcd: SHARED_ETCD,
      cluster,
      instanceId: "dead-1",
      transports: ["amqp"],
      leaseTtlMs: 60_000,
    });
    await kill(owner);
  }, 90_000);

  afterAll(async () => {
    if (owner !== undefined) await kill(owner);
    await deleteByPrefix(`fan.${cluster}`).catch(() => undefined);
  }, 60_000);

  it("a push says which shard and owner, and maybeDelivered: false (--json and text)", async () => {
    const args = ["Store.stock", '{"storeId":"s1","count":1}', ...C, "--via", "amqp"];
    const io = captureIo();
    expect(await call([...args, "--json"], io, "push"), io.errText()).toBe(1);
    const o = JSON.parse(io.outText()) as { shard: number; error: { code: string; message: string; fields?: unknown } };
    expect(o.error.code).toBe("UNAVAILABLE");
    expect(o.error.message).toMatch(
      new RegExp(`^shard ${o.shard} of test\\.shards\\.Store is unavailable: its owner dead-1: .+`),
    );
    expect(o.error.fields).toEqual({ service: "test.shards.Store", shard: o.shard, maybeDelivered: false });

    const text = captureIo();
    expect(await call(args, text, "push")).toBe(1);
    expect(text.stderr[0]).toMatch(
      /^error UNAVAILABLE: shard \d+ of test\.shards\.Store is unavailable: its owner dead-1: /,
    );
    expect(text.stderr[1]).toMatch(
      /^ {2}fields: \{"service":"test\.shards\.Store","shard":\d+,"maybeDelivered":false\}$/,
    );
  }, 60_000);

  it("a call says which shard and owner", async () => {
    const io = captureIo();
    expect(await call(["Store.store", '{"storeId":"s1"}', ...C, "--via", "amqp", "--json"], io), io.errText()).toBe(1);
    const o = JSON.parse(io.outText()) as { shard: number; error: { code: string; message: string; fields?: unknown } };
    expect(o.error.code).toBe("UNAVAILABLE");
    expect(o.error.message).toMatch(
      new RegExp(`^shard ${o.shard} of test\\.shards\\.Store is unavailable: its owner dead-1: .+`),
    );
    expect(o.error.fields).toEqual({ service: "test.shards.Store", shard: o.shard });
  }, 60_000);
});
