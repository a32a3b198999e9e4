/**
 * Redis helpers for the redis tests: raw access to keys and streams, cleanup of everything a
 * run created, and a private redis-server on its own port for the restart tests (the shared
 * one is never restarted or flushed).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis, type RedisOptions } from "ioredis";
import { clusterNodePort, ensureFree, privatePort } from "../ports.js";
import type { ServerTls } from "../tls-certs.js";
import { reachable, staleRunNames } from "./amqp-broker.js";

const run = promisify(execFile);

/** The shared server every test talks to. */
export const REDIS_URL = process.env.FAN_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Runs a short piece of work on a throwaway connection. */
export async function withRedis<T>(
  fn: (r: Redis) => Promise<T>,
  url = REDIS_URL,
  options: RedisOptions = {},
): Promise<T> {
  const r = new Redis(url, { ...options, maxRetriesPerRequest: 1, lazyConnect: true });
  r.on("error", () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** Deletes every key matching `pattern` (a test run's cluster prefix, e.g. `fan.conf-123*`). */
export function deleteKeys(pattern: string, url = REDIS_URL): Promise<number> {
  return withRedis(async (r) => {
    let cursor = "0";
    let n = 0;
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) n += await r.del(...keys);
    } while (cursor !== "0");
    return n;
  }, url);
}

/** Deletes keys of earlier test runs that are no longer running (see `staleRunNames`). */
export async function deleteStaleRunKeys(url = REDIS_URL): Promise<void> {
  const keys = await withRedis(async (r) => {
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await r.scan(cursor, "MATCH", "fan.*", "COUNT", 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== "0");
    return found;
  }, url);
  const stale = staleRunNames(keys);
  if (stale.length > 0) await withRedis((r) => r.del(...stale), url);
}

/** Every entry of a stream as `[id, field → value]`. */
export function readStream(key: string, url = REDIS_URL): Promise<[string, Record<string, string>][]> {
  return withRedis(async (r) => {
    const rows = await r.xrange(key, "-", "+");
    return rows.map(([id, flat]) => {
      const o: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i] as string] = flat[i + 1] as string;
      return [id, o];
    });
  }, url);
}

/**
 * A redis-server of our own on a free port, with an append-only file fsynced on every write.
 * With `tls` it listens on that port with TLS only (`rediss://`), plain connections refused.
 */
export class PrivateRedis {
  readonly port: number;
  readonly url: string;
  readonly #dir: string;

  /** `extra`: more redis-server arguments (e.g. `--cluster-enabled yes`). */
  constructor(
    private readonly extra: readonly string[] = [],
    port = privatePort(),
    private readonly tls?: ServerTls,
  ) {
    this.port = port;
    this.url = `${tls === undefined ? "redis" : "rediss"}://127.0.0.1:${this.port}`;
    this.#dir = mkdtempSync(join(tmpdir(), "fan-redis-"));
  }

  /** The redis-server arguments of the listening port. */
  #listen(): string[] {
    const t = this.tls;
    if (t === undefined) return ["--port", String(this.port)];
    return [
      "--port",
      "0",
      "--tls-port",
      String(this.port),
      "--tls-cert-file",
      t.cert,
      "--tls-key-file",
      t.key,
      "--tls-ca-cert-file",
      t.ca,
      "--tls-auth-clients",
      t.verifyClients ? "yes" : "no",
    ];
  }

  /** Starts (or restarts, reloading its append-only file) the server. */
  async start(timeoutMs = 20_000): Promise<void> {
    // A cluster node also listens on its bus port, port + 10000.
    const ports = this.extra.includes("--cluster-enabled") ? [this.port, this.port + 10_000] : [this.port];
    await ensureFree("private redis-server", ...ports);
    const args = [
      ...this.#listen(),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "yes",
      "--appendfsync",
      "always",
      ...this.extra,
    ];
    await run("redis-server", [
      ...args,
      "--daemonize",
      "yes",
      "--dir",
      this.#dir,
      "--pidfile",
      join(this.#dir, "pid"),
      "--logfile",
      join(this.#dir, "log"),
    ]);
    const end = Date.now() + timeoutMs;
    while (!(await this.#answers())) {
      // Daemonized: a server that exited (it could not listen: its log says "aborting", and it
      // took its pid file with it) fails the start at once.
      const exited = !this.#running() || this.#logTail().includes(", aborting.");
      if (exited || Date.now() > end) {
        const why = exited ? "exited before it answered" : `did not answer within ${timeoutMs} ms`;
        throw new Error(`private redis-server on ${this.port} ${why}: ${this.#logTail()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The daemon's process id, from its pid file (undefined until it is written, and once it is removed). */
  #pid(): number | undefined {
    try {
      return Number(readFileSync(join(this.#dir, "pid"), "utf8").trim());
    } catch {
      return undefined;
    }
  }

  /** False once the daemon of our pid file is gone (true while no pid file is written yet). */
  #running(): boolean {
    const pid = this.#pid();
    if (pid === undefined) return true;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /** The end of the server's log (why it stopped: "Failed listening on port ...", for one). */
  #logTail(): string {
    try {
      return readFileSync(join(this.#dir, "log"), "utf8").slice(-600);
    } catch {
      return "(no log written)";
    }
  }

  /** True when the server answering on the port is this one (its process id is in our pid file), not another that holds the port. */
  async #answers(): Promise<boolean> {
    if (!(await reachable("127.0.0.1", this.port, 300))) return false;
    const pid = this.#pid();
    if (pid === undefined) return false;
    const t = this.tls;
    const tls =
      t === undefined ? {} : { tls: { ca: readFileSync(t.ca), cert: readFileSync(t.cert), key: readFileSync(t.key) } };
    return withRedis(
      async (r) => (await r.ping()) === "PONG" && (await r.info("server")).includes(`process_id:${pid}\r\n`),
      this.url,
      tls,
    ).catch(() => false);
  }

  /** Kills the server at once (SIGKILL: no shutdown save; the append-only file has every acknowledged write). */
  async kill(): Promise<void> {
    const pid = this.#pid();
    if (pid === undefined) return;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      return;
    }
    while (await reachable("127.0.0.1", this.port, 200)) await new Promise((r) => setTimeout(r, 20));
    rmSync(join(this.#dir, "pid"), { force: true });
  }

  /** Sends `sig` to the server (SIGSTOP: it stops answering, connections stay open; SIGCONT resumes). */
  signal(sig: NodeJS.Signals): void {
    const pid = this.#pid();
    if (pid === undefined) throw new Error(`private redis-server on ${this.port} is not running`);
    process.kill(pid, sig);
  }

  /** Kills the server and removes its files. */
  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** True when redis-server can be started here. */
export async function redisServerAvailable(): Promise<boolean> {
  try {
    await run("redis-server", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/** A Sentinel (redis-server --sentinel) watching one master under `name`. */
export class PrivateSentinel {
  readonly port = privatePort();
  readonly #dir = mkdtempSync(join(tmpdir(), "fan-sentinel-"));

  constructor(
    readonly name: string,
    private readonly masterPort: number,
  ) {}

  /** Starts the sentinel and waits until it knows the master. */
  async start(timeoutMs = 20_000): Promise<void> {
    await ensureFree("private sentinel", this.port);
    const conf = join(this.#dir, "sentinel.conf");
    const lines = [
      `port ${this.port}`,
      "bind 127.0.0.1",
      "daemonize yes",
      `pidfile ${join(this.#dir, "pid")}`,
      `logfile ${join(this.#dir, "log")}`,
      `dir ${this.#dir}`,
      `sentinel monitor ${this.name} 127.0.0.1 ${this.masterPort} 1`,
    ];
    writeFileSync(conf, `${lines.join("\n")}\n`);
    await run("redis-server", [conf, "--sentinel"]);
    const end = Date.now() + timeoutMs;
    const url = `redis://127.0.0.1:${this.port}`;
    for (;;) {
      const master = await withRedis((r) => r.call("SENTINEL", "get-master-addr-by-name", this.name), url).catch(
        () => null,
      );
      if (Array.isArray(master)) return;
      if (Date.now() > end)
        throw new Error(`sentinel on ${this.port} did not report ${this.name} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops the sentinel and removes its files. */
  async destroy(): Promise<void> {
    try {
      process.kill(Number(readFileSync(join(this.#dir, "pid"), "utf8").trim()), "SIGKILL");
    } catch {
      // not running
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** Three redis-server nodes joined into a Redis Cluster (no replicas). */
export class PrivateCluster {
  readonly nodes: PrivateRedis[];

  constructor() {
    this.nodes = [0, 1, 2].map(
      () =>
        new PrivateRedis(
          ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--appendonly", "no"],
          clusterNodePort(),
        ),
    );
  }

  /** Starts the nodes, assigns the slots and waits until every node reports `cluster_state:ok`. */
  async start(timeoutMs = 30_000): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
    await run(
      "redis-cli",
      [
        "--cluster",
        "create",
        ...this.nodes.map((n) => `127.0.0.1:${n.port}`),
        "--cluster-replicas",
        "0",
        "--cluster-yes",
      ],
      { timeout: timeoutMs },
    );
    const end = Date.now() + timeoutMs;
    for (const n of this.nodes) {
      while (
        !(await withRedis((r) => r.call("CLUSTER", "INFO"), n.url).then(
          (i) => String(i).includes("cluster_state:ok"),
          () => false,
        ))
      ) {
        if (Date.now() > end) throw new Error("redis cluster did not become ok");
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Stops every node and removes its files. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.destroy()));
  }
}
