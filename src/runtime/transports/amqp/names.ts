/**
 * Names of everything the amqp transport declares, always prefixed `fan.{cluster}.` so two
 * clusters on one broker never collide, and the endpoint format an instance advertises.
 */
import { Code, FanError } from "../../errors.js";

/** What an amqp endpoint (`amqp://{cluster}/{service}/{version}`) addresses. */
export interface AmqpAddress {
  readonly cluster: string;
  readonly service: string;
  readonly version: string;
}

/** The endpoint an instance of `service@version` advertises in discovery. */
export function formatEndpoint(a: AmqpAddress): string {
  return `amqp://${encodeURIComponent(a.cluster)}/${encodeURIComponent(a.service)}/${encodeURIComponent(a.version)}`;
}

const parsed = new Map<string, AmqpAddress>();

/** Parses an endpoint written by `formatEndpoint` (remembered: endpoints repeat); UNAVAILABLE when it is not one. */
export function parseEndpoint(endpoint: string): AmqpAddress {
  const known = parsed.get(endpoint);
  if (known !== undefined) return known;
  const m = /^amqp:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(endpoint);
  if (m === null) throw new FanError(Code.UNAVAILABLE, `not an amqp endpoint: ${endpoint}`);
  const a = {
    cluster: decodeURIComponent(m[1] as string),
    service: decodeURIComponent(m[2] as string),
    version: decodeURIComponent(m[3] as string),
  };
  if (parsed.size >= 10_000) parsed.clear();
  parsed.set(endpoint, a);
  return a;
}

/** The major version, which names the push queue (pushes survive minor upgrades). */
function major(version: string): string {
  return version.split(".")[0] ?? version;
}

/** rpc requests of one exact service version. */
export function rpcQueue(a: AmqpAddress): string {
  return `fan.${a.cluster}.${a.service}.rpc.${a.version}`;
}

/** Durable pushes of one service major version. */
export function pushQueue(a: AmqpAddress): string {
  return `fan.${a.cluster}.${a.service}.push.v${major(a.version)}`;
}

/** The dead-letter queue of a work queue. */
export function deadLetterQueue(queue: string): string {
  return `${queue}.dlq`;
}

/** The direct exchange that dead letters of a cluster go through (routing key: the DLQ's name). */
export function deadLetterExchange(cluster: string): string {
  return `fan.${cluster}.dlx`;
}

/** The topic exchange every event of a cluster is published to. */
export function eventsExchange(cluster: string): string {
  return `fan.${cluster}.events`;
}

/** The direct exchange that carries cancellations of in-flight calls to servers. */
export function controlExchange(cluster: string): string {
  return `fan.${cluster}.control`;
}

/** Routing key of cancellations for one service version. */
export function cancelKey(service: string, version: string): string {
  return `cancel.${service}.${version}`;
}

/** Routing key of an event (exact binding, no wildcards). */
export function eventKey(service: string, event: string): string {
  return `${service}.${event}`;
}

/** The queue of one subscription: per subscribing service, or per instance when broadcast. */
export function subscriptionQueue(
  cluster: string,
  sub: { group: string; instanceId: string; broadcast: boolean; service: string; event: string },
): string {
  const owner = sub.broadcast ? `${sub.group}.${sub.instanceId}` : sub.group;
  return `fan.${cluster}.${owner}.on.${sub.service}.${sub.event}`;
}
