/** `@route`: verbs, path syntax, parameters, and the rules each verb brings. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { check, expectClean, expectDiagnostics, messageOf, positions, src } from "../helpers.js";

/** The routes of the first service of a checked model. */
function routesOf(model: ReturnType<typeof expectClean>): unknown[] {
  const s = model.packages[0]!.decls.find((d) => d.kind === "service");
  return s?.kind === "service" ? s.methods.map((m) => m.route) : [];
}

describe("routes", () => {
  it("records the verb, the path and the parameters it binds", () => {
    const model = expectClean(
      src(
        "package p",
        "service S {",
        '  @route("/store/{storeId}/item/{inventoryId}") rpc get(storeId: string, inventoryId: int, extra?: string): string',
        '  @route("/flush") push flush(all: bool)',
        "}",
      ),
    );
    expect(routesOf(model)).toEqual([
      { verb: "POST", path: "/store/{storeId}/item/{inventoryId}", params: ["storeId", "inventoryId"] },
      { verb: "POST", path: "/flush", params: [] },
    ]);
  });

  it("binds the verb a route names; without one, GET for an @idempotent rpc and POST otherwise", () => {
    const model = expectClean(
      src(
        "package p",
        "service S {",
        '  @idempotent @route("GET /items/{id}") rpc get(id: string): string',
        '  @idempotent @route("DELETE /items/{id}") rpc remove(id: string)',
        '  @idempotent @route("PUT /items/{id}") rpc put(id: string, name: string): string',
        '  @route("PATCH /items/{id}") rpc rename(id: string, name: string): string',
        '  @route("POST /items") rpc add(name: string): string',
        '  @idempotent @route("/items") rpc list(page: int = 0): list<string>',
        '  @route("/items/{id}/notes") rpc note(id: string, text: string)',
        '  @idempotent @route("/flush") push flush()',
        '  @idempotent @route("GET /items/search") rpc search(q?: string): list<string>',
        "}",
      ),
    );
    expect(routesOf(model)).toEqual([
      { verb: "GET", path: "/items/{id}", params: ["id"] },
      { verb: "DELETE", path: "/items/{id}", params: ["id"] },
      { verb: "PUT", path: "/items/{id}", params: ["id"] },
      { verb: "PATCH", path: "/items/{id}", params: ["id"] },
      { verb: "POST", path: "/items", params: [] },
      { verb: "GET", path: "/items", params: [] },
      { verb: "POST", path: "/items/{id}/notes", params: ["id"] },
      { verb: "POST", path: "/flush", params: [] },
      { verb: "GET", path: "/items/search", params: [] },
    ]);
  });

  it("rejects unknown params (FAN0314), params missing from a GET route (FAN0315) and malformed routes (FAN0316)", () => {
    expectDiagnostics(
      src(
        "package p",
        "service S {",
        '  @route("/a/{nope}") rpc a(x: string)',
        '  @idempotent @route("/b/{x}") rpc b(x: string, y: int, z?: int)',
        '  @route("c") rpc c()',
        '  @route("/d?q=1") rpc d()',
        '  @route("/e/{1x}") rpc e()',
        '  @route("/f/{x}/{x}") rpc f(x: string)',
        '  @route("/g/{x") rpc g(x: string)',
        '  @route("/h/{x}") rpc h(x?: string)',
        '  @route("/i/{x}") rpc i(x: list<string>)',
        "  @route(1) rpc j()",
        '  @route("/k/id-{x}") rpc k(x: string)',
        '  @route("GET/l") rpc l()',
        "}",
      ),
      [
        ["FAN0314", 3, 10],
        ["FAN0315", 4, 22],
        ["FAN0316", 5, 10],
        ["FAN0316", 6, 10],
        ["FAN0316", 7, 10],
        ["FAN0316", 8, 10],
        ["FAN0316", 9, 10],
        ["FAN0316", 10, 10],
        ["FAN0316", 11, 10],
        ["FAN0303", 12, 3],
        ["FAN0316", 13, 10],
        ["FAN0316", 14, 10],
      ],
    );
  });

  it("says a `{param}` must be a whole segment, and how a route is written", () => {
    const whole = check(src("package p", 'service S { @route("/k/id-{x}") rpc k(x: string) }'));
    expect(messageOf(whole, "FAN0316")).toBe(
      "invalid route `/k/id-{x}`: `{x}` must be a whole path segment, as in `/items/{x}`",
    );
    const glued = check(src("package p", 'service S { @route("GET/l") rpc l() }'));
    expect(messageOf(glued, "FAN0316")).toBe("invalid route `GET/l`: a route is `/path` or `VERB /path`");
  });

  it("lets optional and defaulted parameters of a GET route travel in the query string", () => {
    const model = expectClean(
      src(
        "package p",
        "enum Colour { RED, WHITE }",
        "service S {",
        '  @route("/store/{storeId}/wines") @idempotent rpc list(storeId: string, colour?: Colour, tags?: list<string>, since?: timestamp, page: int = 0): int',
        "}",
      ),
    );
    expect(routesOf(model)).toEqual([{ verb: "GET", path: "/store/{storeId}/wines", params: ["storeId"] }]);
  });

  it("warns (FAN0509) on a GET or DELETE parameter the query string cannot carry: it could never be given", () => {
    const text = src(
      "package p",
      "struct Filter { min?: int }",
      "service S {",
      '  @idempotent @route("/a/{id}") rpc a(id: string, filter?: Filter): int',
      '  @idempotent @route("DELETE /b/{id}") rpc b(id: string, opts?: map<string, int>)',
      '  @idempotent @route("GET /c") rpc c(filters?: list<Filter>, meta?: json): int',
      // Bodies carry them: POST, PUT, PATCH; and a route written without a verb on a plain rpc.
      '  @idempotent @route("PUT /d/{id}") rpc d(id: string, filter?: Filter)',
      '  @route("/e") rpc e(filter?: Filter)',
      "}",
    );
    const r = check(text);
    expect(positions(text, r.diagnostics)).toEqual([
      ["FAN0509", 4, 22],
      ["FAN0509", 5, 22],
      ["FAN0509", 6, 22],
      ["FAN0509", 6, 22],
    ]);
    expect(r.diagnostics.every((d) => d.severity === "warning")).toBe(true);
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      "parameter `filter` of `a` (p.Filter) cannot be given on its GET route: a query string carries only scalars and lists of them",
      "parameter `opts` of `b` (map<string, int>) cannot be given on its DELETE route: a query string carries only scalars and lists of them",
      "parameter `filters` of `c` (list<p.Filter>) cannot be given on its GET route: a query string carries only scalars and lists of them",
      "parameter `meta` of `c` (json) cannot be given on its GET route: a query string carries only scalars and lists of them",
    ]);
    expect(r.model).toBeDefined();
  });

  it("names the missing parameter of a GET route", () => {
    const r = expectDiagnostics(
      src("package p", 'service S { @idempotent @route("/x") rpc list(storeId: string): int }'),
      [["FAN0315", 2, 32]],
    );
    expect(messageOf(r, "FAN0315")).toBe(
      "parameter `storeId` of `list` is not bound by its GET route, which has no body: make it optional (`storeId?: string`) or give it a default (`storeId: string = ...`), and it travels in the query string (`?storeId=...`), or put `{storeId}` in the path",
    );
  });

  it("FAN0315 says how to fix it: the way the message gives (optional, defaulted, in the path) compiles; a struct needs a body", () => {
    const search = (params: string, route = "GET /search") =>
      src("package p", `service S { @route("${route}") @idempotent rpc search(${params}): list<string> }`);
    const r = expectDiagnostics(search("q: string"), [["FAN0315", 2, 20]]);
    expect(messageOf(r, "FAN0315")).toContain("make it optional (`q?: string`) or give it a default");
    for (const fixed of [search("q?: string"), search('q: string = ""'), search("q: string", "GET /search/{q}")])
      expect(check(fixed).diagnostics).toEqual([]);
    const lists = expectDiagnostics(search("tags: list<string>"), [["FAN0315", 2, 20]]);
    expect(messageOf(lists, "FAN0315")).toBe(
      "parameter `tags` of `search` is not bound by its GET route, which has no body: make it optional (`tags?: list<string>`) or give it a default (`tags: list<string> = ...`), and it travels in the query string (`?tags=...`)",
    );
    const struct = expectDiagnostics(
      src(
        "package p",
        "struct F { min?: int }",
        'service S { @route("GET /search") @idempotent rpc search(f: F): int }',
      ),
      [["FAN0315", 3, 20]],
    );
    expect(messageOf(struct, "FAN0315")).toBe(
      "parameter `f` of `search` is not bound by its GET route, which has no body: a query string cannot carry a p.F either; bind POST, PUT or PATCH to take it from the JSON body",
    );
  });

  it("a DELETE has no body either: its required parameters are in the path (FAN0315)", () => {
    const r = expectDiagnostics(
      src(
        "package p",
        "service S {",
        '  @idempotent @route("DELETE /items") rpc drop(id: string, reason?: string)',
        '  @idempotent @route("DELETE /items/{id}") rpc remove(id: string, reason?: string)',
        "}",
      ),
      [["FAN0315", 3, 22]],
    );
    expect(messageOf(r, "FAN0315")).toBe(
      "parameter `id` of `drop` is not bound by its DELETE route, which has no body: make it optional (`id?: string`) or give it a default (`id: string = ...`), and it travels in the query string (`?id=...`), or put `{id}` in the path",
    );
  });

  it("a verb a route cannot bind is FAN0322, with a hint for a near miss and for HEAD", () => {
    const text = src(
      "package p",
      "service S {",
      '  @route("FOO /a") rpc a()',
      '  @idempotent @route("get /b") rpc b(): int',
      '  @idempotent @route("HEAD /c") rpc c(): int',
      '  @idempotent @route("DELET /d/{x}") rpc d(x: string)',
      "}",
    );
    // On the verb itself, just after the quote: the editor's quick fix puts the hint in its place.
    const r = expectDiagnostics(text, [
      ["FAN0322", 3, 11],
      ["FAN0322", 4, 23],
      ["FAN0322", 5, 23],
      ["FAN0322", 6, 23],
    ]);
    expect(r.diagnostics.map((d) => text.slice(d.span.start, d.span.end))).toEqual(["FOO", "get", "HEAD", "DELET"]);
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      "`FOO` is not a verb a route can bind; use GET, POST, PUT, PATCH or DELETE",
      "`get` is not a verb a route can bind; use GET, POST, PUT, PATCH or DELETE; did you mean `GET`?",
      "`HEAD` is not a verb a route can bind; use GET, POST, PUT, PATCH or DELETE; every GET route answers HEAD",
      "`DELET` is not a verb a route can bind; use GET, POST, PUT, PATCH or DELETE; did you mean `DELETE`?",
    ]);
  });

  it("FAN0322 points at the verb when the path has an escape; with an escape in the verb, the whole string and no did-you-mean", () => {
    // An escape after the verb: the quick fix still replaces just `get` (the offsets are the source's).
    const after = src("package p", 'service S { @idempotent @route("get /it\\u0065ms/{id}") rpc a(id: string): int }');
    const r = expectDiagnostics(after, [["FAN0322", 2, 33]]);
    expect(after.slice(r.diagnostics[0]!.span.start, r.diagnostics[0]!.span.end)).toBe("get");
    expect(messageOf(r, "FAN0322")).toContain("did you mean `GET`?");
    // An escape in the verb: no span is just the verb, so no hint a quick fix would put over the whole string.
    const inside = src("package p", 'service S { @idempotent @route("g\\u0065t /items/{id}") rpc a(id: string): int }');
    const q = expectDiagnostics(inside, [["FAN0322", 2, 32]]);
    expect(inside.slice(q.diagnostics[0]!.span.start, q.diagnostics[0]!.span.end)).toBe('"g\\u0065t /items/{id}"');
    expect(messageOf(q, "FAN0322")).toBe("`get` is not a verb a route can bind; use GET, POST, PUT, PATCH or DELETE");
  });

  it("a verb and its path are separated by spaces, as the editor grammar reads them: a tab is FAN0316", () => {
    expectClean(src("package p", 'service S { @idempotent @route("GET  /a") rpc a(): int }'));
    const tab = check(src("package p", 'service S { @idempotent @route("GET\t/a") rpc a(): int }'));
    expect(messageOf(tab, "FAN0316")).toBe("invalid route `GET\t/a`: a route is `/path` or `VERB /path`");
  });

  it("a GET route needs @idempotent (FAN0323): a GET must be safe to repeat", () => {
    const r = expectDiagnostics(
      src("package p", "service S {", '  @route("GET /items/{id}") rpc get(id: string): int', "}"),
      [["FAN0323", 3, 11]],
    );
    expect(messageOf(r, "FAN0323")).toBe("`get` has a GET route but is not @idempotent");
    // A push is no exception: a GET reaching it runs it.
    expectDiagnostics(src("package p", 'service S { @route("GET /flush") push flush() }'), [["FAN0323", 2, 21]]);
  });

  it("warns (FAN0508) on a PUT or DELETE route of a method that is not @idempotent; the model is still made", () => {
    const text = src(
      "package p",
      "service S {",
      '  @route("PUT /items/{id}") rpc put(id: string, name: string)',
      '  @route("DELETE /items/{id}") rpc remove(id: string)',
      '  @route("PATCH /items/{id}") rpc rename(id: string, name: string)',
      "}",
    );
    const r = check(text);
    expect(positions(text, r.diagnostics)).toEqual([
      ["FAN0508", 3, 11],
      ["FAN0508", 4, 11],
    ]);
    expect(r.diagnostics.every((d) => d.severity === "warning")).toBe(true);
    expect(r.diagnostics[1]?.message).toBe(
      "`remove` has a DELETE route but is not @idempotent; HTTP clients and proxies may send a DELETE twice",
    );
    expect(r.model).toBeDefined();
    expect(check(text, true).model).toBeUndefined();
  });

  it("a route naming a parameter whose type is unknown reports only the type (FAN0101), not FAN0314", () => {
    expectDiagnostics(
      src(
        "package p",
        "service S {",
        '  @idempotent @route("/levels/{sku}") rpc level(sku: strin): int',
        '  @route("/b/{x}/{nope}") rpc b(x: Missing)',
        "}",
      ),
      [
        ["FAN0101", 3, 54],
        ["FAN0314", 4, 10],
        ["FAN0101", 4, 36],
      ],
    );
  });

  it("two methods of a service on one verb and path are FAN0324, whatever their `{param}` names", () => {
    const r = expectDiagnostics(
      src(
        "package p",
        "service S {",
        '  @idempotent @route("GET /items/{id}") rpc get(id: string): int',
        '  @idempotent @route("/items/{key}/") rpc find(key: string): int',
        '  @idempotent @route("DELETE /items/{id}") rpc remove(id: string)',
        '  @idempotent @route("GET /items/search") rpc search(q?: string): int',
        '  @route("/items") rpc add(name: string)',
        '  @route("POST /items") push added(name: string)',
        "}",
        'service T { @idempotent @route("GET /items/{id}") rpc get(id: string): int }',
      ),
      [
        ["FAN0324", 4, 22],
        ["FAN0324", 8, 10],
      ],
    );
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      "`GET /items/{key}/` of `find` is already the route of `get`",
      "`POST /items` of `added` is already the route of `add`",
    ]);
  });
});

describe("the route examples of docs/diagnostics.md", () => {
  const doc = readFileSync(fileURLToPath(new URL("../../../docs/diagnostics.md", import.meta.url)), "utf8");
  for (const code of ["FAN0314", "FAN0315", "FAN0316", "FAN0322", "FAN0323", "FAN0324", "FAN0508", "FAN0509"]) {
    it(`${code}: its example reports it`, () => {
      const section = doc.slice(doc.indexOf(`### ${code} `));
      const example = /```fan\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
      const codes = check(src("package p", example)).diagnostics.map((d) => d.code);
      expect(codes).toContain(code);
    });
  }
});
