/**
 * What tests across processes share: whether the brokers and etcd answer, and the transport
 * factories a parent App uses to talk to a child App (`child.ts`) over each network transport.
 */
import type { TransportName } from "../../src/runtime/descriptor.js";
import { amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import { httpTransport } from "../../src/runtime/transports/http/index.js";
import { natsTransport } from "../../src/runtime/transports/nats/index.js";
import { redisTransport } from "../../src/runtime/transports/redis/index.js";
import type { TransportFactory } from "../../src/runtime/transports/transport.js";
import { zmqTransport } from "../../src/runtime/transports/zmq/index.js";
import { tcpTransport } from "../../src/runtime/transports/tcp/index.js";
import { token } from "../../src/runtime/transports/nats/names.js";
import { AMQP_URL, deleteByPrefix, reachable } from "./amqp-broker.js";
import { deleteStreams, NATS_URL } from "./nats-server.js";
import { deleteKeys, REDIS_URL } from "./redis-server.js";
import type { FanError } from "../../src/runtime/errors.js";
import { rejection } from "./conformance.js";
import type { ConformanceClient } from "./fixtures/generated/fan/conformance.js";
import type { Peer } from "./fixtures/peers.js";

export const ETCD = process.env.FAN_ETCD ?? "127.0.0.1:2379";

const hostPort = (u: string, port: number): [string, number] => {
  const url = new URL(u);
  return [url.hostname, Number(url.port || port)];
};

/** Which servers answer: etcd (discovery between processes), Redis, RabbitMQ and NATS. */
export const up = {
  etcd: await reachable(...hostPort(`tcp://${ETCD}`, 2379)),
  redis: await reachable(...hostPort(REDIS_URL, 6379)),
  amqp: await reachable(...hostPort(AMQP_URL, 5672)),
  nats: await reachable(...hostPort(NATS_URL, 4222)),
};

/** A factory for the parent's side of `name` (vitest cannot use the App's own loader). */
export function factoryFor(name: Exclude<TransportName, "local">): TransportFactory {
  switch (name) {
    case "http":
      return httpTransport();
    case "zmq":
      return zmqTransport();
    case "tcp":
      return tcpTransport();
    case "redis":
      return redisTransport({ url: REDIS_URL });
    case "amqp":
      return amqpTransport({ url: AMQP_URL });
    case "nats":
      return natsTransport({ url: NATS_URL });
  }
}

/** Whether `name` can run here (its broker, and etcd, answer). */
export function runnable(name: Exclude<TransportName, "local">): boolean {
  return up.etcd && (name === "redis" ? up.redis : name === "amqp" ? up.amqp : name === "nats" ? up.nats : true);
}

/**
 * Deletes what a test's cluster left on the brokers it used: amqp queues and exchanges (push
 * queues are durable quorum queues, and a RabbitMQ piling them up runs out of file handles),
 * Redis keys, JetStream streams. Never fails the test.
 */
export async function forgetCluster(cluster: string, brokers: readonly string[]): Promise<void> {
  await Promise.allSettled([
    brokers.includes("amqp") && up.amqp ? deleteByPrefix(`fan.${cluster}.`) : undefined,
    brokers.includes("redis") && up.redis ? deleteKeys(`fan.${cluster}.*`) : undefined,
    brokers.includes("nats") && up.nats ? deleteStreams(`fan_${token(cluster)}_`) : undefined,
  ]);
}

/** A cluster name no other run or engineer uses. */
export function uniqueCluster(what: string): string {
  return `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * SIGKILLs `peer`, the only consumer of `client`'s pushes (still registered: a long lease), waits
 * until a push fails with a message matching `down` (the client has seen the drop; before, a
 * push may be in flight and may have arrived), then sends 200 pushes: the errors they fail with.
 */
export async function pushesAfterKill(client: ConformanceClient, peer: Peer, down: RegExp): Promise<FanError[]> {
  await client.record({ id: "before" }, { timeout: 20_000 });
  await peer.kill();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const e = await rejection(() => client.record({ id: "probe" }, { timeout: 5000 }));
    if (down.test(e.message)) break;
    if (Date.now() > deadline) throw new Error(`the drop not seen within 15 s: ${e.message}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Promise.all(
    Array.from({ length: 200 }, (_, n) => rejection(() => client.record({ id: `after${n}` }, { timeout: 5000 }))),
  );
}
