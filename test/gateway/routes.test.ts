/**
 * `@route` verbs as a REST client sees them, on both HTTP surfaces of one service: Shelf's own
 * http transport (Shelf in a child process, fixtures/shelf-service.ts) and `fanc gateway` in
 * front of it (in this process). A route answers its one verb (a GET route HEAD too); any
 * other verb on its path is 405 with `Allow` and an UNIMPLEMENTED error, the same answer from
 * both surfaces, and no handler runs.
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type CapturedChild, spawnCaptured, until } from "../cli/helpers.js";
import { SHARED_ETCD } from "../discovery/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { uniqueCluster, up } from "../transports/processes.js";
import { type LocalGateway, repo, startGateway, stopChild } from "./helpers.js";

const IDL = "test/gateway/fixtures/routes-idl";

/** What a client reads of an answer. */
interface Answer {
  readonly status: number;
  readonly allow: string | null;
  readonly body: unknown;
}

async function send(base: string, verb: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method: verb,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  const text = await res.text();
  return { status: res.status, allow: res.headers.get("allow"), body: text === "" ? undefined : JSON.parse(text) };
}

/** The 405 both surfaces answer for `verb path` when the path takes `allow`. */
const refused = (verb: string, path: string, allow: string): Answer => ({
  status: 405,
  allow,
  body: { code: "UNIMPLEMENTED", message: `${verb} ${path} is not served; ${path} takes ${allow}` },
});

describeWithBroker(
  up.etcd,
  "etcd",
  "gateway routes",
)("@route verbs on the http transport and the gateway", () => {
  const cluster = uniqueCluster("gw-routes");
  let shelf: CapturedChild | undefined;
  let gw: LocalGateway | undefined;
  let direct = "";

  beforeAll(async () => {
    shelf = spawnCaptured(join(repo, "node_modules/.bin/tsx"), [join(repo, "test/gateway/fixtures/shelf-service.ts")], {
      FAN_GW_CLUSTER: cluster,
      FAN_ETCD: SHARED_ETCD,
    });
    await until("Shelf is ready", () => /"event":"(ready|start failed)"/.test(shelf?.stdout() ?? ""), 120_000);
    const ready = /"http":"([^"]+)"/.exec(shelf.stdout());
    if (ready === null) throw new Error(`Shelf did not start: ${shelf.stdout()}${shelf.stderr()}`);
    direct = ready[1] as string;
    gw = await startGateway(cluster, ["--transports", "http"], IDL);
  }, 180_000);

  afterAll(async () => {
    try {
      await Promise.race([gw?.stop(), new Promise((r) => setTimeout(r, 15_000))]);
    } finally {
      await stopChild(shelf);
    }
  }, 60_000);

  it("any verb but a path's own: 405 with Allow and UNIMPLEMENTED, alike from the service and the gateway, and nothing runs", async () => {
    const cases: [verb: string, path: string, allow: string][] = [
      // A GET route's path: DELETE does not reach a read.
      ["DELETE", "/shelf/i1/name", "GET, HEAD"],
      ["POST", "/shelf/i1/name", "GET, HEAD"],
      // A path with three routes lists the verbs of all of them.
      ["POST", "/shelf/i1", "GET, HEAD, PUT, DELETE"],
      ["PATCH", "/shelf/i1", "GET, HEAD, PUT, DELETE"],
      // A route written without a verb, on an @idempotent rpc: GET.
      ["DELETE", "/shelf-count", "GET, HEAD"],
      ["PUT", "/shelf-count", "GET, HEAD"],
      // A service's own path takes POST only.
      ["GET", "/fan.shelf.Shelf/get", "POST"],
      ["DELETE", "/fan.shelf.Shelf/remove", "POST"],
    ];
    for (const [verb, path, allow] of cases) {
      const body = verb === "GET" || verb === "DELETE" ? undefined : { name: "x" };
      const fromService = await send(direct, verb, path, body);
      const fromGateway = await send(gw?.url ?? "", verb, path, body);
      expect(fromService, `${verb} ${path} on the service`).toEqual(refused(verb, path, allow));
      expect(fromGateway, `${verb} ${path} on the gateway`).toEqual(fromService);
    }
    // Nothing ran: the item is still there, with its name.
    expect((await send(gw?.url ?? "", "GET", "/shelf/i1")).body).toEqual({ id: "i1", name: "first" });
    expect((await send(direct, "GET", "/shelf-count")).body).toBe(1);
  }, 60_000);

  for (const surface of ["gateway", "service"] as const) {
    it(`the bound verbs run through the ${surface}: PUT, GET, HEAD, DELETE on one path`, async () => {
      const base = surface === "gateway" ? (gw?.url ?? "") : direct;
      const id = `${surface}-item`;
      const put = await send(base, "PUT", `/shelf/${id}`, { name: "second" });
      expect([put.status, put.body]).toEqual([200, { id, name: "second" }]);
      expect((await send(base, "GET", `/shelf/${id}/name`)).body).toBe("second");
      const head = await send(base, "HEAD", `/shelf/${id}`);
      expect([head.status, head.body]).toEqual([200, undefined]);
      const removed = await send(base, "DELETE", `/shelf/${id}`);
      expect([removed.status, removed.body]).toEqual([200, { id, name: "second" }]);
      const gone = await send(base, "GET", `/shelf/${id}`);
      expect([gone.status, (gone.body as { code: string }).code]).toEqual([404, "NOT_FOUND"]);
    }, 60_000);
  }

  it("a body sent with a DELETE is not read, by the service or the gateway: only the query string binds", async () => {
    for (const [surface, base] of [
      ["service", direct],
      ["gateway", gw?.url ?? ""],
    ] as const) {
      for (const id of [`${surface}-a`, `${surface}-b`]) await send(base, "PUT", `/shelf/${id}`, { name: "n" });
      const queried = await send(base, "DELETE", `/shelf/${surface}-a?reason=sold`);
      expect(queried.body, surface).toEqual({ id: `${surface}-a`, name: "n", reason: "sold" });
      // `reason` only in the body: absent.
      const bodied = await send(base, "DELETE", `/shelf/${surface}-b`, { reason: "from the body" });
      expect([bodied.status, bodied.body], surface).toEqual([200, { id: `${surface}-b`, name: "n" }]);
    }
  }, 60_000);

  it("POST /<package.Service>/<method> reaches the method although the route `PUT /{a}/{b}` matches its path", async () => {
    for (const base of [direct, gw?.url ?? ""]) {
      expect((await send(base, "POST", "/fan.shelf.Shelf/get", { id: "i1" })).body, base).toEqual({
        id: "i1",
        name: "first",
      });
      // Another verb on a service's own path is the service path's 405, not the route.
      expect(await send(base, "PUT", "/fan.shelf.Shelf/get", { name: "x" }), base).toEqual(
        refused("PUT", "/fan.shelf.Shelf/get", "POST"),
      );
      // Any other two segments are the route's.
      expect((await send(base, "PUT", "/left/right", {})).body, base).toBe("left/right");
    }
  }, 60_000);
});
