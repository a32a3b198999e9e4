/**
 * `fan/testing`: the test kit users import. `createTestApp()` is an App on the embedded
 * defaults (a private memory registry, the local transport) with a silent logger and short
 * timeouts, plus `.mock(m)` to serve a generated mock in place of a real service.
 */
import { App, type AppOptions } from "../runtime/app/app.js";
import type { ServiceDefinition, ServiceDescriptor } from "../runtime/descriptor.js";
import { Code, FanError } from "../runtime/errors.js";
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

/** How a test app serves one instance of a service version. */
interface Serving {
  readonly mock: boolean;
  /** The test named its instance id: it means to serve more than one. */
  readonly named: boolean;
}

/** An App for tests. */
export class TestApp extends App {
  /** Removes this App from its mocks' event forwards (at stop: a mock outlives the App of one test). */
  readonly #unforward: Array<() => void> = [];
  /** What this App serves, by `service@version`. */
  readonly #serving = new Map<string, Serving[]>();

  /**
   * Serves `handler` as an instance of `def`, as `App.serve` does; refused when the App mocks
   * the same service version already (see `mock`).
   */
  override serve<H>(def: ServiceDefinition<H, unknown>, handler: H, opts: ServeOptions = {}): this {
    return this.#claim(def?.descriptor, { mock: false, named: opts.instanceId !== undefined }, () =>
      super.serve(def, handler, opts),
    );
  }

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
   * A second mock of a service version this App mocks or serves already is refused (calls would
   * alternate between the two), unless every instance of it names its `instanceId`.
   */
  mock<H, C, E extends object>(m: ServiceMock<H, C, E>, opts: ServeOptions = {}): this {
    const def = standIn(m.definition, opts.config !== undefined);
    this.#claim(def.descriptor, { mock: true, named: opts.instanceId !== undefined }, () =>
      super.serve(def, m.handler, opts),
    );
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

  /**
   * Serves one more instance of `d` (by `serve`), unless a mock would share the service
   * version with another instance the test did not name: a test that mocks a service twice by
   * mistake gets its calls split between the two, B, A, B, A.
   */
  #claim(d: ServiceDescriptor | undefined, how: Serving, serve: () => unknown): this {
    if (d === undefined || typeof d !== "object") {
      serve(); // App.serve refuses it, saying why
      return this;
    }
    const key = `${d.name}@${d.version}`;
    const earlier = this.#serving.get(key) ?? [];
    const mocked = how.mock || earlier.some((e) => e.mock);
    if (earlier.length > 0 && mocked && !(how.named && earlier.every((e) => e.named)))
      throw new FanError(Code.ALREADY_EXISTS, twiceMessage(d, how.mock, earlier));
    serve();
    this.#serving.set(key, [...earlier, how]);
    return this;
  }
}

/** Why a second instance of a service version is refused, and what to do instead. */
function twiceMessage(d: ServiceDescriptor, mock: boolean, earlier: readonly Serving[]): string {
  const what = `${d.name} ${d.version}`;
  const before = earlier.some((e) => e.mock) ? "mocked" : "served by a handler";
  const second = mock ? "mock" : "serve";
  const instead =
    mock && before === "mocked"
      ? "configure the first mock instead (its methods' .reset() forgets calls and behaviour)"
      : "mock it or serve it, not both";
  return (
    `${second} ${what}: this test app has it ${before} already, and calls would alternate ` +
    `between the two; ${instead}. To serve two instances on purpose (e.g. to test failover), ` +
    `give each its own instanceId`
  );
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
