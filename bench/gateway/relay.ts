/**
 * A relay without the gateway, for `bench/gateway.ts`, in a process of its own: a bare
 * `node:http` server that, for each POST, calls `Till.peek` with an App's generated client over
 * the transport named on the command line (`redis` or `amqp`) and answers the reply. It is the
 * topology of the gateway (HTTP in, a broker call out, from one process) with none of its code,
 * so the gateway's rows can be told apart into what relaying costs here and what the gateway
 * adds. Prints `listening on <url>` once ready.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createApp } from "../../src/runtime/app/app.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { Till } from "../../test/gateway/fixtures/generated/fan/gw.js";

const transport = process.argv[2];
const cluster = process.argv[3];
if ((transport !== "redis" && transport !== "amqp") || cluster === undefined) {
  console.error("usage: relay.ts redis|amqp CLUSTER");
  process.exit(2);
}
const app = createApp({
  cluster,
  discovery: `etcd://${process.env.FAN_ETCD ?? "127.0.0.1:2379"}`,
  logger: silentLogger(),
  transports:
    transport === "redis"
      ? { redis: { url: process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379" } }
      : { amqp: { url: process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672" } },
  telemetry: { healthService: false },
});
await app.ready();
const till = app.client(Till, { transport });
const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (d: Buffer) => chunks.push(d));
  req.on("end", () => {
    const input = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { by: string };
    till.peek(input).then(
      (reply) => {
        const body = JSON.stringify(reply);
        res
          .writeHead(200, {
            "content-type": "application/json; charset=utf-8",
            "content-length": String(Buffer.byteLength(body)),
          })
          .end(body);
      },
      (e: unknown) => res.writeHead(500).end(String(e)),
    );
  });
});
server.listen(0, "127.0.0.1", () =>
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`),
);
process.once("SIGTERM", () => void app.stop().then(() => process.exit(0)));
