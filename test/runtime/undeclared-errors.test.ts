/**
 * An IDL error is declared per method: a handler (or a mock) of a method whose `throws` does
 * not list the error it threw gives its caller INTERNAL, even when another method of the same
 * service declares that error; the method that declares it gives the error's class. Checked
 * in-process (values), through a serializing test app, over http, and through a mock (served by
 * an App and through its own client). Before, the check looked at every error of the service,
 * so `Leaf.work` passed on `Busy`, which only `Leaf.declared` declares. A push declares no
 * errors: its handler's IDL error reaches a producer that hears the nack (http) as INTERNAL.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { pino } from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/runtime/app/app.js";
import type { ServiceDefinition, ServiceMock } from "../../src/runtime/index.js";
import { shortId } from "../../src/runtime/ids.js";
import { createTestApp } from "../../src/testing/index.js";
import { generate } from "../../src/codegen/index.js";
import { checkSources } from "../../src/compiler/index.js";

const IDL = `package trial.leaf
version "1.0.0"

error Busy @code(UNAVAILABLE) { why: string }

@transports(http, local)
service Leaf {
  rpc declared(n: int): int throws Busy
  rpc work(n: int): int
  push poke(n: int)
}
`;

interface LeafClient {
  declared(req: { n: number }): Promise<number>;
  work(req: { n: number }): Promise<number>;
  poke(req: { n: number }): Promise<void>;
}
type BusyClass = new (fields: { why: string }) => Error;
interface LeafMock extends ServiceMock<unknown, LeafClient> {
  declared: { throws(e: Error): LeafMock };
  work: { throws(e: Error): LeafMock };
}

/** The IDL above, compiled as `fanc compile` would, and imported. */
async function compiled(
  dir: string,
): Promise<{ Leaf: ServiceDefinition<object, LeafClient>; Busy: BusyClass; mockLeaf: () => LeafMock }> {
  const { model, diagnostics } = checkSources([{ path: "leaf.fan", text: IDL }]);
  expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  if (model === undefined) throw new Error("no model");
  const files = generate(model);
  for (const [rel, text] of files) writeFileSync(join(dir, rel.split("/").join("_")), text);
  const file = [...files.keys()].find((f) => f.endsWith("leaf.ts")) as string;
  return (await import(/* @vite-ignore */ pathToFileURL(join(dir, file.split("/").join("_"))).href)) as never;
}

const dir = mkdtempSync(join(tmpdir(), "fan-undeclared-"));
const { Leaf, Busy, mockLeaf } = await compiled(dir);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Throws `Busy` from both methods: `declared` declares it, `work` does not. */
class BusyLeaf {
  declared(): number {
    throw new Busy({ why: "declared" });
  }
  work(): number {
    throw new Busy({ why: "x" });
  }
  poke(): void {
    throw new Busy({ why: "push" });
  }
}

const apps: App[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.stop()));
});

async function started<A extends App>(app: A): Promise<A> {
  apps.push(app);
  await app.start();
  return app;
}

async function failure(p: Promise<unknown>): Promise<Error & { code?: string; why?: string }> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e as Error,
  );
}

/** `work` is INTERNAL (not Busy), `declared` is Busy with its fields. */
async function expectPerMethod(client: LeafClient, reason: RegExp): Promise<void> {
  const undeclared = await failure(client.work({ n: 1 }));
  expect(undeclared).not.toBeInstanceOf(Busy);
  expect(undeclared.code).toBe("INTERNAL");
  expect(undeclared.message).toMatch(reason);
  const declared = await failure(client.declared({ n: 1 }));
  expect(declared).toBeInstanceOf(Busy);
  expect(declared).toMatchObject({ code: "UNAVAILABLE", why: "declared" });
}

const REVEALED =
  /^internal error \(trace [0-9a-f]{32}\): .*; handler threw trial\.leaf\.Busy, which trial\.leaf\.Leaf\.work does not declare$/;

describe("an IDL error another method of the service declares", () => {
  for (const serialize of [false, true]) {
    it(`is INTERNAL from a handler in a test app (${serialize ? "serialized" : "values"}); the declaring method's is its class`, async () => {
      const app = await started(createTestApp({ serialize }).serve(Leaf, new BusyLeaf()));
      await expectPerMethod(app.client(Leaf), REVEALED);
    });

    it(`is INTERNAL from a mock served by a test app (${serialize ? "serialized" : "values"})`, async () => {
      const leaf = mockLeaf().work.throws(new Busy({ why: "x" }));
      leaf.declared.throws(new Busy({ why: "declared" }));
      const app = await started(createTestApp({ serialize }).mock(leaf));
      await expectPerMethod(app.client(Leaf), REVEALED);
    });
  }

  it("is INTERNAL through a mock's own client", async () => {
    const leaf = mockLeaf().work.throws(new Busy({ why: "x" }));
    leaf.declared.throws(new Busy({ why: "declared" }));
    await expectPerMethod(
      leaf.client,
      /^mock trial\.leaf\.Leaf\.work threw trial\.leaf\.Busy, which trial\.leaf\.Leaf\.work does not declare$/,
    );
  });

  it("is INTERNAL over http with the trace id only, and logged at the server with the error's name and stack", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "error" }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const base = { cluster: `undeclared-${process.pid}-${shortId()}`, discovery: "memory" as const };
    await started(
      createApp({ ...base, logger, transports: { http: {} } }).serve(Leaf, new BusyLeaf(), { transports: ["http"] }),
    );
    const caller = await started(createApp({ ...base, logger: pino({ level: "silent" }), transports: { http: {} } }));
    const set = await caller.watch(Leaf.descriptor.name);
    await expect.poll(() => set.instances().length).toBe(1);
    await expectPerMethod(caller.client(Leaf, { transport: "http" }), /^internal error \(trace [0-9a-f]{32}\)$/);
    const traceId = /trace ([0-9a-f]{32})/.exec((await failure(caller.client(Leaf).work({ n: 2 }))).message)?.[1];
    const line = lines.find((l) => l.traceId === traceId);
    expect(line).toMatchObject({
      msg: "handler threw trial.leaf.Busy, which trial.leaf.Leaf.work does not declare",
      err: { type: "Busy", stack: expect.stringContaining("BusyLeaf.work") },
    });
    // A push declares no errors: its handler's own IDL error is INTERNAL to the producer too,
    // not Busy's message (it was `push not acknowledged: Busy`); an IDL error is final, so the
    // producer does not send it again (docs/policies.md, "Retries").
    const push = await failure(caller.client(Leaf, { transport: "http" }).poke({ n: 1 }));
    expect(push.message).toMatch(/^push not acknowledged: internal error \(trace [0-9a-f]{32}\) \(final\)$/);
  });
});
