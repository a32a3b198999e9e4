/**
 * RabbitMQ helpers for the amqp tests: is the shared broker there (fail or skip loudly), raw
 * access to queues, cleanup of everything a run declared, and a private broker node on its
 * own port for the restart tests (the shared one is never restarted).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer, connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import amqplib from "amqplib";
import { afterAll, describe } from "vitest";
import { type AmqpTransport, amqpTransport } from "../../src/runtime/transports/amqp/index.js";
import type { ServerTls } from "../tls-certs.js";
import { type CapturedLog, captureLog } from "./fixtures/log.js";

const run = promisify(execFile);

/** The shared broker every test talks to (never restarted or purged wholesale). */
export const AMQP_URL = process.env.FAN_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

/** True when something accepts TCP connections on host:port within `ms`. */
export function reachable(host: string, port: number, ms = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host, port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(ms, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/**
 * `describe` when the broker answers; otherwise a failing suite under FAN_REQUIRE_BROKERS=1,
 * else a skipped one with a warning that names the suite and why.
 */
export function describeWithBroker(up: boolean, broker: string, suite: string): typeof describe | typeof describe.skip {
  if (up) return describe;
  const why = `${broker} is not reachable`;
  if (process.env.FAN_REQUIRE_BROKERS === "1") {
    throw new Error(`${suite}: ${why} and FAN_REQUIRE_BROKERS=1 (start it with npm run brokers)`);
  }
  console.warn(`SKIPPED ${suite}: ${why} (npm run brokers starts it; FAN_REQUIRE_BROKERS=1 makes this a failure)`);
  return describe.skip;
}

/** Runs a short piece of work on a throwaway connection to `url`. */
export async function withChannel<T>(fn: (ch: amqplib.Channel) => Promise<T>, url = AMQP_URL): Promise<T> {
  const conn = await amqplib.connect(url);
  conn.on("error", () => undefined);
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    return await fn(ch);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Publishes raw bytes to a queue, as a foreign or broken client would. */
export async function publishRaw(
  queue: string,
  body: Buffer,
  props: amqplib.Options.Publish = {},
  url = AMQP_URL,
): Promise<void> {
  const conn = await amqplib.connect(url);
  conn.on("error", () => undefined);
  try {
    const ch = await conn.createConfirmChannel();
    ch.sendToQueue(queue, body, props);
    await ch.waitForConfirms();
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Every message in a queue, read without removing them (they return to the queue). */
export function peekQueue(queue: string, url = AMQP_URL): Promise<amqplib.GetMessage[]> {
  return withChannel(async (ch) => {
    const out: amqplib.GetMessage[] = [];
    for (;;) {
      const m = await ch.get(queue, { noAck: false });
      if (m === false) return out;
      out.push(m);
    }
  }, url);
}

/** Messages ready in a queue (0 when it does not exist). */
export async function queueDepth(queue: string, url = AMQP_URL): Promise<number> {
  try {
    return await withChannel(async (ch) => (await ch.checkQueue(queue)).messageCount, url);
  } catch {
    return 0;
  }
}

async function rabbitmqctl(args: string[], node?: string): Promise<string> {
  const { stdout } = await run("rabbitmqctl", [...(node === undefined ? [] : ["-n", node]), "-q", ...args], {
    timeout: 30_000,
  });
  return stdout;
}

/** Names in a `rabbitmqctl list_*` table that start with `prefix`. */
async function listNames(kind: "list_queues" | "list_exchanges", prefix: string, node?: string): Promise<string[]> {
  // Exclusive queues (an instance's own rpc queue) belong to their connection: only it may
  // delete them, and they go when it closes.
  const out = await rabbitmqctl(kind === "list_queues" ? [kind, "name", "exclusive"] : [kind, "name"], node);
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((cols) => cols[1] !== "true")
    .map((cols) => cols[0] ?? "")
    .filter((n) => n.startsWith(prefix));
}

/** The names of the (non-exclusive) queues whose name starts with `prefix`. */
export function listQueues(prefix: string, node?: string): Promise<string[]> {
  return listNames("list_queues", prefix, node);
}

/** Deletes every queue and exchange whose name starts with `prefix` (a test run's cluster). */
export async function deleteByPrefix(prefix: string, url = AMQP_URL, node?: string): Promise<void> {
  const [queues, exchanges] = await Promise.all([
    listNames("list_queues", prefix, node),
    listNames("list_exchanges", prefix, node),
  ]);
  await withChannel(async (ch) => {
    for (const q of queues) await ch.deleteQueue(q);
    for (const x of exchanges) await ch.deleteExchange(x);
  }, url);
}

/** Test-run names embed the pid of their run: `fan.conf-123...`, `fan.conf-amqp-123-...`, `fan.rec-123-...`. */
const RUN_NAME = /^fan\.(?:conf-(?:amqp-|redis-|nats-)?|rec-|rrec-)(\d+)/;

/** True when a process with this pid runs (so its names may still be in use). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The names among `names` left by test runs whose process is gone. */
export function staleRunNames(names: readonly string[]): string[] {
  return names.filter((n) => {
    const m = RUN_NAME.exec(n);
    return m !== null && !pidAlive(Number(m[1]));
  });
}

/**
 * Deletes queues and exchanges of earlier test runs that are no longer running (a run's own
 * sweep can miss names that a still-closing App declared again just after it).
 */
export async function deleteStaleRuns(url = AMQP_URL, node?: string): Promise<void> {
  const [queues, exchanges] = await Promise.all([
    listNames("list_queues", "fan.", node),
    listNames("list_exchanges", "fan.", node),
  ]);
  const q = staleRunNames(queues);
  const x = staleRunNames(exchanges);
  if (q.length + x.length === 0) return;
  await withChannel(async (ch) => {
    for (const name of q) await ch.deleteQueue(name);
    for (const name of x) await ch.deleteExchange(name);
  }, url);
}

/** Closes the broker side of every connection whose name is `name` (a forced disconnect). */
export async function closeConnectionsNamed(name: string, node?: string): Promise<number> {
  const out = await rabbitmqctl(["list_connections", "pid", "client_properties"], node);
  const pids = out
    .split("\n")
    .filter((l) => l.includes(`{"connection_name","${name}"}`))
    .map((l) => l.split("\t")[0] as string);
  for (const pid of pids) await rabbitmqctl(["close_connection", pid, "test: forced close"], node);
  return pids.length;
}

/** A TCP port nothing listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A RabbitMQ node of our own on a free port, for tests that restart the broker. */
export class PrivateRabbit {
  readonly node: string;
  readonly port: number;
  readonly url: string;
  /** With `tls`: the `amqps://` URL of its TLS listener (the plain one stays, for rabbitmqctl-free checks). */
  readonly tlsUrl: string | undefined;
  readonly #tlsPort: number | undefined;
  readonly #dir: string;
  readonly #env: NodeJS.ProcessEnv;

  /**
   * Starts a node on ports the kernel says are free, trying twice (a boot can fail on a busy
   * machine); with `tls`, a TLS listener too.
   */
  static async launch(timeoutMs = 45_000, tls?: ServerTls): Promise<PrivateRabbit> {
    let last: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      const tlsPort = tls === undefined ? undefined : { port: await freePort(), ...tls };
      const node = new PrivateRabbit(await freePort(), await freePort(), tlsPort);
      try {
        await node.start(timeoutMs);
        return node;
      } catch (e) {
        last = e;
        await node.destroy();
      }
    }
    throw last;
  }

  constructor(port: number, distPort: number, tls?: ServerTls & { readonly port: number }) {
    const rand = Math.random().toString(36).slice(2, 8);
    this.port = port;
    this.node = `fan-test-${rand}@localhost`;
    this.url = `amqp://guest:guest@127.0.0.1:${this.port}`;
    this.#tlsPort = tls?.port;
    this.tlsUrl = tls === undefined ? undefined : `amqps://guest:guest@127.0.0.1:${tls.port}`;
    this.#dir = mkdtempSync(join(tmpdir(), "fan-rabbit-"));
    const ssl =
      tls === undefined
        ? []
        : [
            `listeners.ssl.default = 127.0.0.1:${tls.port}`,
            `ssl_options.cacertfile = ${tls.ca}`,
            `ssl_options.certfile = ${tls.cert}`,
            `ssl_options.keyfile = ${tls.key}`,
            `ssl_options.verify = ${tls.verifyClients ? "verify_peer" : "verify_none"}`,
            `ssl_options.fail_if_no_peer_cert = ${tls.verifyClients}`,
          ];
    writeFileSync(
      join(this.#dir, "rabbitmq.conf"),
      `${[`listeners.tcp.local = 127.0.0.1:${this.port}`, "loopback_users = none", ...ssl].join("\n")}\n`,
    );
    writeFileSync(join(this.#dir, "enabled_plugins"), "[].\n");
    this.#env = {
      ...process.env,
      RABBITMQ_NODENAME: this.node,
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(distPort),
      RABBITMQ_CONFIG_FILE: join(this.#dir, "rabbitmq.conf"),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(this.#dir, "enabled_plugins"),
      RABBITMQ_MNESIA_BASE: join(this.#dir, "mnesia"),
      RABBITMQ_LOG_BASE: join(this.#dir, "log"),
      RABBITMQ_PID_FILE: join(this.#dir, "pid"),
    };
  }

  /** Starts the node (a restart keeps its durable queues and persistent messages). */
  async start(timeoutMs = 60_000): Promise<void> {
    await run(
      "bash",
      [
        "-c",
        `mkdir -p mnesia log && (id rabbitmq >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && chown -R rabbitmq:rabbitmq . || true)`,
      ],
      { cwd: this.#dir },
    );
    await run("rabbitmq-server", ["-detached"], { env: this.#env, cwd: this.#dir, timeout: 30_000 });
    const end = Date.now() + timeoutMs;
    const listening = async (): Promise<boolean> =>
      (await reachable("127.0.0.1", this.port, 500)) &&
      (this.#tlsPort === undefined || (await reachable("127.0.0.1", this.#tlsPort, 500)));
    while (!(await listening())) {
      if (Date.now() > end)
        throw new Error(
          `private RabbitMQ node ${this.node} did not listen on ${this.port} within ${timeoutMs} ms:\n${this.#logTail()}`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The last lines of the node's log (for a failed boot). */
  #logTail(): string {
    try {
      const text = readFileSync(join(this.#dir, "log", `${this.node}.log`), "utf8");
      return text
        .split("\n")
        .filter((l) => !l.includes("boot step"))
        .slice(-15)
        .join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** Stops the node (gracefully: clients see their connections closed by the broker). */
  async stop(): Promise<void> {
    await run("rabbitmqctl", ["-n", this.node, "stop"], { env: this.#env, timeout: 60_000 }).catch(() => undefined);
  }

  /** Kills the node's Erlang VM with SIGKILL (no orderly shutdown), then waits until its port is closed. */
  async kill(): Promise<void> {
    const pid = Number(readFileSync(join(this.#dir, "pid"), "utf8").trim());
    process.kill(pid, "SIGKILL");
    while (await reachable("127.0.0.1", this.port, 200)) await new Promise((r) => setTimeout(r, 20));
  }

  /** Sends `sig` to the node's Erlang VM (SIGSTOP: it stops answering, connections stay open; SIGCONT resumes). */
  signal(sig: NodeJS.Signals): void {
    process.kill(Number(readFileSync(join(this.#dir, "pid"), "utf8").trim()), sig);
  }

  /** Stops the node and removes its files. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** True when a private node can be started here (rabbitmq-server and rabbitmqctl exist). */
export async function canRunPrivateRabbit(): Promise<boolean> {
  try {
    await run("bash", ["-c", "command -v rabbitmq-server && command -v rabbitmqctl"]);
    return true;
  } catch {
    return false;
  }
}

/** The amqplib channels open on a transport's connection. */
export function channelsOf(t: AmqpTransport): amqplib.Channel[] {
  const model = t.connection.model as unknown as { connection: { channels: Array<{ channel: unknown } | null> } };
  return model.connection.channels
    .slice(1)
    .filter((c): c is { channel: amqplib.Channel } => c !== null && c !== undefined)
    .map((c) => c.channel);
}

/**
 * For a suite: makes amqp transports of `cluster` on the shared broker, all closed (and the
 * cluster's queues and exchanges deleted) after the suite.
 */
export function suiteTransports(
  cluster: string,
): (log?: CapturedLog, extra?: Record<string, unknown>, maxPayloadBytes?: number) => AmqpTransport {
  const open: AmqpTransport[] = [];
  afterAll(async () => {
    await Promise.all(open.map((t) => t.close()));
    await deleteByPrefix(`fan.${cluster}`);
  });
  return (log = captureLog(), extra = {}, maxPayloadBytes = 1 << 20) => {
    const t = amqpTransport({ url: AMQP_URL, ...extra })({ cluster, log: log.log, maxPayloadBytes }) as AmqpTransport;
    open.push(t);
    return t;
  };
}
