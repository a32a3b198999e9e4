import { describe, expect, it } from "vitest";
import { badValues, missingKeys, unknownKeys } from "../../src/runtime/app/config.js";
import type { StructSchema } from "../../src/runtime/codec/schema.js";
import { DeadlineWheel, type Expirable } from "../../src/runtime/call/deadlines.js";
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from "../../src/runtime/ids.js";
import { parseInterval } from "../../src/runtime/app/tasks.js";
import { CatalogDescriptor } from "./fixtures/shop.js";

function item(log: string[], name: string): Expirable {
  return { bucket: 0, expire: () => void log.push(name) };
}

describe("the deadline wheel", () => {
  it("expires what is due, in deadline order, and nothing removed", async () => {
    const wheel = new DeadlineWheel();
    const log: string[] = [];
    const now = Date.now();
    const a = item(log, "a");
    const b = item(log, "b");
    const c = item(log, "c");
    const d = item(log, "d");
    // c is far enough out that a slow, shared machine still removes it before it is due.
    wheel.add(c, now + 500);
    wheel.add(a, now + 10);
    wheel.add(b, now + 30);
    wheel.add(d, now + 30);
    wheel.remove(d);
    wheel.remove(d);
    await expect.poll(() => log, { timeout: 400 }).toEqual(["a", "b"]);
    expect(Date.now()).toBeGreaterThanOrEqual(now + 30); // nothing expired early
    wheel.remove(c);
    const late = item(log, "late");
    wheel.add(late, Date.now() - 5);
    await expect.poll(() => log).toEqual(["a", "b", "late"]);
    await new Promise((r) => setTimeout(r, Math.max(0, now + 550 - Date.now()))); // past c's deadline
    expect(log).toEqual(["a", "b", "late"]);
  });

  it("does not wake up for buckets whose calls all settled", async () => {
    const wheel = new DeadlineWheel();
    const log: string[] = [];
    const now = Date.now();
    // A call every 2 ms for 100 ms, each settled at once, as sequential calls are: one bucket each.
    const settled = Array.from({ length: 50 }, (_, i) => item(log, `s${i}`));
    for (const [i, x] of settled.entries()) wheel.add(x, now + 20 + 2 * i);
    for (const x of settled) wheel.remove(x);
    const last = item(log, "last");
    wheel.add(last, now + 140);
    await expect.poll(() => log, { timeout: 1000 }).toEqual(["last"]);
    // One wake-up for the first (empty) bucket, which drops the empty ones; then the last's.
    expect(wheel.fired).toBeLessThanOrEqual(3);
  });
});

describe("trace context", () => {
  it("formats and parses W3C traceparent, rejecting malformed and all-zero ids", () => {
    const t = newTraceId();
    const s = newSpanId();
    expect(t).toMatch(/^[0-9a-f]{32}$/);
    expect(s).toMatch(/^[0-9a-f]{16}$/);
    expect(newTraceId()).not.toBe(t);
    expect(parseTraceparent(formatTraceparent(t, s))).toEqual({ traceId: t, spanId: s, flags: "01" });
    expect(parseTraceparent(`00-${"0".repeat(32)}-${s}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${t}-${"0".repeat(16)}-01`)).toBeUndefined();
    expect(parseTraceparent(`ff-${t}-${s}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${t.toUpperCase()}-${s}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${t}-${s}-01-extra`)).toBeUndefined();
    expect(parseTraceparent(`01-${t}-${s}-01-extra`)?.traceId).toBe(t);
    expect(parseTraceparent(42)).toBeUndefined();
  });
});

describe("config keys", () => {
  it("names every missing required key, nested ones by path", () => {
    const schema = CatalogDescriptor.config;
    if (schema === undefined) throw new Error("fixture has config");
    expect(missingKeys(schema, {})).toEqual(["apiKey", "db"]);
    expect(missingKeys(schema, { apiKey: "k", db: {} })).toEqual(["db.url", "db.poolSize"]);
    expect(missingKeys(schema, { apiKey: null, db: { url: "u", poolSize: 1 } })).toEqual(["apiKey"]);
    expect(missingKeys(schema, { apiKey: "k", db: { url: "u", poolSize: 1 } })).toEqual([]);
  });

  it("names every key the config block does not declare, nested ones by path", () => {
    const schema = CatalogDescriptor.config;
    if (schema === undefined) throw new Error("fixture has config");
    expect(unknownKeys(schema, { apiKey: "k", db: { url: "u", poolSize: 1 } })).toEqual([]);
    expect(unknownKeys(schema, { apiKey: "k", pageSise: 5, db: { url: "u", pool: 1 } })).toEqual([
      "pageSise",
      "db.pool",
    ]);
    // A service with no config block declares nothing.
    expect(unknownKeys(undefined, { anything: 1 })).toEqual(["anything"]);
    expect(unknownKeys(schema, null)).toEqual([]);
  });

  it("names every bad value by path, and quotes none inside a @secret entry, a struct one included", () => {
    const creds: StructSchema = {
      kind: "struct",
      name: "Creds",
      fields: [
        { name: "user", schema: { kind: "string" } },
        { name: "password", schema: { kind: "string", pattern: "^pw-" } },
      ],
    };
    const schema: StructSchema = {
      kind: "struct",
      name: "Cfg",
      fields: [
        { name: "port", schema: { kind: "int" } },
        { name: "creds", schema: creds, secret: true },
      ],
    };
    const problems = badValues(schema, { port: "x", creds: { user: 7, password: "hunter2" } }, "config");
    expect(problems.map((p) => p.key)).toEqual(["config.port", "config.creds.user", "config.creds.password"]);
    expect(problems[0]?.problem).toContain('got string "x"');
    expect(JSON.stringify(problems)).not.toContain("hunter2");
    expect(problems[2]?.problem).toBe("config.creds.password: must match /^pw-/ (the value is @secret: not shown)");
  });
});

describe("timer intervals", () => {
  it("accepts ms numbers and duration text, and rejects the rest clearly", () => {
    expect(parseInterval(250)).toBe(250);
    expect(parseInterval("250ms")).toBe(250);
    expect(parseInterval("1.5s")).toBe(1500);
    expect(parseInterval("2m")).toBe(120_000);
    expect(() => parseInterval(0)).toThrow(/positive/);
    expect(() => parseInterval("soon")).toThrow(/"soon"/);
  });
});
