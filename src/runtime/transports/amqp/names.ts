/**
 * Names of everything the amqp transport declares, always prefixed `fan.{cluster}.` so two
 * clusters on one broker never collide, and the endpoint format an instance advertises.
 */
import { type BrokerAddress, brokerEndpointParser, formatBrokerEndpoint } from "../endpoint.js";

/** What an amqp endpoint (`amqp://{cluster}/{service}/{version}/{instanceId}`) addresses. */
export type AmqpAddress = BrokerAddress;

/** The endpoint an instance of `service@version` advertises in discovery. */
export function formatEndpoint(a: AmqpAddress): string {
  return formatBrokerEndpoint("amqp", a);
}

/** Parses an endpoint written by `formatEndpoint`; UNAVAILABLE when it is not one. */
export const parseEndpoint: (endpoint: string) => AmqpAddress = brokerEndpointParser("amqp");

/** The major version, which names the push queue (pushes survive minor upgrades). */
function major(version: string): string {
  return version.split(".")[0] ?? version;
}

/** rpc requests of one exact service version. */
export function rpcQueue(a: AmqpAddress): string {
  return `fan.${a.cluster}.${a.service}.rpc.${a.version}`;
}

/**
 * The rpc requests of one instance (calls with a `shard` header): exclusive to the instance's
 * connection, so it disappears with the process and a call to a dead owner is returned at once.
 */
export function instanceQueue(a: AmqpAddress): string {
  return `${rpcQueue(a)}.i.${a.instance ?? ""}`;
}

/** Where a call goes: the instance's queue for sharded calls, else the version's shared queue. */
export function callQueue(a: AmqpAddress, sharded: boolean): string {
  return sharded && a.instance !== undefined ? instanceQueue(a) : rpcQueue(a);
}

/** Durable pushes of one service major version. */
export function pushQueue(a: AmqpAddress): string {
  return `fan.${a.cluster}.${a.service}.push.v${major(a.version)}`;
}

/** The dead-letter queue of a work queue. */
export function deadLetterQueue(queue: string): string {
  return `${queue}.dlq`;
}

/**
 * The queue that gets a copy of every dead letter of `deadLetterQueue` (bound to the
 * dead-letter exchange with the same key): the fan instances of its work queue read it to log
 * what RabbitMQ dead-lettered by itself; the dead-letter queue keeps its own copy for operators.
 */
export function deadLetterWatch(deadLetterQueue: string): string {
  return `${deadLetterQueue}.watch`;
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

/**
 * The reply queue of one rpc client channel (exclusive, auto-deleted): a name of its own per
 * channel, so a channel opened while the broker still holds a lost connection's queue never
 * collides with it.
 */
export function replyQueue(cluster: string, client: string, channel: number): string {
  return `fan.${cluster}.replies.${client}.${channel}`;
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
