/**
 * The keys a transport's log record uses for the message it is about (docs/runtime.md,
 * "Logging"): a call or push is `targetService` / `targetMethod`, an event or a state update
 * `targetService` (its publisher) / `event` (the event's or state's name). `service` and
 * `method` are kept for the instance and handler that log.
 */
import { decodeEnvelope } from "../codec/wire.js";
import type { Envelope } from "./transport.js";

export function aboutMessage(
  env: Pick<Envelope, "kind" | "service" | "method">,
): { targetService: string; targetMethod: string } | { targetService: string; event: string } {
  return env.kind === "event" || env.kind === "state"
    ? { targetService: env.service, event: env.method }
    : { targetService: env.service, targetMethod: env.method };
}

/**
 * `aboutMessage` of a message the transport has not decoded (one dead-lettered before any
 * handler saw it): nothing when it does not decode, as the log line about it still stands.
 */
export function aboutRaw(
  raw: string | Uint8Array | undefined,
  maxBytes: number,
): Partial<ReturnType<typeof aboutMessage>> {
  if (raw === undefined) return {};
  try {
    return aboutMessage(decodeEnvelope(raw, { maxBytes }));
  } catch {
    return {};
  }
}
