/**
 * What the gateway exposes, built from the compiled IDL at start and again at each reload
 * (reload.ts): every service's descriptor (as `fanc call` builds it, `cli/model-descriptor.ts`),
 * its untyped client from the gateway's App (the runtime's client machinery: discovery,
 * failover, policies, tracing), the `@route` paths compiled as the http transport compiles
 * them, and the IDL as JSON for `GET /_fan/idl`. A catalog is never changed once built: a
 * reload builds another and the server swaps it in whole.
 */
import type { ProgramModel } from "../compiler/model.js";
import type { ClientCaller, ServiceDescriptor } from "../runtime/descriptor.js";
import { compileRoute, type Route, sameRoute } from "../runtime/transports/http/routes.js";

/** One service as the gateway serves it. */
export interface GatewayService {
  readonly descriptor: ServiceDescriptor;
  readonly client: ClientCaller;
  /**
   * The service's declaration and every type it reaches, as JSON: a reload keeps the entry
   * (descriptor, client, the streams' shared subscriptions) of a service whose text is the same.
   */
  readonly text: string;
}

/** Makes the client of a descriptor (the gateway's App: `app.client({ descriptor, createClient: (c) => c })`). */
export type ClientFactory = (descriptor: ServiceDescriptor) => ClientCaller;

export class Catalog {
  readonly #services = new Map<string, GatewayService>();
  readonly routes: readonly Route[];
  /**
   * Routes of one service that another service's route of the same verb and path comes
   * before (the compiler refuses that within one service, FAN0324, not across services served
   * apart); the gateway serves every service at one origin, so it logs them.
   */
  readonly shadowed: readonly string[];
  /** `GET /_fan/idl`: the checked model as JSON, serialised once. */
  readonly idlJson: string;

  /** `previous`: the catalog a reload replaces; its entries of unchanged services are kept. */
  constructor(
    model: ProgramModel,
    descriptors: readonly ServiceDescriptor[],
    client: ClientFactory,
    previous?: Catalog,
  ) {
    const routes: Route[] = [];
    const shadowed: string[] = [];
    const texts = serviceTexts(model);
    for (const fresh of descriptors) {
      const text = texts.get(fresh.name) ?? "";
      const kept = previous?.service(fresh.name);
      const entry = kept?.text === text ? kept : { descriptor: fresh, client: client(fresh), text };
      const d = entry.descriptor;
      this.#services.set(d.name, entry);
      for (const m of Object.values(d.methods)) {
        if (m.route === undefined) continue;
        const route = compileRoute(d.name, { ...m, route: m.route });
        const first = routes.find((r) => sameRoute(r, route));
        if (first !== undefined)
          shadowed.push(
            `${route.verb} ${m.route.path} of ${d.name}.${m.name} is never reached: ${first.service}.${first.method.name} has the same route`,
          );
        routes.push(route);
      }
    }
    this.routes = routes;
    this.shadowed = shadowed;
    this.idlJson = JSON.stringify({ services: descriptors.map((d) => d.name), model });
  }

  /** The service called `name` (its full name), if the IDL has it. */
  service(name: string): GatewayService | undefined {
    return this.#services.get(name);
  }

  /** Every service's full name. */
  names(): string[] {
    return [...this.#services.keys()];
  }
}

/**
 * Each service's declaration with the declarations it reaches through type references
 * (parameters, replies, errors, payloads, their fields in turn), as one JSON text per service.
 * The model has no source positions, so an edit elsewhere in a file leaves the text as it was.
 */
function serviceTexts(model: ProgramModel): Map<string, string> {
  const decls = new Map<string, unknown>();
  for (const p of model.packages) for (const d of p.decls) decls.set(d.fullName, d);
  const out = new Map<string, string>();
  for (const p of model.packages)
    for (const d of p.decls) {
      if (d.kind !== "service") continue;
      const reached = new Map<string, unknown>();
      const reach = (name: string): void => {
        if (reached.has(name)) return;
        reached.set(name, decls.get(name));
        walk(decls.get(name));
      };
      const walk = (v: unknown): void => {
        if (v === null || typeof v !== "object") return;
        if (Array.isArray(v)) {
          for (const x of v) walk(x);
          return;
        }
        const o = v as Record<string, unknown>;
        if (o.kind === "ref" && typeof o.target === "string") reach(o.target);
        // A method's `throws` names its errors (fully qualified) rather than referring to them.
        if (Array.isArray(o.throws)) for (const e of o.throws) if (typeof e === "string") reach(e);
        for (const k in o) walk(o[k]);
      };
      walk(d);
      out.set(d.fullName, JSON.stringify([d, [...reached].sort(([a], [b]) => (a < b ? -1 : 1))]));
    }
  return out;
}
