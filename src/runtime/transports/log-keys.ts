/**
 * The keys a transport's log record uses for the message it is about (docs/runtime.md,
 * "Logging"): a call or push is `targetService` / `targetMethod`, an event or a state update
 * `targetService` (its publisher) / `event` (the event's or state's name). `service` and
 * `method` are kept for the instance and handler that log.
 */
import type { Envelope } from "./transport.js";

export function aboutMessage(
  env: Pick<Envelope, "kind" | "service" | "method">,
): { targetService: string; targetMethod: string } | { targetService: string; event: string } {
  return env.kind === "event" || env.kind === "state"
    ? { targetService: env.service, event: env.method }
    : { targetService: env.service, targetMethod: env.method };
}
