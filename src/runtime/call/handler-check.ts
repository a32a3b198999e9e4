/**
 * The check `app.serve()` makes before it accepts a handler: a function for every rpc, push
 * and `on` subscription of the service. TypeScript checks this for typed handlers; this catches
 * the rest (plain JavaScript, casts, a typo'd method name) at serve, not at the first call.
 */
import type { ServiceDescriptor } from "../descriptor.js";
import { Code, FanError } from "../errors.js";

/** What the handler lacks, one entry per member: `rpc get`, `on retail.Stock.changed (onChanged)`. */
export function missingHandlers(d: ServiceDescriptor, handler: object): string[] {
  const has = (name: string): boolean => typeof (handler as Record<string, unknown>)[name] === "function";
  const missing: string[] = [];
  for (const m of Object.values(d.methods)) if (!has(m.name)) missing.push(`${m.kind} ${m.name}`);
  for (const s of d.subscriptions) if (!has(s.handler)) missing.push(`on ${s.service}.${s.event} (${s.handler})`);
  return missing;
}

/** Throws INVALID_ARGUMENT naming every missing function. */
export function assertHandlerComplete(d: ServiceDescriptor, handler: object): void {
  const missing = missingHandlers(d, handler);
  if (missing.length === 0) return;
  throw new FanError(
    Code.INVALID_ARGUMENT,
    `serve ${d.name}: the handler has no function for ${missing.join(", ")}`,
    { details: { missing } },
  );
}
