/**
 * The gateway's catalog of routes: every service of the IDL at one origin, so a route of one
 * service that another service's route of the same verb and path comes before is named (the
 * compiler refuses that only within one service, FAN0324), and a route of another verb on the
 * same path is not.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { loadIdl } from "../../src/cli/call.js";
import { Catalog } from "../../src/gateway/catalog.js";
import type { ClientCaller, ServiceDescriptor } from "../../src/runtime/descriptor.js";
import { ModelSchemas } from "../../src/cli/model-descriptor.js";
import { checkSources } from "../../src/compiler/index.js";
import { lookupRoute, splitPath } from "../../src/runtime/transports/http/routes.js";
import { repo } from "./helpers.js";

it("names a route shadowed by another service's route of the same verb and path", () => {
  const text = [
    "package p",
    'service A { @idempotent @route("GET /items/{id}") rpc get(id: string): int }',
    'service B { @idempotent @route("/items/{key}") rpc find(key: string): int',
    '  @idempotent @route("DELETE /items/{key}") rpc drop(key: string) }',
  ].join("\n");
  const model = checkSources([{ path: "p.fan", text }]).model;
  if (model === undefined) throw new Error("the IDL does not compile");
  const schemas = new ModelSchemas(model);
  const descriptors: ServiceDescriptor[] = schemas.services().map((s) => schemas.descriptor(s));
  const catalog = new Catalog(model, descriptors, () => ({}) as ClientCaller);
  expect(catalog.shadowed).toEqual(["GET /items/{key} of p.B.find is never reached: p.A.get has the same route"]);
  const verbs = catalog.routes.map((r) => `${r.verb} ${r.method.name}`);
  expect(verbs).toEqual(["GET get", "GET find", "DELETE drop"]);
});

it("the route examples of docs/gateway.md and docs/transports-http-zmq.md are what `fanc gateway idl/` serves", async () => {
  const schemas = await loadIdl(join(repo, "idl"));
  const descriptors = schemas.services().map((s) => schemas.descriptor(s));
  const catalog = new Catalog(schemas.model, descriptors, () => ({}) as ClientCaller);
  const answer = (verb: string, path: string) => {
    const found = lookupRoute(catalog.routes, verb, splitPath(path));
    return found === undefined
      ? "404"
      : "allow" in found
        ? `405 ${found.allow}`
        : `runs ${found.match.route.method.name}`;
  };
  let seen = 0;
  for (const doc of ["docs/gateway.md", "docs/transports-http-zmq.md"]) {
    const lines = readFileSync(join(repo, doc), "utf8").split("\n");
    lines.forEach((line, i) => {
      const path = /curl .*localhost:8080(\/[^\s?'"]*)/.exec(line)?.[1];
      // A route's path: not a service's own (`/<package.Service>/<method>`) nor the gateway's.
      if (path === undefined || path.split("/")[1]?.includes(".") || path.startsWith("/_fan")) return;
      const verb = /-X ([A-Z]+)/.exec(line)?.[1] ?? (/ -d /.test(line) ? "POST" : "GET");
      // What the example says it gets, on its line or in the comment above it.
      const allow = /405, allow: ([A-Z]+(?:, [A-Z]+)*)/.exec(`${lines[i - 1]} ${line}`)?.[1];
      const runs = /`(\w+)`'s @route/.exec(`${lines[i - 1]} ${line}`)?.[1];
      expect(answer(verb, path), `${doc}:${i + 1}`).toBe(allow !== undefined ? `405 ${allow}` : `runs ${runs}`);
      seen++;
    });
    // A documented 405 answer names the Allow its path has.
    for (const m of readFileSync(join(repo, doc), "utf8").matchAll(
      /"message":"([A-Z]+) (\S+) is not served; \S+ takes ([^"]+)"/g,
    ))
      expect(answer(m[1] as string, m[2] as string), doc).toBe(`405 ${m[3]}`);
  }
  expect(seen).toBeGreaterThanOrEqual(4);
});
