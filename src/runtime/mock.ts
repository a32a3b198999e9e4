/**
 * Mocks of services for users' tests: every method records its calls and can be given a value,
 * an implementation or a typed error. A mock is a handler (serve it) and a client (call it).
 * OWNER: runtime-core helper — this file is a placeholder with the final signatures.
 */
import type { CallContext } from "./context.js";
import type { ServiceDefinition } from "./descriptor.js";

/** One recorded call. */
export interface RecordedCall<Req> {
  readonly req: Req;
  /** Present when the call came through a served handler. */
  readonly ctx?: CallContext;
}

/** The mock of one method; configuration methods return the service mock for chaining. */
export interface MethodMock<Req, Res, Parent> {
  readonly calls: readonly RecordedCall<Req>[];
  /** Every call resolves with `value`. */
  returns(value: Res): Parent;
  /** Every call runs `fn`. */
  implements(fn: (req: Req, ctx?: CallContext) => Res | Promise<Res>): Parent;
  /** Every call rejects with `error` (an IDL error instance or a FanError). */
  throws(error: Error): Parent;
  /** Forget calls and configuration. */
  reset(): Parent;
}

/** What every generated `mockX()` returns besides its per-method mocks. */
export interface ServiceMock<H, C> {
  readonly definition: ServiceDefinition<H, C>;
  /** A handler object that delegates to the method mocks (serve it with an App or the test kit). */
  readonly handler: H;
  /** A client that calls the method mocks directly, in-process. */
  readonly client: C;
}

/** Builds the mock of a service definition. */
export function createMock<H, C>(def: ServiceDefinition<H, C>): ServiceMock<H, C> {
  void def;
  throw new Error("createMock: not implemented yet");
}
