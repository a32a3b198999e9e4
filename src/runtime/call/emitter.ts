/**
 * `ctx.emit` of a served instance: one function per event of its service, each publishing
 * through the App's publisher of that service. Built once per instance, on first use, so a
 * call whose handler never emits pays nothing for it.
 */
import type { Emitter } from "./context.js";
import type { ServiceDescriptor } from "../descriptor.js";
import type { Publisher } from "./publisher.js";

/** A lazily built, cached `Emitter` for `service`, publishing through `publisher()`. */
export function lazyEmitter(service: ServiceDescriptor, publisher: () => Publisher): () => Emitter {
  let made: Emitter | undefined;
  return () => (made ??= makeEmitter(service, publisher()));
}

function makeEmitter(service: ServiceDescriptor, publisher: Publisher): Emitter {
  const out: Record<string, Emitter[string]> = Object.create(null) as Record<string, Emitter[string]>;
  for (const name of Object.keys(service.events))
    out[name] = (payload, headers) => publisher.emit(name, payload, headers);
  return Object.freeze(out);
}
