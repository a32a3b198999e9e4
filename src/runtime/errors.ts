/**
 * One error class for everything that crosses a service boundary, with a documented code enum.
 * IDL-declared errors are generated subclasses that carry typed fields.
 */

/**
 * Status codes, gRPC's set and meanings. Each maps to an HTTP status for the http transport.
 *
 * | code | when |
 * | --- | --- |
 * | CANCELLED | the caller aborted the call |
 * | UNKNOWN | an error with no better code (e.g. from a foreign system) |
 * | INVALID_ARGUMENT | arguments failed the IDL decoders; `details.path` names the field |
 * | DEADLINE_EXCEEDED | the deadline passed before a reply |
 * | NOT_FOUND | an entity, method or service does not exist |
 * | ALREADY_EXISTS | create of something that exists |
 * | PERMISSION_DENIED | caller is known but not allowed |
 * | RESOURCE_EXHAUSTED | a size or rate limit was hit (payload too large, queue full) |
 * | FAILED_PRECONDITION | the system is not in a state for this call (default for IDL errors) |
 * | ABORTED | concurrency conflict; retry at a higher level |
 * | OUT_OF_RANGE | a value past a valid range |
 * | UNIMPLEMENTED | the handler does not implement the method |
 * | INTERNAL | a handler bug or invariant broken; details stay in the server log |
 * | UNAVAILABLE | no instance, broker down, or connection lost; safe to retry if idempotent |
 * | DATA_LOSS | unrecoverable data loss or corruption |
 * | UNAUTHENTICATED | no valid credentials |
 */
export const Code = {
  CANCELLED: "CANCELLED",
  UNKNOWN: "UNKNOWN",
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
  NOT_FOUND: "NOT_FOUND",
  ALREADY_EXISTS: "ALREADY_EXISTS",
  PERMISSION_DENIED: "PERMISSION_DENIED",
  RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
  FAILED_PRECONDITION: "FAILED_PRECONDITION",
  ABORTED: "ABORTED",
  OUT_OF_RANGE: "OUT_OF_RANGE",
  UNIMPLEMENTED: "UNIMPLEMENTED",
  INTERNAL: "INTERNAL",
  UNAVAILABLE: "UNAVAILABLE",
  DATA_LOSS: "DATA_LOSS",
  UNAUTHENTICATED: "UNAUTHENTICATED",
} as const;

/** A status code name. */
export type Code = (typeof Code)[keyof typeof Code];

const CODES = new Set<string>(Object.values(Code));

/** True when `s` is one of the runtime's status codes. */
export function isCode(s: unknown): s is Code {
  return typeof s === "string" && CODES.has(s);
}

/** HTTP status for each code (the http transport maps both ways). */
export const httpStatus: Readonly<Record<Code, number>> = {
  CANCELLED: 499,
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 412,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  UNAUTHENTICATED: 401,
};

/** The wire form of an error, carried in an envelope of kind `error`. */
export interface WireError {
  readonly code: Code;
  readonly message: string;
  /** The IDL error's name (`retail.wines.WineNotFound`) when it is a declared error. */
  readonly error?: string;
  /** Declared fields (wire form) for IDL errors, or runtime details such as `{ path }`. */
  readonly details?: unknown;
  /**
   * Set when the handler rejected with the error of one of its own calls: the service that
   * failed (the first one, along a chain of relays). The instance that answered is not at fault,
   * so the caller's breaker does not count it and the caller does not retry it.
   */
  readonly relayedFrom?: string | undefined;
}

const BRAND: unique symbol = Symbol.for("fan.FanError") as never;

/**
 * The error every fan call rejects with. IDL errors are generated subclasses.
 * Use `FanError.is(e)` rather than `instanceof` across package copies.
 */
export class FanError extends Error {
  /** Set on every instance; `is()` checks it so duplicate copies of the runtime still agree. */
  readonly [BRAND] = true;
  readonly code: Code;
  readonly details: unknown;
  /**
   * The W3C trace id of the call that failed, set by the client on every error a call rejects
   * with, so a caller can find the call's spans and log lines.
   */
  traceId: string | undefined;
  /**
   * The service whose failure this is, when the instance that answered only relayed it: its
   * handler rejected with the error of one of its own calls (`WireError.relayedFrom`).
   */
  relayedFrom: string | undefined;

  constructor(code: Code, message: string, options?: { cause?: unknown; details?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "FanError";
    this.code = code;
    this.details = options?.details;
  }

  /** Name-based type guard that survives duplicate package copies. */
  static is(e: unknown): e is FanError {
    return typeof e === "object" && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
  }

  /** Wraps anything thrown into a FanError; unknown errors become `fallback` (INTERNAL). */
  static from(e: unknown, fallback: Code = Code.INTERNAL): FanError {
    if (FanError.is(e)) return e;
    if (e instanceof Error && e.name === "AbortError") return new FanError(Code.CANCELLED, "cancelled", { cause: e });
    const message = e instanceof Error ? e.message : String(e);
    return new FanError(fallback, message, { cause: e });
  }
}

/** Where a client marks an error its call rejects with (a registered symbol: duplicate runtime copies agree). */
const CALLED: unique symbol = Symbol.for("fan.FanError.called") as never;

/**
 * Marks `e` as the error of a call to `service`, made by this process's client (first mark wins):
 * a handler that rejects with it relays it (`relayedFrom`). Not enumerable, never serialised.
 */
export function markCalled(e: FanError, service: string): void {
  if ((e as unknown as Record<symbol, unknown>)[CALLED] === undefined && Object.isExtensible(e))
    Object.defineProperty(e, CALLED, { value: service, enumerable: false });
}

/**
 * A copy of `e` (its class, code, message, details and stack) without the trace id and the
 * client's mark: for a call rejected with an error object another call was rejected with too
 * (a transport failing every call of a lost connection with one error), so each gets its own.
 */
export function copyError<E extends FanError>(e: E): E {
  const own = Object.getOwnPropertyDescriptors(e) as unknown as Record<PropertyKey, PropertyDescriptor>;
  delete own[CALLED];
  delete own.traceId;
  const copy = Object.create(Object.getPrototypeOf(e) as object, own) as E;
  copy.traceId = undefined;
  return copy;
}

/** The service of the call that rejected with `e`, when this process's client made it (`markCalled`). */
export function calledService(e: FanError): string | undefined {
  const s = (e as unknown as Record<symbol, unknown>)[CALLED];
  return typeof s === "string" ? s : undefined;
}

/**
 * A FanError from the payload of an `error` envelope as it came off the wire, whatever it holds:
 * a code fan does not know, or a payload that is not an object, gives UNKNOWN, and a missing
 * message `fallback` (codec/error-wire.ts's `fromWireError` also rebuilds IDL errors; this is for
 * replies no service contract covers: owner-push acks, `fanc health`).
 */
export function errorFromWire(payload: unknown, fallback: string): FanError {
  const w = (typeof payload === "object" && payload !== null ? payload : {}) as { code?: unknown; message?: unknown };
  return new FanError(isCode(w.code) ? w.code : Code.UNKNOWN, typeof w.message === "string" ? w.message : fallback);
}
