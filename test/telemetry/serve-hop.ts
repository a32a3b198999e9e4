/**
 * A child process serving one of the telemetry fixtures' services (`test.tel.A`, `B` or `C`)
 * on etcd until it is killed, for suites that need Apps in processes of their own.
 * Args: etcdEndpoints cluster service(A|B|C) instanceId transports(comma-separated)
 * Prints `ready` once registered.
 */
import { createApp, type ServiceDefinition } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { A, B, C, Hop, type HopClient, type HopHandler } from "./fixtures.js";

const [etcd, cluster, which, instanceId, transports] = process.argv.slice(2);
const defs: Record<string, ServiceDefinition<HopHandler, HopClient>> = { A, B, C };
const def = defs[which ?? ""];
if (etcd === undefined || cluster === undefined || def === undefined || instanceId === undefined || !transports) {
  console.error("usage: serve-hop <etcd> <cluster> <A|B|C> <instanceId> <transports>");
  process.exit(2);
}
const names = transports.split(",");
const options: Record<string, object> = {
  amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" },
  redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" },
  nats: { url: process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222" },
};
// The fixtures' descriptors leave nats out; these Apps may serve on any transport.
const served = { ...def, descriptor: { ...def.descriptor, transports: [...def.descriptor.transports, "nats"] } };
const app = createApp({
  cluster,
  discovery: `etcd://${etcd}`,
  logger: silentLogger(),
  leaseTtlMs: 3000,
  transports: Object.fromEntries(names.map((n) => [n, options[n] ?? {}])),
}).serve(served as typeof def, new Hop(), { instanceId, transports: names as never });
await app.start();
process.stdout.write("ready\n");
setInterval(() => undefined, 60_000);
