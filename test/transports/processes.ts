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
import { AMQP_URL, reachable } from "./amqp-broker.js";
import { NATS_URL } from "./nats-server.js";
import { REDIS_URL } from "./redis-server.js";

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

/** A cluster name no other run or engineer uses. */
export function uniqueCluster(what: string): string {
  return `${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
