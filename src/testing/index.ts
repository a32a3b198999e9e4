/**
 * `fan/testing`: the test kit users import. `createTestApp()` is an App on the embedded
 * defaults (a private memory registry, the local transport) with a silent logger and short
 * timeouts, plus `.mock(m)` to serve a generated mock in place of a real service.
 */
import { App, type AppOptions } from "../runtime/app/app.js";
import type { ServiceDefinition } from "../runtime/descriptor.js";
import { forwardMockEvents, forwardMockStates, type ServiceMock } from "../runtime/call/mock.js";
import type { StatePublisher } from "../runtime/states/index.js";
import type { ServeOptions } from "../runtime/call/served.js";
import { markStandIn } from "../runtime/policy/server.js";
import { silentLogger } from "../runtime/telemetry/logging.js";
import type { LocalOptions } from "../runtime/transports/local/index.js";

export { createMock } from "../runtime/call/mock.js";
export type { MethodMock, ServiceMock, RecordedCall } from "../runtime/call/mock.js";

/** Options of `createTestApp`: App options plus `serialize` (send every local call through the wire encoding). */
export interface TestAppOptions extends AppOptions {
  /** Serialise local calls as the network transports do (default false). */
  readonly serialize?: boolean;
}

/** An App for tests. */
export class TestApp extends App {
  /** Removes this App from its mocks' event forwards (at stop: a mock outlives the App of one test). */
  readonly #unforward: Array<() => void> = [];

  override stop(): Promise<void> {
    for (const off of this.#unforward.splice(0)) off();
    return super.stop();
  }

  /**
   * Serves a generated mock (`mockX()`) as the service it mocks. A mock needs neither the
   * service's dependencies nor its config: `start` waits for none of them and requires no
   * config keys (pass `opts.config` to give the mock's `implements` functions a `ctx.config`).
   * Nor does it enforce `@auth`: the App needs no verifier for it and no call to it is refused
   * for want of credentials or a role; the caller's headers still reach `ctx.headers`, and with
   * a verifier `ctx.principal` is what it finds (server interceptors run as for any service).
   */
  mock<H, C, E extends object>(m: ServiceMock<H, C, E>, opts: ServeOptions = {}): this {
    const def = standIn(m.definition, opts.config !== undefined);
    this.serve(def, m.handler, opts);
    // The mock's setState/patchState also update the state this App owns, so its watchers see them.
    forwardMockStates(m as ServiceMock<unknown, unknown>, (name, op, value, shard) => {
      const whole = this.publisher(def).state(name as never) as unknown as StatePublisher<unknown> & {
        shard(n: number): StatePublisher<unknown>;
      };
      const owner = shard === undefined ? whole : whole.shard(shard);
      if (op === "set") owner.set(value as never);
      else owner.patch(value);
    });
    // Its emit publishes through this App too while it runs, so services it serves that
    // subscribe get the event (before start and after stop, the mock client's subscribers only).
    this.#unforward.push(
      forwardMockEvents(m as ServiceMock<unknown, unknown>, (name, payload) =>
        this.telemetry.health.phase === "running"
          ? (this.publisher(def) as unknown as { emit(n: string, p: unknown): Promise<void> }).emit(name, payload)
          : Promise.resolve(),
      ),
    );
    return this;
  }
}

/** An App on the embedded defaults, silent unless FAN_LOG_LEVEL is set, quick to give up waiting. */
export function createTestApp(opts: TestAppOptions = {}): TestApp {
  const { serialize, ...rest } = opts;
  return new TestApp({
    logger: silentLogger(),
    dependencyTimeoutMs: 2000,
    stopGraceMs: 2000,
    uniqueWaitMs: 500,
    leaseTtlMs: 2000,
    revealErrors: true,
    ...rest,
    transports: {
      ...rest.transports,
      // An emit (a mock's too) resolves once the local subscribers have run: no sleep after it.
      ...(typeof rest.transports?.local === "function" && serialize !== true
        ? {}
        : { local: { waitForSubscribers: true, ...localOptions(rest), ...(serialize === true ? { serialize } : {}) } }),
    },
  });
}

/** The definition a mock is served as: no dependencies, no config unless one is given, `@auth` not enforced. */
function standIn<H, C>(def: ServiceDefinition<H, C>, keepConfig: boolean): ServiceDefinition<H, C> {
  const { config, ...rest } = def.descriptor;
  const descriptor = { ...rest, depends: [], ...(keepConfig && config !== undefined ? { config } : {}) };
  markStandIn(descriptor);
  return { ...def, descriptor };
}

function localOptions(opts: AppOptions): LocalOptions {
  const local = opts.transports?.local;
  if (typeof local === "function")
    throw new TypeError("createTestApp: pass local transport options, not a factory, together with serialize");
  return local ?? {};
}
