/**
 * Subjects, stream and consumer names of the nats transport, always under `fan.{cluster}.` (streams
 * `fan_{cluster}_...`) so clusters never collide. Every name part written by users (cluster, service,
 * version, instance, event, group) is one token: characters other than `A-Z a-z 0-9 -` are escaped as
 * `_xx` (hex), so a dot in `retail.wines.PublicWines` or `1.0.0` never splits a subject and a name
 * is also a valid stream or consumer name.
 */
import { type BrokerAddress, brokerEndpointParser, formatBrokerEndpoint } from "../endpoint.js";

/** What a nats endpoint (`nats://{cluster}/{service}/{version}/{instanceId}`) addresses. */
export type NatsAddress = BrokerAddress;

/** The endpoint an instance of `service@version` advertises in discovery. */
export function formatEndpoint(a: NatsAddress): string {
  return formatBrokerEndpoint("nats", a);
}

/** Parses an endpoint written by `formatEndpoint`; UNAVAILABLE when it is not one. */
export const parseEndpoint: (endpoint: string) => NatsAddress = brokerEndpointParser("nats");

const tokens = new Map<string, string>();

/** `s` as one subject token (and a valid stream/consumer name part). */
export function token(s: string): string {
  const known = tokens.get(s);
  if (known !== undefined) return known;
  let out = "";
  for (const ch of s) {
    if (/[A-Za-z0-9-]/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, "utf8")) out += `_${b.toString(16).padStart(2, "0")}`;
  }
  if (tokens.size >= 10_000) tokens.clear();
  tokens.set(s, out);
  return out;
}

function major(version: string): string {
  return version.split(".")[0] ?? version;
}

/** Subjects already built per address (parsed endpoints are cached objects): no string work per call. */
const rpcSubjects = new WeakMap<NatsAddress, string>();
const instanceSubjects = new WeakMap<NatsAddress, string>();

/** The rpc subject of one exact service version (its instances share it in the queue group `rpc`). */
export function rpcSubject(a: NatsAddress): string {
  let s = rpcSubjects.get(a);
  if (s === undefined) {
    s = `fan.${token(a.cluster)}.rpc.${token(a.service)}.${token(a.version)}`;
    rpcSubjects.set(a, s);
  }
  return s;
}

/** The rpc subject of one instance (calls with a `shard` header, for the shard's owner). */
export function instanceSubject(a: NatsAddress): string {
  let s = instanceSubjects.get(a);
  if (s === undefined) {
    s = `${rpcSubject(a)}.i.${token(a.instance ?? "")}`;
    instanceSubjects.set(a, s);
  }
  return s;
}

/** Where a call goes: the instance's subject for sharded calls, else the version's. */
export function callSubject(a: NatsAddress, sharded: boolean): string {
  return sharded && a.instance !== undefined ? instanceSubject(a) : rpcSubject(a);
}

/** The queue group the instances of a version share rpc calls in. */
export const RPC_QUEUE = "rpc";

/** Cancellations of calls to a version (every instance listens; the payload is the call's reply subject). */
export function cancelSubject(a: NatsAddress): string {
  return `fan.${token(a.cluster)}.cancel.${token(a.service)}.${token(a.version)}`;
}

/**
 * The prefix of one client's reply subjects (`{prefix}.{n}`, one per batch). Its client token
 * starts with `TAKEN_MARK`: this client reads taken notices (rpc-server.ts); a client from before
 * them has a bare hex id and gets none.
 */
export function replyPrefix(cluster: string, clientId: string): string {
  return `fan.${token(cluster)}.reply.${TAKEN_MARK}${clientId}`;
}

/** The first character of the client token of a client that reads taken notices (not hex). */
export const TAKEN_MARK = "t";

/**
 * The reply prefix, with its trailing dot, of the client that made the served call `key`
 * (`{client}.{seq}`: batching/served.ts), when that client reads taken notices; else undefined
 * (an older client, or a raw publisher's reply subject).
 */
export function noticedClient(key: string): string | undefined {
  const dot = key.lastIndexOf(".");
  const id = key.lastIndexOf(".", dot - 1);
  const kind = key.lastIndexOf(".", id - 1);
  return kind > 3 &&
    key.startsWith("fan.") &&
    key.startsWith(".reply.", kind) &&
    key.startsWith(TAKEN_MARK, id + 1) &&
    dot < key.length - 1
    ? key.slice(0, dot + 1)
    : undefined;
}

/** A JetStream stream: its name and the subjects it stores. */
export interface StreamName {
  readonly name: string;
  readonly subjects: readonly string[];
}

/** The push subject of one service major version (pushes survive minor upgrades). */
export function pushSubject(a: NatsAddress): string {
  return `fan.${token(a.cluster)}.push.${token(a.service)}.v${token(major(a.version))}`;
}

/** The work-queue stream of a service major version's pushes. */
export function pushStream(a: NatsAddress): StreamName {
  return {
    name: `fan_${token(a.cluster)}_push_${token(a.service)}_v${token(major(a.version))}`,
    subjects: [pushSubject(a)],
  };
}

/** The durable consumer every instance of a service reads its pushes through. */
export const PUSH_CONSUMER = "workers";

/** The subject of one event of a service. */
export function eventSubject(cluster: string, service: string, event: string): string {
  return `fan.${token(cluster)}.event.${token(service)}.${token(event)}`;
}

/** The stream of every event of a service (interest retention: kept until each subscription acknowledged it). */
export function eventStream(cluster: string, service: string): StreamName {
  return {
    name: `fan_${token(cluster)}_event_${token(service)}`,
    subjects: [`fan.${token(cluster)}.event.${token(service)}.*`],
  };
}

/** The durable consumer of a subscription: per subscribing service, or per instance when broadcast. */
export function subscriptionConsumer(sub: {
  group: string;
  instanceId: string;
  broadcast: boolean;
  event: string;
}): string {
  const owner = sub.broadcast ? `${token(sub.group)}__${token(sub.instanceId)}` : token(sub.group);
  return `${owner}__on__${token(sub.event)}`;
}

/** The dead-letter stream of a cluster (every push and event dead letter, by subject). */
export function deadLetterStream(cluster: string): StreamName {
  return { name: `fan_${token(cluster)}_dlq`, subjects: [`fan.${token(cluster)}.dlq.>`] };
}

/** The dead-letter subject of a work stream's consumer. */
export function deadLetterSubject(cluster: string, stream: string, consumer: string): string {
  return `fan.${token(cluster)}.dlq.${stream}.${consumer}`;
}
