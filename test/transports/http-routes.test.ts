/**
 * Routing a request's verb and path to a `@route` (transports/http/routes.ts, which the http
 * transport and the gateway share): the bound verb, HEAD for GET, the `Allow` of a 405, a
 * literal segment over a parameter, and descriptors generated before routes had verbs.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { MethodDescriptor } from "../../src/runtime/descriptor.js";
import {
  allowOf,
  compileRoute,
  lookupRoute,
  type Route,
  routeVerb,
  splitPath,
} from "../../src/runtime/transports/http/routes.js";

function method(
  name: string,
  route: NonNullable<MethodDescriptor["route"]>,
  extra: Partial<MethodDescriptor> = {},
): MethodDescriptor & { route: NonNullable<MethodDescriptor["route"]> } {
  return {
    name,
    kind: "rpc",
    input: { kind: "struct", name: `p.S.${name}$input`, fields: [] },
    output: { kind: "void" },
    timeoutMs: 1000,
    idempotent: false,
    retry: 0,
    throws: [],
    route,
    ...extra,
  };
}

const routes: Route[] = [
  compileRoute("p.S", method("get", { path: "/items/{id}", params: ["id"] }, { idempotent: true })),
  compileRoute("p.S", method("remove", { verb: "DELETE", path: "/items/{id}", params: ["id"] }, { idempotent: true })),
  compileRoute("p.S", method("rename", { verb: "PATCH", path: "/items/{id}", params: ["id"] })),
  compileRoute("p.S", method("search", { verb: "GET", path: "/items/search", params: [] }, { idempotent: true })),
  compileRoute("p.S", method("add", { path: "/items", params: [] })),
];

const find = (verb: string, path: string) => {
  const r = lookupRoute(routes, verb, splitPath(path));
  if (r === undefined) return undefined;
  return "allow" in r ? { allow: r.allow } : { method: r.match.route.method.name, params: r.match.params };
};

describe("http routes", () => {
  it("a route without a verb is GET for an @idempotent rpc, else POST (descriptors from before verbs)", () => {
    expect(routes.map((r) => `${r.verb} ${r.method.name}`)).toEqual([
      "GET get",
      "DELETE remove",
      "PATCH rename",
      "GET search",
      "POST add",
    ]);
    expect(routeVerb(method("flush", { path: "/flush", params: [] }, { kind: "push", idempotent: true }))).toBe("POST");
  });

  it("finds the route of the request's verb on the path; HEAD finds the GET route", () => {
    expect(find("GET", "/items/i%2F1")).toEqual({ method: "get", params: { id: "i/1" } });
    expect(find("HEAD", "/items/i1")).toEqual({ method: "get", params: { id: "i1" } });
    expect(find("DELETE", "/items/i1")).toEqual({ method: "remove", params: { id: "i1" } });
    expect(find("PATCH", "/items/i1")).toEqual({ method: "rename", params: { id: "i1" } });
    expect(find("POST", "/items")).toEqual({ method: "add", params: {} });
  });

  it("another verb on a route's path is the Allow of a 405; a path no route has is undefined", () => {
    expect(find("PUT", "/items/i1")).toEqual({ allow: "GET, HEAD, PATCH, DELETE" });
    expect(find("POST", "/items/i1")).toEqual({ allow: "GET, HEAD, PATCH, DELETE" });
    expect(find("GET", "/items")).toEqual({ allow: "POST" });
    expect(find("HEAD", "/items")).toEqual({ allow: "POST" });
    expect(find("GET", "/items/i1/more")).toBeUndefined();
    expect(find("GET", "/other")).toBeUndefined();
  });

  it("a literal segment wins over a parameter, whatever the order the routes come in", () => {
    expect(find("GET", "/items/search")).toEqual({ method: "search", params: {} });
    const reversed = [...routes].reverse();
    const r = lookupRoute(reversed, "GET", splitPath("/items/search"));
    expect(r !== undefined && "match" in r && r.match.route.method.name).toBe("search");
    // DELETE has no literal route: /items/search is an id there.
    expect(find("DELETE", "/items/search")).toEqual({ method: "remove", params: { id: "search" } });
  });

  it("docs/idl.md's upgrading table: what a route without a verb answered, answers and refuses", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../docs/idl.md", import.meta.url)), "utf8");
    const table = doc.slice(doc.indexOf("#### Upgrading"));
    const rows = [
      ...table.matchAll(
        /^\| (an `@idempotent` rpc|an `@idempotent` push|any other rpc or push) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$/gm,
      ),
    ];
    expect(rows.map((r) => r[1])).toEqual(["an `@idempotent` rpc", "an `@idempotent` push", "any other rpc or push"]);
    const owners: Partial<MethodDescriptor>[] = [{ idempotent: true }, { kind: "push", idempotent: true }, {}];
    rows.forEach(([, what, , answers, refused], i) => {
      // A descriptor as generated before verbs: no `verb`.
      const served = [compileRoute("p.S", method("m", { path: "/x", params: [] }, owners[i]))];
      const verbs = (list: string | undefined) => (list ?? "").trim().split(", ");
      for (const verb of verbs(answers))
        expect(lookupRoute(served, verb, ["x"]), `${what}: ${verb}`).toHaveProperty("match");
      for (const verb of verbs(refused))
        expect(lookupRoute(served, verb, ["x"]), `${what}: ${verb}`).toEqual({ allow: (answers ?? "").trim() });
    });
  });

  it("lists Allow in the usual order, HEAD with GET", () => {
    expect(allowOf(["DELETE", "GET"])).toBe("GET, HEAD, DELETE");
    expect(allowOf(["PUT", "POST"])).toBe("POST, PUT");
  });
});
