/**
 * Answers the broker transports' rpc servers give on their own, before or instead of the
 * App's dispatcher: a refusal for a request this queue or list does not serve, and the error
 * envelope that carries it (or any other transport-level failure) back to the caller.
 * Shared by amqp, redis and nats (no dependency of its own).
 */
import type { ServiceDescriptor } from "../descriptor.js";
import { Code, FanError } from "../errors.js";
import type { Envelope } from "./transport.js";

/**
 * NOT_FOUND for a call to another service or to a method the served version does not have;
 * `where` names what received it ("this queue", "this list").
 */
export function refuse(service: ServiceDescriptor, env: Envelope, where: string): FanError | undefined {
  if (env.service !== service.name)
    return new FanError(Code.NOT_FOUND, `service ${env.service} is not served here (${where} serves ${service.name})`);
  // A push comes this way only to one instance (a `@shard` push to its owner: owner-push.ts).
  if (service.methods[env.method]?.kind !== (env.kind === "push" ? "push" : "rpc"))
    return new FanError(Code.NOT_FOUND, `unknown method ${env.service}/${env.method}`);
  return undefined;
}

/** An error envelope answering `env` (or an undecodable request, when undefined). */
export function errorEnvelope(id: string, env: Envelope | undefined, e: FanError): Envelope {
  return {
    v: 1,
    id,
    kind: "error",
    service: env?.service ?? "",
    method: env?.method ?? "",
    headers: {},
    payload: { code: e.code, message: e.message },
  };
}
