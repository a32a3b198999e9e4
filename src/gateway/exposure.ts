/**
 * What an outside client learns of a failure. The gateway answers browsers and other clients
 * outside the deployment, so an error from inside it keeps its code (and HTTP status) but not
 * its words: "zmq tcp://10.0.0.7:45301: connection is down", the instance ids of open circuit
 * breakers or a hint to edit `createApp({ transports })` are the operator's to read, in the
 * gateway's log, found by the trace id the client is given ("service unavailable (trace …)").
 *
 * Passed as they are: IDL errors (a service's own, with their fields), errors whose code is
 * about the request rather than the deployment (invalid argument, not found, credentials,
 * permission, ...), and the gateway's own refusals (`gatewayRefusal`). `--reveal-errors`
 * (development) passes everything.
 */
import type { Logger } from "pino";
import { Code, FanError, type WireError } from "../runtime/errors.js";

/** Codes whose message speaks of the request, not of the deployment: passed to the client as they are. */
const ABOUT_THE_REQUEST: ReadonlySet<Code> = new Set<Code>([
  Code.INVALID_ARGUMENT,
  Code.NOT_FOUND,
  Code.ALREADY_EXISTS,
  Code.PERMISSION_DENIED,
  Code.UNAUTHENTICATED,
  Code.OUT_OF_RANGE,
  Code.UNIMPLEMENTED,
  Code.CANCELLED,
]);

/** What the client reads instead, per code (the trace id follows). */
const SAFE: Readonly<Partial<Record<Code, string>>> = {
  UNAVAILABLE: "service unavailable",
  DEADLINE_EXCEEDED: "deadline exceeded",
  RESOURCE_EXHAUSTED: "resource exhausted",
  FAILED_PRECONDITION: "the service cannot take this request",
  ABORTED: "aborted",
};

/** Errors the gateway composed itself (about its own configuration): their words are for the client. */
const OWN = new WeakSet<FanError>();

/** A refusal the gateway words itself (no endpoint, instance or credential in it): passed as it is. */
export function gatewayRefusal(code: Code, message: string): FanError {
  const e = new FanError(code, message);
  OWN.add(e);
  return e;
}

/** True for an error made by `gatewayRefusal`. */
export function isGatewayRefusal(e: unknown): boolean {
  return e instanceof FanError && OWN.has(e);
}

/** Where a held-back error came from, for the log line. */
export interface ErrorSite {
  readonly service?: string;
  readonly method?: string;
  readonly path?: string;
}

export class Exposure {
  constructor(
    private readonly log: Logger,
    /** `--reveal-errors`: every error reaches the client as it is (development). */
    readonly reveal: boolean,
  ) {}

  /**
   * The form of `wire` (the error of `cause`) an outside client gets: as it is, or its code and
   * a safe message naming `traceId`, the full error then logged (warn) with that trace id.
   */
  outside(wire: WireError, cause: unknown, traceId: string, site: ErrorSite): WireError {
    if (this.reveal || typeof wire.error === "string" || ABOUT_THE_REQUEST.has(wire.code) || isGatewayRefusal(cause))
      return wire;
    this.log.warn(
      {
        traceId,
        ...site,
        code: wire.code,
        error: wire.message,
        ...(wire.details === undefined ? {} : { details: wire.details }),
      },
      "a call failed; the client got its code and trace id only",
    );
    const message = `${SAFE[wire.code] ?? "internal error"} (trace ${traceId})`;
    // Whether a failed push may have been delivered all the same is the client's to know (retrying it may repeat it).
    const maybe = (wire.details as { maybeDelivered?: unknown } | undefined)?.maybeDelivered;
    return typeof maybe === "boolean"
      ? { code: wire.code, message, details: { maybeDelivered: maybe } }
      : { code: wire.code, message };
  }
}
