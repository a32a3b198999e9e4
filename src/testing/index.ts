/**
 * `fan/testing`: the test kit users import. `createTestApp()` is an App on the embedded
 * defaults (a private memory registry, the local transport) with a silent logger and short
 * timeouts, plus `.mock(m)` to serve a generated mock in place of a real service, and
 * `.settled()` to wait for the pushes and events under way and hear of those that failed.
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
import { type DeliveryFailure, describeFailure } from "../runtime/transports/local/watch.js";

export { createMock } from "../runtime/call/mock.js";
export type { MethodMock, ServiceMock, RecordedCall } from "../runtime/call/mock.js";
export type { DeliveryFailure } from "../runtime/transports/local/watch.js";

/** Options of `createTestApp`: App options plus `serialize` (send every local call through the wire encoding). */
export interface TestAppOptions extends AppOptions {
  /** Serialise local calls as the network transports do (default false). */
  readonly serialize?: boolean;
}

/** Options of `TestApp.settled`. */
export interface SettledOptions {
  /** How long to wait for the deliveries under way before rejecting, naming them (default 2000 ms). */
  readonly timeoutMs?: number;
}

/**
 * What `TestApp.settled()` rejects with: pushes or events given up after their redeliveries (or
 * dropped) since the last `settled()`, and those still under way when it stopped waiting.
 */
export class UnsettledError extends Error {
  override readonly name = "UnsettledError";

  constructor(
    /** Given up or dropped, oldest first: the method, the attempts, the last error. */
    readonly failures: readonly DeliveryFailure[],
    /** Still under way after the timeout, one line each (empty when everything settled). */
    readonly pending: readonly string[],
    timeoutMs: number,
    /** Failures past the first 100, counted only. */
    more = 0,
  ) {
    const parts: string[] = [];
    if (failures.length > 0) {
      const n = failures.length + more;
      parts.push(
        `${n} ${n === 1 ? "delivery" : "deliveries"} failed:\n${failures.map((f) => `  ${describeFailure(f)}`).join("\n")}` +
          (more > 0 ? `\n  ... and ${more} more` : ""),
      );
    }
    if (pending.length > 0)
      parts.push(`still under way after ${timeoutMs} ms:\n${pending.map((p) => `  ${p}`).join("\n")}`);
    super(`not settled: ${parts.join("\n")}`);
  }
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

  constructor(opts: AppOptions) {
    super(opts);
    // From the first push on: settled() waits for them and reports those that failed.
    this.localTransport.hub.watch();
  }

  /**
   * Resolves once no push or event is under way in this App's process — each handled, its
   * redeliveries included — and rejects with an `UnsettledError` when one was given up (or
   * dropped) since the last `settled()`, naming its method, attempts and last error, or when
   * some are still under way after `timeoutMs`, naming them and what each is doing. A push
   * resolves once it is queued and its handler runs later: await this before asserting on what
   * the handler did. In-process deliveries only (the local transport's); the Apps that share
   * this App's discovery share its deliveries.
   */
  async settled(opts: SettledOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const watch = this.localTransport.hub.watch();
    const end = Date.now() + timeoutMs;
    let idle = await watch.idle(timeoutMs);
    // A handler may push without awaiting the push: look again a turn later, for what it queued.
    while (idle) {
      await nextTurn();
      if (watch.size === 0) break;
      idle = await watch.idle(Math.max(0, end - Date.now()));
    }
    const pending = idle ? [] : watch.pending();
    const { failures, more } = watch.takeFailures();
    if (failures.length > 0 || pending.length > 0) throw new UnsettledError(failures, pending, timeoutMs, more);
  }

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

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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
