/**
 * Shared helpers of the discovery tests: the two registry backends the same suites run on,
 * the etcd availability rule (fail under FAN_REQUIRE_BROKERS=1, skip loudly otherwise), a
 * private etcd server for restart tests, and polling.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "vitest";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { MemoryRegistry } from "../../src/runtime/discovery/memory.js";
import type { Registry } from "../../src/runtime/discovery/registry.js";
import { ensureFree, privatePort, stderrTail } from "../ports.js";
import type { ServerTls } from "../tls-certs.js";

/** The shared etcd every engineer's tests use (`$FAN_ETCD` overrides); never stopped by tests. */
export const SHARED_ETCD = process.env.FAN_ETCD ?? "127.0.0.1:2379";
const [sharedHost, sharedPort] = SHARED_ETCD.split(":") as [string, string];

/** True when something answers on host:port within `timeoutMs`. */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/** Whether the shared etcd answers. */
export const etcdUp = await portOpen(sharedHost, Number(sharedPort));

/** `describe` for suites that need etcd: fails under FAN_REQUIRE_BROKERS=1 when it is down, else skips loudly. */
export function describeEtcd(name: string, fn: () => void): void {
  if (etcdUp) {
    describe(name, fn);
    return;
  }
  const why = `etcd is not reachable on ${SHARED_ETCD} (start it with scripts/brokers.sh)`;
  if (process.env.FAN_REQUIRE_BROKERS === "1") {
    describe(name, () => {
      it("needs etcd", () => {
        throw new Error(`${name}: ${why} and FAN_REQUIRE_BROKERS=1`);
      });
    });
    return;
  }
  console.warn(`SKIPPING "${name}": ${why}; set FAN_REQUIRE_BROKERS=1 to fail instead`);
  describe.skip(name, fn);
}

/** A registry backend under test: `client()` opens another client of the same store (another "process"). */
export interface Backend {
  readonly name: "memory" | "etcd";
  client(): Registry;
  /** Revokes a lease from outside its owner (a wipe, an operator). */
  revoke(r: Registry, leaseId: string): Promise<void>;
  /** Compacts history up to now. */
  compact(r: Registry): Promise<void>;
  /** Closes every client opened. */
  close(): Promise<void>;
}

/** A fresh memory backend: every client is the same store. */
export function memoryBackend(): Backend {
  const store = new MemoryRegistry();
  return {
    name: "memory",
    client: () => store,
    revoke: (_r, id) => store.revokeLeaseById(id),
    compact: async () => store.compact(),
    close: () => store.close(),
  };
}

/** An etcd backend on `endpoints`: every client is its own connection. */
export function etcdBackend(endpoints = SHARED_ETCD): Backend {
  const clients: EtcdRegistry[] = [];
  return {
    name: "etcd",
    client: () => {
      const c = new EtcdRegistry(endpoints);
      clients.push(c);
      return c;
    },
    revoke: (r, id) => (r as EtcdRegistry).revokeLeaseById(id),
    compact: (r) => (r as EtcdRegistry).compact(),
    close: async () => {
      await Promise.allSettled(clients.splice(0).map((c) => c.close()));
    },
  };
}

/** The backends every shared suite runs on; etcd only when it answers (see `describeEtcd`). */
export function eachBackend(suite: string, fn: (make: () => Backend) => void): void {
  describe(`${suite} [memory]`, () => fn(memoryBackend));
  describeEtcd(`${suite} [etcd]`, () => fn(() => etcdBackend()));
}

/** A cluster name no other test uses. */
export function randomCluster(): string {
  return `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

/** Polls `fn` until it returns true; rejects naming `what` after `timeoutMs`. */
export async function until(
  what: string,
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  everyMs = 20,
): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A private etcd server (its own ports and data dir) that tests may stop and restart. With
 * `tls` its clients connect over https (`endpoint` is then `https://127.0.0.1:port`).
 */
export class PrivateEtcd {
  readonly dir = mkdtempSync(join(tmpdir(), "fan-etcd-"));
  private proc: ChildProcess | undefined;

  constructor(
    readonly clientPort = privatePort(),
    readonly peerPort = privatePort(),
    private readonly tls?: ServerTls,
  ) {}

  /** `127.0.0.1:port`, or `https://127.0.0.1:port` with TLS (append to `etcd://`). */
  get endpoint(): string {
    return `${this.tls === undefined ? "" : "https://"}127.0.0.1:${this.clientPort}`;
  }

  /** etcd's flags of TLS to its clients. */
  private tlsArgs(): string[] {
    const t = this.tls;
    if (t === undefined) return [];
    const args = ["--cert-file", t.cert, "--key-file", t.key, "--trusted-ca-file", t.ca];
    return t.verifyClients ? [...args, "--client-cert-auth"] : args;
  }

  /** Starts (or restarts, keeping the data dir) and waits until it answers. */
  async start(): Promise<void> {
    const url = (p: number): string => `http://127.0.0.1:${p}`;
    const client = `${this.tls === undefined ? "http" : "https"}://127.0.0.1:${this.clientPort}`;
    await ensureFree("private etcd", this.clientPort, this.peerPort);
    this.proc = spawn(
      "/usr/bin/etcd",
      [
        "--name",
        "fan-test",
        "--data-dir",
        join(this.dir, "data"),
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        ...this.tlsArgs(),
        "--listen-peer-urls",
        url(this.peerPort),
        "--initial-advertise-peer-urls",
        url(this.peerPort),
        "--initial-cluster",
        `fan-test=${url(this.peerPort)}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    // etcd logs to stderr; the tail says why, when it exits before it listens (a port taken).
    const proc = this.proc;
    const printed = stderrTail(proc);
    await until(
      `private etcd on ${this.endpoint}`,
      () => {
        if (proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(
            `private etcd on ${this.endpoint} exited (${proc.exitCode ?? proc.signalCode}) before it listened: ${printed()}`,
          );
        return portOpen("127.0.0.1", this.clientPort, 200);
      },
      15_000,
      100,
    );
  }

  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }

  /** Stops and deletes the data dir. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
