/**
 * `fanc gateway` re-reading its IDL while it serves: Board (fixtures/board-service.ts) in a
 * child process on http and redis, already serving what the new IDL adds, and the gateway a
 * `bin/fanc.mjs` child on the old IDL, in a temp folder the tests edit. On SIGHUP, and with
 * `--watch` on a save, the new route answers while an event stream opened before the reload
 * goes on receiving; an edit that does not compile leaves the old IDL served and logs its
 * diagnostics; a stream of an event the new IDL removes ends with a `fan-error` event; a
 * service added on a transport the gateway did not open is named in a warning.
 */
import { renameSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CapturedChild, TempDir, until } from "../cli/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { forgetCluster, runnable, uniqueCluster, up } from "../transports/processes.js";
import { openSse, type SseReader, spawnGateway, startBoard, stopChild } from "./helpers.js";

const HEAD = `package fan.rl

version "1.0.0"

@transports(http, redis)
service Board {
  rpc post(text: string): int
`;
/** What the gateway starts on. */
const OLD = `${HEAD}  event posted(text: string)
}
`;
/** The rollout: a method with a route. */
const NEW = `${HEAD}  @route("GET /board/{name}") @idempotent
  rpc greet(name: string): string
  event posted(text: string)
}
`;
/** A broken edit: an unknown type. */
const BROKEN = `${HEAD}  rpc greet(name: strin): string
  event posted(text: string)
}
`;
/** `posted` removed; a service added on nats, which the gateway did not open. */
const WITHOUT_EVENT = `${HEAD}  @route("GET /board/{name}") @idempotent
  rpc greet(name: string): string
}

@transports(nats)
service Elsewhere {
  rpc ping(): void
}
`;

const EVENTS = "_fan/events/fan.rl.Board/posted";

async function call(url: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  const text = await res.text();
  return { status: res.status, body: text === "" ? undefined : JSON.parse(text) };
}

/** Posts `text` until the stream gets it (the first post may come before the subscription reaches redis). */
async function postUntilSeen(url: string, sse: SseReader, text: string): Promise<unknown> {
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    expect((await call(url, "/fan.rl.Board/post", { text })).status).toBe(200);
    const got = await sse.next(1000).then(JSON.parse, () => undefined);
    if (got !== undefined) return got;
  }
  throw new Error(`no event ${text} on the stream`);
}

/** Waits for the `count`-th line of stderr matching `re`. */
async function logged(gateway: CapturedChild, re: RegExp, count = 1): Promise<void> {
  const all = new RegExp(re.source, "g");
  await until(`the gateway logs ${re}`, () => (gateway.stderr().match(all)?.length ?? 0) >= count, 20_000);
}

/** Runs `fn` with an event stream of `posted` open on the deployment's gateway, closed after. */
async function streaming(
  d: Deployment,
  fn: (g: CapturedChild, url: string, sse: SseReader) => Promise<void>,
): Promise<void> {
  const sse = await openSse(`${d.url()}/${EVENTS}`);
  try {
    await fn(d.gateway(), d.url(), sse);
  } finally {
    sse.close();
  }
}

/** Board serving NEW and a gateway child on OLD in a temp folder the test edits (`args`: more options). */
interface Deployment {
  readonly idl: TempDir;
  gateway(): CapturedChild;
  url(): string;
}

/** Starts a Deployment before the describe block's tests and stops it after them. */
function deployment(what: string, args: readonly string[] = []): Deployment {
  const cluster = uniqueCluster(what);
  const served = new TempDir();
  const idl = new TempDir();
  let board: CapturedChild | undefined;
  let started: { gateway: CapturedChild; url: string } | undefined;
  beforeAll(async () => {
    board = await startBoard(cluster, served, NEW);
    idl.write("board.fan", OLD);
    started = await spawnGateway(cluster, args, idl.path);
  }, 240_000);
  afterAll(async () => {
    await stopChild(started?.gateway);
    await stopChild(board);
    await forgetCluster(cluster, ["redis"]);
    served.cleanup();
    idl.cleanup();
    // A stop measured alone takes ~2 s (the gateway's close grace); with three of these suites
    // side by side at load 12 this hook passed 60 s (what was slow was not found).
  }, 120_000);
  return { idl, gateway: () => started?.gateway as CapturedChild, url: () => started?.url as string };
}

describeWithBroker(
  runnable("redis") && up.etcd,
  "redis or etcd",
  "gateway reload",
)("fanc gateway reloads its IDL", () => {
  describe("on SIGHUP", () => {
    const d = deployment("gw-reload-hup");

    it("an IDL that does not compile leaves the old one served and logs its diagnostics", async () => {
      const g = d.gateway();
      const url = d.url();
      d.idl.write("board.fan", BROKEN);
      g.child.kill("SIGHUP");
      await logged(g, /fanc gateway: reload failed, still serving the previous IDL: /);
      // Located and coded, with the source line.
      expect(g.stderr()).toMatch(/board\.fan:8:\d+: error FAN\d{4}: unknown type `strin`/);
      expect(g.child.exitCode).toBeNull();
      expect(await call(url, "/fan.rl.Board/post", { text: "still" })).toEqual({
        status: 200,
        body: expect.any(Number),
      });
      expect((await call(url, "/board/ann")).status).toBe(404);
    }, 60_000);

    it("serves a route the new IDL adds, and a stream opened before goes on across the reload", async () => {
      await streaming(d, async (g, url, sse) => {
        expect(await postUntilSeen(url, sse, "before")).toEqual({ text: "before" });
        expect((await call(url, "/board/ann")).status).toBe(404);
        d.idl.write("board.fan", NEW);
        g.child.kill("SIGHUP");
        await logged(g, /fanc gateway: reloaded the IDL \(SIGHUP, \d+ ms\): [^\n]*/);
        const line = /fanc gateway: reloaded the IDL[^\n]*/.exec(g.stderr())?.[0] ?? "";
        expect(line).toContain("services changed: fan.rl.Board (+rpc greet)");
        expect(line).toContain("routes added: GET /board/{name}");
        expect(await call(url, "/board/ann")).toEqual({ status: 200, body: "hello ann" });
        expect(await call(url, "/fan.rl.Board/greet", { name: "bo" })).toEqual({ status: 200, body: "hello bo" });
        // The same stream, not reopened: the next event arrives on it.
        expect((await call(url, "/fan.rl.Board/post", { text: "after" })).status).toBe(200);
        expect(JSON.parse(await sse.next())).toEqual({ text: "after" });
      });
    }, 90_000);

    it("ends a stream of an event the new IDL removes, and names a transport it did not open", async () => {
      await streaming(d, async (g, url, sse) => {
        d.idl.write("board.fan", WITHOUT_EVENT);
        g.child.kill("SIGHUP");
        await logged(g, /fanc gateway: reloaded the IDL \(SIGHUP[^\n]*-event posted/);
        expect(JSON.parse(await sse.next())).toEqual({
          code: "NOT_FOUND",
          message: "the gateway's IDL was reloaded without the event fan.rl.Board.posted: it is no longer served",
        });
        expect(g.stderr()).toContain("services added: fan.rl.Elsewhere");
        // 1, or 2 when the gateway has yet to see the previous test's stream close.
        expect(g.stderr()).toMatch(/ended [12] open stream\(s\) of what it removed/);
        expect(g.stderr()).toContain(
          "fanc gateway: warning: fan.rl.Elsewhere is served on nats, which this gateway did not open (open: http, redis)",
        );
        expect((await call(url, `/${EVENTS}`)).status).toBe(404);
        expect(await call(url, "/board/ann")).toEqual({ status: 200, body: "hello ann" });
      });
    }, 60_000);
  });

  describe("with --watch", () => {
    const d = deployment("gw-reload-watch", ["--watch"]);

    it("a save that does not compile is logged and the old IDL stays; the next save is served", async () => {
      await streaming(d, async (g, url, sse) => {
        expect(await postUntilSeen(url, sse, "before")).toEqual({ text: "before" });
        d.idl.write("board.fan", BROKEN);
        await logged(g, /fanc gateway: reload failed, still serving the previous IDL: /);
        expect(g.stderr()).toMatch(/board\.fan:8:\d+: error FAN\d{4}: unknown type `strin`/);
        expect(await call(url, "/fan.rl.Board/post", { text: "kept" })).toEqual({
          status: 200,
          body: expect.any(Number),
        });
        expect(JSON.parse(await sse.next())).toEqual({ text: "kept" });
        d.idl.write("board.fan", NEW);
        await logged(g, /fanc gateway: reloaded the IDL \(--watch: [^\n]*routes added: GET \/board\/\{name\}/);
        expect(await call(url, "/board/ann")).toEqual({ status: 200, body: "hello ann" });
        expect((await call(url, "/fan.rl.Board/post", { text: "after" })).status).toBe(200);
        expect(JSON.parse(await sse.next())).toEqual({ text: "after" });
      });
    }, 90_000);

    it("follows a folder replaced whole: its IDL is served, and a save in it after that too", async () => {
      const g = d.gateway();
      const url = d.url();
      const next = new TempDir();
      try {
        next.write("board.fan", WITHOUT_EVENT);
        rmSync(d.idl.path, { recursive: true });
        renameSync(next.path, d.idl.path);
        await logged(g, /fanc gateway: reloaded the IDL \(--watch: [^\n]*-event posted/);
        expect((await call(url, `/${EVENTS}`)).status).toBe(404);
        // The new folder is the one watched now.
        d.idl.write("board.fan", NEW);
        await logged(g, /fanc gateway: reloaded the IDL \(--watch: [^\n]*\+event posted/);
        expect(await call(url, "/board/ann")).toEqual({ status: 200, body: "hello ann" });
      } finally {
        next.cleanup();
      }
    }, 60_000);
  });
});
