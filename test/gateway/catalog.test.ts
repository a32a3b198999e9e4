/**
 * The gateway's catalog of routes: every service of the IDL at one origin, so a route of one
 * service that another service's route of the same verb and path comes before is named (the
 * compiler refuses that only within one service, FAN0324), and a route of another verb on the
 * same path is not.
 */
import { expect, it } from "vitest";
import { Catalog } from "../../src/gateway/catalog.js";
import type { ClientCaller, ServiceDescriptor } from "../../src/runtime/descriptor.js";
import { ModelSchemas } from "../../src/cli/model-descriptor.js";
import { checkSources } from "../../src/compiler/index.js";

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
