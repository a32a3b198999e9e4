/**
 * Keys and channels of the redis transport, always prefixed `fan.{cluster}.` so clusters never
 * collide. Every key of one service carries the service name as a Redis Cluster hash tag
 * (`{retail.wines.PublicWines}`), so the multi-key scripts and transactions of a service
 * land on one slot.
 */
import { type BrokerAddress, brokerEndpointParser, formatBrokerEndpoint } from "../endpoint.js";

/** What a redis endpoint (`redis://{cluster}/{service}/{version}/{instanceId}`) addresses. */
export type RedisAddress = BrokerAddress;

/** The endpoint an instance of `service@version` advertises in discovery. */
export function formatEndpoint(a: RedisAddress): string {
  return formatBrokerEndpoint("redis", a);
}

/** Parses an endpoint written by `formatEndpoint`; UNAVAILABLE when it is not one. */
export const parseEndpoint: (endpoint: string) => RedisAddress = brokerEndpointParser("redis");

function base(cluster: string, service: string): string {
  return `fan.${cluster}.{${service}}`;
}

/** The list of rpc requests of one exact service version. */
export function rpcKey(a: RedisAddress): string {
  return `${base(a.cluster, a.service)}.rpc.${a.version}`;
}

/** The list of one instance's rpc requests (calls with a `shard` header, for the shard's owner). */
export function instanceRpcKey(a: RedisAddress): string {
  return `${rpcKey(a)}.i.${a.instance ?? ""}`;
}

/** Sorted set of live instances of a version (member: instance id, score: expiry in Redis time). */
export function aliveKey(a: RedisAddress): string {
  return `${base(a.cluster, a.service)}.alive.${a.version}`;
}

/**
 * Sorted set of the instances of a version that may be running calls (member: instance id,
 * score: expiry in Redis time): refreshed with the alive set while an instance serves, and
 * after it stopped, while it finishes the calls it took (callers watch it: rpc-client.ts).
 */
export function runningKey(a: RedisAddress): string {
  return `${base(a.cluster, a.service)}.running.${a.version}`;
}

/** The push stream of one service major version (pushes survive minor upgrades). */
export function pushKey(a: RedisAddress): string {
  return `${base(a.cluster, a.service)}.push.v${a.version.split(".")[0] ?? a.version}`;
}

/** The stream of one event of a service. */
export function eventKey(cluster: string, service: string, event: string): string {
  return `${base(cluster, service)}.event.${event}`;
}

/**
 * Sorted set of the live consumers of a push stream (member: instance id, score: expiry in
 * Redis time): a consumer missing from it is gone, and its pending entries are claimed at once.
 */
export function consumersKey(stream: string): string {
  return `${stream}.consumers`;
}

/** The dead-letter stream of a stream. */
export function deadLetterKey(stream: string): string {
  return `${stream}.dlq`;
}

/** The consumer group of pushes (every instance of the service reads in it). */
export const PUSH_GROUP = "workers";

/** The consumer group of a subscription: per subscribing service, or per instance when broadcast. */
export function subscriptionGroup(sub: { group: string; instanceId: string; broadcast: boolean }): string {
  return sub.broadcast ? `${sub.group}#${sub.instanceId}` : sub.group;
}

/** The pub/sub channel one client's replies arrive on. */
export function replyChannel(cluster: string, clientId: string): string {
  return `fan.${cluster}.reply.${clientId}`;
}

/**
 * The pub/sub channel on which a serving instance that stops says it left (the message: its
 * version's alive key), so callers stop trusting their lease on that version (rpc-client.ts).
 */
export function leftChannel(cluster: string): string {
  return `fan.${cluster}.rpc.left`;
}

/** The pub/sub channel that carries cancellations to the servers of a version. */
export function cancelChannel(a: RedisAddress): string {
  return `fan.${a.cluster}.cancel.${a.service}.${a.version}`;
}
