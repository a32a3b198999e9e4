/**
 * The server side of the policy layer, one `ServerGate` per served instance, run by the
 * dispatcher after the deadline check and before decoding and the handler: load shedding (a
 * bound on the instance's in-flight work, RESOURCE_EXHAUSTED), then the App's server
 * interceptors, then `@auth` (the IDL's required roles, checked by the App's verifier). An
 * interceptor sees the envelope's headers and the method's descriptor, may set the principal
 * (handlers read it as `ctx.principal`) and may refuse the call by throwing a FanError
 * (UNAUTHENTICATED, PERMISSION_DENIED...). A stand-in (the test kit's mock of a service) runs
 * the interceptors but does not enforce `@auth`: see `markStandIn`.
 */
import type { Logger } from "pino";
import type { MethodDescriptor, ServiceDescriptor } from "../descriptor.js";
import { Code, FanError, type WireError } from "../errors.js";
import type { EnvelopeHeaders } from "../transports/transport.js";
import type { PolicyEvents } from "./events.js";

/** One incoming call or push as server interceptors see it (before its input is decoded). */
export interface IncomingCall {
  readonly kind: "call" | "push";
  readonly service: ServiceDescriptor;
  readonly method: MethodDescriptor;
  readonly instanceId: string;
  /** The envelope's headers (credentials, traceparent, deadline...). */
  readonly headers: Readonly<EnvelopeHeaders>;
  /** Who is calling; an interceptor sets it, handlers read it as `ctx.principal`. */
  principal: unknown;
}

/** A server interceptor: throw (or reject with) a FanError to refuse the call. */
export type ServerInterceptor = (call: IncomingCall) => void | Promise<void>;

/** Checks `@auth`: who the caller is, and whether it has a role. */
export interface AuthVerifier {
  /** The principal the call's headers prove, or undefined (UNAUTHENTICATED) when none. */
  authenticate(call: IncomingCall): unknown;
  /**
   * Whether `principal` has `role` (`@auth("role")`). Default: `principal.roles` (an array)
   * includes it.
   */
  authorize?(principal: unknown, role: string, call: IncomingCall): boolean | Promise<boolean>;
}

/** `createApp({ server })`. */
export interface ServerPolicyOptions {
  /** Run before decoding and the handler of every call and push, in order. */
  readonly interceptors?: readonly ServerInterceptor[];
  /** Checks the IDL's `@auth`; required when a served service uses it. */
  readonly auth?: AuthVerifier;
  /** Calls, pushes and events in flight per served instance (held ones too); more calls, and sharded pushes that would be held, are refused (RESOURCE_EXHAUSTED). Default: unbounded. */
  readonly maxInFlight?: number;
}

/** What the gate reports to. */
export interface GateHost {
  readonly events: PolicyEvents;
  readonly log: Logger;
  /** Counts a shed call. */
  shed(): void;
}

/** Descriptors served in place of a service (the test kit's `.mock(m)`). */
const standIns = new WeakSet<ServiceDescriptor>();

/**
 * Marks `service` as a stand-in's descriptor: an instance served under it needs no verifier and
 * refuses no call for `@auth` (docs/decisions.md, "a mock does not enforce `@auth`"). When the App
 * has a verifier, its `authenticate` still runs, so `ctx.principal` is what the real service
 * would see; no principal, or a refusal by `authenticate`, leaves it undefined.
 */
export function markStandIn(service: ServiceDescriptor): void {
  standIns.add(service);
}

/** The checks of one served instance. */
export class ServerGate {
  readonly #service: ServiceDescriptor;
  readonly #instanceId: string;
  readonly #host: GateHost;
  readonly #interceptors: readonly ServerInterceptor[];
  readonly #auth: AuthVerifier | undefined;
  /** A stand-in (markStandIn): `@auth` is not enforced. */
  readonly #standIn: boolean;
  /** Calls beyond this many in flight are shed. */
  readonly maxInFlight: number;

  constructor(service: ServiceDescriptor, instanceId: string, opts: ServerPolicyOptions, host: GateHost) {
    this.#service = service;
    this.#instanceId = instanceId;
    this.#host = host;
    this.#interceptors = opts.interceptors ?? [];
    this.#auth = opts.auth;
    this.#standIn = standIns.has(service);
    const max = opts.maxInFlight ?? Number.POSITIVE_INFINITY;
    if (!(max === Number.POSITIVE_INFINITY || (Number.isInteger(max) && max > 0)))
      throw new FanError(Code.INVALID_ARGUMENT, `server.maxInFlight must be a positive integer, got ${String(max)}`);
    this.maxInFlight = max;
    const guarded = Object.values(service.methods).filter((m) => m.auth !== undefined);
    if (guarded.length > 0 && this.#auth === undefined && !this.#standIn)
      throw new FanError(
        Code.FAILED_PRECONDITION,
        `${service.name} requires @auth on ${guarded.map((m) => m.name).join(", ")}, but the app has no verifier: ` +
          "pass createApp({ server: { auth: { authenticate, authorize } } })",
      );
  }

  /** True when calls of `method` go through interceptors or `@auth`. */
  checks(method: MethodDescriptor): boolean {
    if (this.#interceptors.length > 0) return true;
    return method.auth !== undefined && (!this.#standIn || this.#auth !== undefined);
  }

  /** The refusal of a call of `method` that came over `transport` beyond the in-flight bound (counted), or undefined. */
  shed(inflight: number, method: string, transport: string): WireError | undefined {
    if (inflight < this.maxInFlight) return undefined;
    this.#host.shed();
    this.#host.events.emit({
      type: "shed",
      service: this.#service.name,
      method,
      instanceId: this.#instanceId,
      transport,
    });
    return {
      code: Code.RESOURCE_EXHAUSTED,
      message: `${this.#service.name} ${this.#instanceId} is at its bound of ${this.maxInFlight} calls in flight (load shed)`,
      // As a client bulkhead's refusal: the gateway tells a 429 of a bound in flight when to retry.
      details: { maxInFlight: this.maxInFlight },
    };
  }

  /** Runs the interceptors and `@auth`; resolves to the principal, or rejects with the WireError of the refusal. */
  async check(kind: "call" | "push", method: MethodDescriptor, headers: Readonly<EnvelopeHeaders>): Promise<unknown> {
    const call: IncomingCall = {
      kind,
      service: this.#service,
      method,
      instanceId: this.#instanceId,
      headers,
      principal: undefined,
    };
    try {
      for (const fn of this.#interceptors) await fn(call);
      const roles = method.auth;
      if (roles !== undefined && this.#standIn) await this.#identify(call);
      else if (roles !== undefined) await this.#authorize(call, roles);
    } catch (e) {
      throw this.#refusal(e, method);
    }
    return call.principal;
  }

  /** A stand-in's `@auth`: the principal the verifier finds, if any; never a refusal. */
  async #identify(call: IncomingCall): Promise<void> {
    if (this.#auth === undefined || call.principal !== undefined) return;
    try {
      const principal = await this.#auth.authenticate(call);
      if (principal !== null) call.principal = principal;
    } catch {
      // The real service would refuse here; a stand-in leaves the principal undefined.
    }
  }

  async #authorize(call: IncomingCall, roles: readonly string[]): Promise<void> {
    const auth = this.#auth as AuthVerifier;
    if (call.principal === undefined) call.principal = await auth.authenticate(call);
    if (call.principal === undefined || call.principal === null)
      throw new FanError(Code.UNAUTHENTICATED, `${this.#service.name}.${call.method.name} requires credentials`);
    if (roles.length === 0) return;
    for (const role of roles) {
      const ok =
        auth.authorize === undefined ? hasRole(call.principal, role) : await auth.authorize(call.principal, role, call);
      if (ok) return;
    }
    throw new FanError(
      Code.PERMISSION_DENIED,
      `${this.#service.name}.${call.method.name} requires the role ${roles.map((r) => JSON.stringify(r)).join(" or ")}`,
    );
  }

  #refusal(e: unknown, method: MethodDescriptor): WireError {
    const err: WireError = FanError.is(e)
      ? { code: e.code, message: e.message }
      : { code: Code.INTERNAL, message: `a server interceptor of ${this.#service.name} failed` };
    if (!FanError.is(e))
      this.#host.log.error({ err: e, method: method.name }, "a server interceptor threw a non-FanError");
    this.#host.events.emit({
      type: "refused",
      service: this.#service.name,
      method: method.name,
      instanceId: this.#instanceId,
      code: err.code,
    });
    return err;
  }
}

function hasRole(principal: unknown, role: string): boolean {
  const roles = (principal as { roles?: unknown } | null)?.roles;
  return Array.isArray(roles) && roles.includes(role);
}

/** What `serverGate` needs from the App. */
export interface GateApp {
  readonly policy: { readonly events: PolicyEvents };
  readonly log: Logger;
  readonly counters: { callsShed: number };
  readonly serverOptions: ServerPolicyOptions | undefined;
}

/** The gate of a served instance, or undefined when it has nothing to check (the dispatcher's fast path). */
export function serverGate(
  service: ServiceDescriptor,
  instanceId: string,
  opts: { readonly maxInFlight?: number },
  app: GateApp,
): ServerGate | undefined {
  const server = app.serverOptions ?? {};
  const maxInFlight = opts.maxInFlight ?? server.maxInFlight;
  const needed =
    maxInFlight !== undefined ||
    (server.interceptors?.length ?? 0) > 0 ||
    ((!standIns.has(service) || server.auth !== undefined) &&
      Object.values(service.methods).some((m) => m.auth !== undefined));
  if (!needed) return undefined;
  const merged: ServerPolicyOptions = maxInFlight === undefined ? server : { ...server, maxInFlight };
  return new ServerGate(service, instanceId, merged, {
    events: app.policy.events,
    log: app.log,
    shed: () => {
      app.counters.callsShed++;
    },
  });
}
