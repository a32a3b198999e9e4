/**
 * Errors across the boundary. The server turns whatever a handler threw into a `WireError`
 * (IDL errors keep their name and fields; unknown exceptions become INTERNAL with no stack or
 * message on the wire); the client rebuilds the generated error class from it.
 */
import type { Logger } from "pino";
import { codec } from "./index.js";
import type { ErrorDescriptor, ServiceDescriptor } from "../descriptor.js";
import { calledService, Code, FanError, isCode, type WireError } from "../errors.js";
import { reveal, revealed } from "../call/reveal.js";

/** Which payload form the envelope carries: typed values in-process, JSON on the wire. */
export type Form = "value" | "wire";

/** The IDL name of a generated error class instance (`static errorName`), if it is one. */
export function idlErrorName(e: FanError): string | undefined {
  const name = (e.constructor as { errorName?: unknown }).errorName;
  return typeof name === "string" ? name : undefined;
}

/** What the server logs and the trace id it names when an unknown exception becomes INTERNAL. */
export interface ErrorScope {
  readonly log: () => Logger;
  readonly traceId: () => string;
  /** Test apps: attach the exception for an in-process caller (`call/reveal.ts`), naming `service.method`. */
  readonly reveal?: { readonly service: string; readonly method: string };
}

/** Why an exception that is no FanError became INTERNAL (the log line's message). */
const HANDLER_FAILED = "handler failed";

/**
 * Turns anything a handler threw into the wire error the caller receives. The error of one of
 * the handler's own calls (`calledService`) is relayed: it keeps its code and message and names
 * the service that failed (`relayedFrom`), so the caller's breaker does not count it against
 * this instance; a dependency's IDL error is relayed with its name and fields even when this
 * method does not declare it. The handler's own IDL error must be declared by `method` (its
 * `throws`, not the service's other methods'), else INTERNAL.
 */
export function toWireError(
  e: unknown,
  service: ServiceDescriptor,
  method: string,
  form: Form,
  scope: ErrorScope,
): WireError {
  if (!FanError.is(e)) return internal(e, scope, HANDLER_FAILED);
  const name = idlErrorName(e);
  let wire: WireError;
  if (name !== undefined) {
    const desc = declares(service, method, name) ? service.errors[name] : undefined;
    if (desc === undefined) {
      const called = calledService(e);
      if (called === undefined)
        return internal(e, scope, `handler threw ${name}, which ${service.name}.${method} does not declare`);
      return relayedUndeclared(e, name, called, form, scope);
    }
    try {
      wire = { code: desc.code, message: e.message, error: name, details: idlFields(desc, e, form) };
    } catch (err) {
      return internal(err, scope, `handler threw ${name} with invalid fields`);
    }
  } else {
    if (!isCode(e.code)) return internal(e, scope, "handler threw a FanError with an unknown code");
    const details = form === "value" ? e.details : jsonSafe(e.details);
    wire = details === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, details };
  }
  const called = calledService(e);
  return called === undefined ? wire : { ...wire, relayedFrom: e.relayedFrom ?? called };
}

/** Whether `method` of `service` declares IDL error `name` (its `throws`; the service's other methods' do not count). */
export function declares(service: ServiceDescriptor, method: string, name: string): boolean {
  const m = Object.hasOwn(service.methods, method) ? service.methods[method] : undefined;
  return m?.throws.includes(name) === true;
}

/**
 * Where `rebuild` keeps the descriptor of an IDL error it made (a registered symbol, not
 * enumerable; `copyError` keeps it): a handler that relays the error without declaring it
 * encodes its fields with it.
 */
const DECLARED: unique symbol = Symbol.for("fan.FanError.declared") as never;

/**
 * A dependency's IDL error this service does not declare, relayed (the handler rejected with the
 * error of its own call): as the dependency sent it, name and fields included, plus
 * `relayedFrom`. The caller's descriptor does not know the name: it rebuilds a FanError with
 * `details: { error, fields }` (docs/decisions.md, "relayed IDL errors").
 */
function relayedUndeclared(e: FanError, name: string, called: string, form: Form, scope: ErrorScope): WireError {
  const desc = (e as unknown as Record<symbol, ErrorDescriptor | undefined>)[DECLARED];
  let details: unknown;
  try {
    details = desc === undefined ? (form === "value" ? e.details : jsonSafe(e.details)) : idlFields(desc, e, form);
  } catch (err) {
    return internal(err, scope, `handler relayed ${name} from ${called} with invalid fields`);
  }
  const wire: WireError = { code: e.code, message: e.message, error: name, relayedFrom: e.relayedFrom ?? called };
  return details === undefined ? wire : { ...wire, details };
}

function idlFields(desc: ErrorDescriptor, e: FanError, form: Form): unknown {
  const c = codec<Record<string, unknown>>(desc.fields);
  const fields = (e.details ?? {}) as Record<string, unknown>;
  return form === "value" ? c.complete(fields, "error") : c.encode(fields, "error");
}

function internal(e: unknown, scope: ErrorScope, what: string): WireError {
  const traceId = scope.traceId();
  scope.log().error({ err: e, traceId }, what);
  const wire: WireError = { code: Code.INTERNAL, message: `internal error (trace ${traceId})` };
  if (scope.reveal === undefined) return wire;
  // A plain exception needs no more than itself; a FanError that became INTERNAL says why.
  return reveal(wire, e, scope.reveal.service, scope.reveal.method, what === HANDLER_FAILED ? undefined : what);
}

function jsonSafe(v: unknown): unknown {
  if (v === undefined) return undefined;
  try {
    const text = JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/**
 * Rebuilds the error a caller rejects with: the generated class for IDL errors, else a FanError;
 * with `relayedFrom` when the instance relayed it.
 */
export function fromWireError(payload: unknown, service: ServiceDescriptor, form: Form): FanError {
  const err = rebuild(payload, service, form);
  const from = (payload as { relayedFrom?: unknown } | null)?.relayedFrom;
  if (typeof from === "string" && from.length > 0 && from.length <= MAX_SERVICE_NAME) err.relayedFrom = from;
  return err;
}

/** Longer `relayedFrom` values are dropped (a service name is a few dozen characters). */
const MAX_SERVICE_NAME = 512;

function rebuild(payload: unknown, service: ServiceDescriptor, form: Form): FanError {
  if (typeof payload !== "object" || payload === null) {
    return new FanError(Code.UNKNOWN, "the server replied with a malformed error");
  }
  const w = payload as Partial<Record<keyof WireError, unknown>>;
  const code: Code = isCode(w.code) ? w.code : Code.UNKNOWN;
  const message = typeof w.message === "string" ? w.message : code;
  const shown = revealed(payload);
  if (shown !== undefined) return new FanError(code, `${message}: ${shown.what}`, { cause: shown.error });
  if (typeof w.error === "string") {
    const desc = service.errors[w.error];
    if (desc !== undefined) {
      try {
        const c = codec<Record<string, unknown>>(desc.fields);
        const fields =
          form === "value" ? c.complete(w.details as Record<string, unknown>, "error") : c.decode(w.details, "error");
        const err = desc.create(fields, message);
        Object.defineProperty(err, DECLARED, { value: desc, enumerable: false });
        return err;
      } catch (e) {
        return new FanError(code, message, { cause: e, details: { error: w.error, fields: w.details } });
      }
    }
    return new FanError(code, message, { details: { error: w.error, fields: w.details } });
  }
  return w.details === undefined ? new FanError(code, message) : new FanError(code, message, { details: w.details });
}
