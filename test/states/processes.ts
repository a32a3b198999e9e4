/**
 * Owner and watcher processes for the replicated-states tests (test/states/fixtures/node.ts
 * run with tsx), driven over JSON lines, and `until` for conditions polled with a deadline.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll } from "vitest";
import { type EventHub, startEventHub } from "../../src/runtime/transports/zmq/index.js";
import { AMQP_URL } from "../transports/amqp-broker.js";
import { deleteStreams, NATS_URL } from "../transports/nats-server.js";
import { deleteKeys, REDIS_URL } from "../transports/redis-server.js";

// Node itself with tsx's loader (not the tsx CLI, whose child would outlive a SIGKILL of it).
const tsx = fileURLToPath(new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url));
const script = fileURLToPath(new URL("./fixtures/node.ts", import.meta.url));

/** What a process reports about its state. */
export interface Report {
  readonly value: unknown;
  readonly seq: number;
  readonly epoch: number;
  readonly status?: string;
  readonly reason?: string;
  readonly violations?: number;
  readonly patches?: number;
  readonly snapshots?: number;
  /** How many times the watcher's `onStatus` listener was called. */
  readonly statuses?: number;
  readonly active?: boolean;
  /** An owner's: what its `start` hook saw in `value()`. */
  readonly atStart?: { readonly value: unknown };
}

/** One owner or watcher process. */
export class Node {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (r: Record<string, unknown>) => void>();
  #next = 0;
  readonly ready: Promise<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
  stderr = "";
  /** Log lines of the process (FAN_LOG_LEVEL set). */
  readonly logs: string[] = [];

  constructor(role: "owner" | "watcher", env: Record<string, string>) {
    this.#child = spawn(process.execPath, ["--import", tsx, script], {
      env: { ...process.env, ...env, FAN_STATES_ROLE: role },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.#child.stderr?.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    let onReady!: (r: Record<string, unknown>) => void;
    this.ready = new Promise((r) => (onReady = r));
    this.exited = new Promise((r) => this.#child.on("exit", (code) => r(code)));
    void this.exited.then(() => onReady({ ready: false, error: `exited: ${this.stderr.slice(-2000)}` }));
    createInterface({ input: this.#child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if ("ready" in msg) onReady(msg);
      else if (!("id" in msg)) this.logs.push(line);
      const fn = typeof msg.id === "number" ? this.#waiting.get(msg.id) : undefined;
      if (fn !== undefined) {
        this.#waiting.delete(msg.id as number);
        fn(msg);
      }
    });
  }

  /** Starts a process and waits until it is serving or watching; throws with its error otherwise. */
  static async start(role: "owner" | "watcher", env: Record<string, string>): Promise<Node> {
    const n = new Node(role, env);
    const r = await n.ready;
    if (r.ready !== true) {
      n.kill();
      throw new Error(String(r.error));
    }
    return n;
  }

  /** Sends one command; resolves with the answer (rejects with the process's error). */
  send(op: string, args: Record<string, unknown> = {}, ms = 60_000): Promise<Record<string, unknown>> {
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`${op}: no answer in ${ms} ms; stderr: ${this.stderr.slice(-1000)}`)),
        ms,
      );
      this.#waiting.set(id, (r) => {
        clearTimeout(t);
        if (typeof r.error === "string") reject(new Error(r.error));
        else resolve(r);
      });
      this.#child.stdin?.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }

  report(): Promise<Report> {
    return this.send("state") as unknown as Promise<Report>;
  }

  /** SIGKILL: a crash. */
  kill(): void {
    this.#child.kill("SIGKILL");
  }

  /** A graceful stop (falls back to SIGKILL after 5 s). */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    await Promise.race([this.send("stop", {}, 5000).catch(() => undefined), this.exited]);
    const t = setTimeout(() => this.kill(), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

/** Polls `cond` until it holds or `ms` pass (then throws with the last value it saw). */
export async function until<T>(what: string, get: () => Promise<T>, cond: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    last = await get();
    if (cond(last)) return last;
    if (Date.now() > end) {
      const { value: _v, ...rest } = (typeof last === "object" && last !== null ? last : { value: last }) as Record<
        string,
        unknown
      >;
      throw new Error(`${what}: not met in ${ms} ms; last: ${JSON.stringify(rest)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One transport setup the state suites run over: the `transports` option of the processes' Apps. */
export interface TransportCase {
  readonly name: string;
  readonly transports: () => object;
}

/**
 * The broker transports the state suites run over (redis, amqp, nats, zmq): starts a zmq event
 * hub for the file (beforeAll) and closes it after (afterAll), so call it at a file's top level.
 */
export function brokerCases(): TransportCase[] {
  let hub: EventHub | undefined;
  beforeAll(async () => {
    hub = await startEventHub();
  });
  afterAll(async () => {
    await hub?.close();
  });
  const events = () => {
    if (hub === undefined) throw new Error("the zmq hub starts in beforeAll");
    return { publish: hub.publish, subscribe: hub.subscribe };
  };
  return [
    { name: "redis", transports: () => ({ redis: { url: REDIS_URL } }) },
    { name: "amqp", transports: () => ({ amqp: { url: AMQP_URL } }) },
    { name: "nats", transports: () => ({ nats: { url: NATS_URL } }) },
    { name: "zmq", transports: () => ({ zmq: { events: events() } }) },
  ];
}

/** `brokerCases()` and http: snapshots over http (the first transport), updates relayed through redis. */
export function casesWithHttp(): TransportCase[] {
  return [...brokerCases(), { name: "http", transports: () => ({ http: {}, redis: { url: REDIS_URL } }) }];
}

/**
 * Starts nodes of one transport case in `cluster` (their environment plus `extra`), keeping
 * them in `nodes` for the file's afterEach; `forget` deletes what the cluster left on the broker.
 */
export function clusterNodes(
  cluster: string,
  c: TransportCase,
  nodes: Node[],
  extra: Record<string, string> = {},
): {
  start(role: "owner" | "watcher", more?: Record<string, string>): Promise<Node>;
  forget(): Promise<void>;
} {
  return {
    async start(role, more = {}) {
      const n = await Node.start(role, {
        FAN_STATES_CLUSTER: cluster,
        FAN_STATES_TRANSPORTS: JSON.stringify(c.transports()),
        ...extra,
        ...more,
      });
      nodes.push(n);
      return n;
    },
    async forget() {
      await deleteKeys(`fan.${cluster}*`).catch(() => undefined);
      if (c.name === "nats") await deleteStreams(`fan_${cluster}`).catch(() => undefined);
    },
  };
}

/** Resolves with the watcher's report once it is live on the owner's epoch and sequence. */
export function converged(w: Node, o: Node, what: string): Promise<Report> {
  return o.report().then((want) =>
    until(
      what,
      () => w.report(),
      (r) => r.status === "live" && r.epoch === want.epoch && r.seq === want.seq,
    ),
  );
}
