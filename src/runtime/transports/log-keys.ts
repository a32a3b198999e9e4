/**
 * The keys a transport's log record uses for the message it is about (docs/runtime.md,
 * "Logging"): a push is `targetService` / `targetMethod`, an event `targetService` (its
 * publisher) / `event`. `service` and `method` are kept for the instance and handler that log.
 */
import type { Envelope } from "./transport.js";

export function aboutMessage(
  env: Pick<Envelope, "kind" | "service" | "method">,
): { targetService: string; targetMethod: string } | { targetService: string; event: string } {
  return env.kind === "event"
    ? { targetService: env.service, event: env.method }
    : { targetService: env.service, targetMethod: env.method };
}
