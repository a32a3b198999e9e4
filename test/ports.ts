/**
 * Ports for the private servers tests start, kill and restart (redis-server, nats-server,
 * etcd). They come from 20000–31999, below Linux's ephemeral range (32768–60999), so that no
 * outgoing connection takes a server's port while a restart test has it down. That range also
 * holds the members of `scripts/clusters.sh`, which are up while the whole suite runs in CI:
 * a private server given one of their ports failed to start, and its test then waited for it
 * (or, worse, talked to the cluster member answering there). Every port clusters.sh names is
 * left out, and so are RabbitMQ's distribution port and ports already handed out here.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const LOW = 20_000;
const HIGH = 32_000;

/** Every five-digit port scripts/clusters.sh names, and RabbitMQ's distribution port (AMQP + 20000). */
const RESERVED: ReadonlySet<number> = new Set([
  25_672,
  ...(readFileSync(new URL("../scripts/clusters.sh", import.meta.url), "utf8").match(/\b[1-6]\d{4}\b/g) ?? []).map(
    Number,
  ),
]);

const given = new Set<number>();

/** A port in 20000–31999 that no cluster member uses and this process has not handed out before. */
export function privatePort(): number {
  for (;;) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (RESERVED.has(port) || given.has(port)) continue;
    given.add(port);
    return port;
  }
}

/** True when nothing listens on 127.0.0.1:`port` (it can be bound now). */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** Fails, naming `server`, when another process holds one of `ports` (a start would not get it). */
export async function ensureFree(server: string, ...ports: number[]): Promise<void> {
  for (const port of ports)
    if (!(await portFree(port))) throw new Error(`${server}: port ${port} is taken by another process`);
}

/** The last 2,000 characters a server process wrote to stderr so far (for the error of a start that failed). */
export function stderrTail(proc: ChildProcess): () => string {
  let printed = "";
  proc.stderr?.on("data", (d: Buffer) => {
    printed = (printed + d.toString()).slice(-2000);
  });
  return () => printed;
}

/** `privatePort()` until one is free now (another process may hold one: a test file running alongside). */
export async function freePrivatePort(): Promise<number> {
  for (;;) {
    const port = privatePort();
    if (await portFree(port)) return port;
  }
}

/**
 * A Redis Cluster node's port P in 20000–21999 whose bus port P + 10000 (30000–31999) is also
 * clear: both are handed out, so no other private server of this process gets the bus port.
 */
export function clusterNodePort(): number {
  for (;;) {
    const port = LOW + Math.floor(Math.random() * 2000);
    const bus = port + 10_000;
    if (RESERVED.has(port) || RESERVED.has(bus) || given.has(port) || given.has(bus)) continue;
    given.add(port).add(bus);
    return port;
  }
}

/** Whether `port` is reserved (for the test of this module). */
export function reserved(port: number): boolean {
  return RESERVED.has(port);
}
