/** A case's settings (`CaseContext`) as the orchestrators make them: brokers from the environment, free ports, a unique id. */
import { createServer } from "node:net";
import type { CaseContext } from "./case.js";

const url = (env: string, d: string): string => process.env[env] ?? d;

/** The brokers the cases use: `FAN_REDIS_URL`, `FAN_AMQP_URL`, `FAN_NATS_URL`, `FAN_ETCD`, or the local defaults. */
export const brokers = {
  redisUrl: url("FAN_REDIS_URL", "redis://127.0.0.1:6379"),
  amqpUrl: url("FAN_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672"),
  natsUrl: url("FAN_NATS_URL", "nats://127.0.0.1:4222"),
  etcd: url("FAN_ETCD", "127.0.0.1:2379"),
};

/** A TCP port free on 127.0.0.1 now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let seq = 0;

/** A fresh context for one started case. */
export async function caseContext(): Promise<CaseContext> {
  return {
    ...brokers,
    id: `${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 7)}`,
    port: await freePort(),
    port2: await freePort(),
  };
}
