/**
 * NATS helpers for the nats tests: raw publishes and stream reads on a throwaway connection,
 * cleanup of the streams a run created, and a private nats-server (JetStream on, its own store
 * and port) for the restart tests: the shared one is never restarted.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll } from "vitest";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { ensureFree, privatePort, stderrTail } from "../ports.js";
import type { ServerTls } from "../tls-certs.js";
import { reachable, staleRunNames } from "./amqp-broker.js";

const run = promisify(execFile);

/** The shared server every test talks to. */
export const NATS_URL = process.env.FAN_NATS_URL ?? "nats://127.0.0.1:4222";

/** The nats-server binary (Debian's package installs it in /usr/sbin). */
export const NATS_SERVER = process.env.FAN_NATS_SERVER ?? "/usr/sbin/nats-server";

/** Whether the shared server answers. */
export async function natsUp(url = NATS_URL): Promise<boolean> {
  const u = new URL(url);
  return reachable(u.hostname, Number(u.port || 4222));
}

/** Runs a short piece of work on a throwaway connection. */
export async function withNats<T>(
  fn: (nc: NatsConnection) => Promise<T>,
  url = NATS_URL,
  options: Partial<NodeConnectionOptions> = {},
): Promise<T> {
  const nc = await connect({ ...options, servers: url, maxReconnectAttempts: 0 });
  try {
    return await fn(nc);
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** Publishes raw bytes on a subject (with a reply subject when given), as a broken client would. */
export function publishRaw(subject: string, body: Uint8Array | string, reply?: string, url = NATS_URL): Promise<void> {
  return withNats(async (nc) => {
    nc.publish(subject, body, reply === undefined ? {} : { reply });
    await nc.flush();
  }, url);
}

/** Every message of a stream whose subject is `subject`, as raw bytes. */
export function readStream(stream: string, subject: string, url = NATS_URL): Promise<Uint8Array[]> {
  return withNats(async (nc) => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream).catch(() => undefined);
    if (info === undefined || info.state.messages === 0) return [];
    const ci = await jsm.consumers.add(stream, {
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subject,
      inactive_threshold: 10_000_000_000,
    });
    const c = await jetstream(nc).consumers.get(stream, ci.name);
    const out: Uint8Array[] = [];
    const it = await c.fetch({ max_messages: 1000, expires: 1000 });
    if (ci.num_pending === 0) return out;
    for await (const m of it) {
      out.push(m.data);
      if (m.info.pending === 0) break;
    }
    await c.delete().catch(() => undefined);
    return out;
  }, url);
}

/** Deletes every stream whose name starts with `prefix` (a run's `fan_{cluster}`). */
export function deleteStreams(prefix: string, url = NATS_URL): Promise<number> {
  return withNats(async (nc) => {
    const jsm = await jetstreamManager(nc);
    let n = 0;
    for await (const name of jsm.streams.names()) {
      if (!name.startsWith(prefix)) continue;
      await jsm.streams.delete(name).catch(() => undefined);
      n++;
    }
    return n;
  }, url);
}

/** Deletes streams of earlier test runs that are no longer running (see `staleRunNames`). */
export function deleteStaleStreams(url = NATS_URL): Promise<void> {
  return withNats(async (nc) => {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const name of jsm.streams.names()) if (name.startsWith("fan_")) names.push(name);
    // Stream names are `fan_{cluster}_...`: the run's pid is in the cluster, as in queue names.
    const stale = staleRunNames(names.map((n) => n.replace(/^fan_/, "fan.")));
    for (const s of stale) await jsm.streams.delete(s.replace(/^fan\./, "fan_")).catch(() => undefined);
  }, url);
}

/**
 * A nats-server of our own on a free port, JetStream on, storing in a directory of its own.
 * With `tls` it requires TLS of every client (a `tls {}` block in a config file).
 */
export class PrivateNats {
  readonly port: number;
  readonly url: string;
  readonly #dir: string;
  #proc: ChildProcess | undefined;

  constructor(
    port = privatePort(),
    private readonly tls?: ServerTls,
  ) {
    this.port = port;
    this.url = `nats://127.0.0.1:${port}`;
    this.#dir = mkdtempSync(join(tmpdir(), "fan-nats-"));
  }

  /** The arguments of nats-server: a config file for TLS, which has no command-line flag for the client CA. */
  #args(): string[] {
    const args = ["-js", "-sd", this.#dir, "-a", "127.0.0.1", "-p", String(this.port)];
    const t = this.tls;
    if (t === undefined) return args;
    const conf = join(this.#dir, "tls.conf");
    const q = JSON.stringify;
    writeFileSync(
      conf,
      `tls {\n  cert_file: ${q(t.cert)}\n  key_file: ${q(t.key)}\n  ca_file: ${q(t.ca)}\n  verify: ${t.verifyClients}\n}\n`,
    );
    return ["-c", conf, ...args];
  }

  /** The connect options of a client trusting the server (with the server's own pair as client certificate). */
  clientTls(): Partial<NodeConnectionOptions> {
    const t = this.tls;
    if (t === undefined) return {};
    const read = (f: string): string => readFileSync(f, "utf8");
    return { tls: { ca: read(t.ca), cert: read(t.cert), key: read(t.key) } };
  }

  /**
   * Starts (or restarts, reloading its store) the server. A server that exits before it answers
   * (its port taken, a bad config) fails the start at once, with what it printed.
   */
  async start(timeoutMs = 20_000): Promise<void> {
    await ensureFree("private nats-server", this.port);
    const proc = spawn(NATS_SERVER, this.#args(), { stdio: ["ignore", "ignore", "pipe"] });
    this.#proc = proc;
    const printed = stderrTail(proc);
    const end = Date.now() + timeoutMs;
    while (!(await this.#answers())) {
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(
          `private nats-server on ${this.port} exited (${proc.exitCode ?? proc.signalCode}) before it answered: ${printed()}`,
        );
      if (Date.now() > end)
        throw new Error(`private nats-server did not answer on ${this.port} within ${timeoutMs} ms: ${printed()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async #answers(): Promise<boolean> {
    if (!(await reachable("127.0.0.1", this.port, 300))) return false;
    return withNats(
      async (nc) => {
        await jetstreamManager(nc);
        return true;
      },
      this.url,
      { ...this.clientTls(), timeout: 2000 },
    ).catch(() => false);
  }

  /** Kills the server at once (SIGKILL: JetStream recovers its store on the next start). */
  async kill(): Promise<void> {
    const p = this.#proc;
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
    this.#proc = undefined;
  }

  /** Sends `sig` to the server (SIGSTOP: it stops answering, connections stay open; SIGCONT resumes). */
  signal(sig: NodeJS.Signals): void {
    this.#proc?.kill(sig);
  }

  /** Removes the store (the server must be down): the next start knows no stream. */
  wipe(): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }

  /** Kills the server and removes its files. */
  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** True when nats-server can be started here. */
export async function natsServerAvailable(): Promise<boolean> {
  try {
    await run(NATS_SERVER, ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/** For a suite: a private nats-server started before its tests and destroyed after them. */
export function suiteNats(): PrivateNats {
  const nats = new PrivateNats();
  beforeAll(async () => {
    await nats.start();
  }, 30_000);
  afterAll(async () => {
    await nats.destroy();
  });
  return nats;
}
