/**
 * What the gateway exposes, built once from the compiled IDL: every service's descriptor (as
 * `fanc call` builds it, `cli/model-descriptor.ts`), its untyped client from the gateway's App
 * (the runtime's client machinery: discovery, failover, policies, tracing), the `@route` paths
 * compiled as the http transport compiles them, and the IDL as JSON for `GET /_fan/idl`.
 */
import type { ProgramModel } from "../compiler/model.js";
import type { ClientCaller, ServiceDescriptor } from "../runtime/descriptor.js";
import { compileRoute, type Route, sameRoute } from "../runtime/transports/http/routes.js";

/** One service as the gateway serves it. */
export interface GatewayService {
  readonly descriptor: ServiceDescriptor;
  readonly client: ClientCaller;
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

  constructor(model: ProgramModel, descriptors: readonly ServiceDescriptor[], client: ClientFactory) {
    const routes: Route[] = [];
    const shadowed: string[] = [];
    for (const d of descriptors) {
      this.#services.set(d.name, { descriptor: d, client: client(d) });
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
