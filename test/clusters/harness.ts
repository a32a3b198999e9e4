/**
 * What the cluster tests share: whether to run (only with FAN_REQUIRE_CLUSTERS=1, which also
 * makes a cluster that does not answer a failure; skipped with a reason otherwise), killing and restarting one member through
 * the script, and steady traffic (rpc + numbered pushes through the generated client) that
 * measures what a member's death costs: failed calls, time to recover, pushes lost.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe } from "vitest";
import { reachable } from "../transports/amqp-broker.js";
import type { ConformanceClient } from "../transports/fixtures/generated/fan/conformance.js";

const run = promisify(execFile);
const script = fileURLToPath(new URL("../../scripts/clusters.sh", import.meta.url));

export const PORTS = {
  etcd: [23791, 23792, 23793],
  redisCluster: [27001, 27002, 27003, 27004, 27005, 27006],
  sentinelData: [27101, 27102],
  sentinels: [27111, 27112, 27113],
  rabbit: [25701, 25702, 25703],
  nats: [24221, 24222, 24223],
} as const;

/** The etcd cluster as a discovery spec. */
export const ETCD_CLUSTER = `etcd://${PORTS.etcd.map((p) => `127.0.0.1:${p}`).join(",")}`;

async function allUp(ports: readonly number[]): Promise<boolean> {
  const ok = await Promise.all(ports.map((p) => reachable("127.0.0.1", p)));
  return ok.every(Boolean);
}

/**
 * `describe` under FAN_REQUIRE_CLUSTERS=1 when every port answers (an error naming what is
 * down when one does not); otherwise, or when `missing` says why not, a skip with a reason.
 */
export async function describeCluster(
  what: string,
  ports: readonly number[],
  missing?: string,
): Promise<typeof describe | typeof describe.skip> {
  if (missing !== undefined) {
    console.warn(`SKIPPED ${what}: ${missing}`);
    return describe.skip;
  }
  // These tests kill cluster members: they run only when asked, never in a plain `npm test`.
  if (process.env.FAN_REQUIRE_CLUSTERS !== "1") {
    console.warn(
      `SKIPPED ${what}: the cluster tests kill members of the clusters of scripts/clusters.sh; run them with bash scripts/clusters.sh up && FAN_REQUIRE_CLUSTERS=1 npx vitest run test/clusters`,
    );
    return describe.skip;
  }
  if (await allUp(ports)) return describe;
  throw new Error(
    `${what} is not running on 127.0.0.1:${ports.join(",")} and FAN_REQUIRE_CLUSTERS=1 (bash scripts/clusters.sh up starts it)`,
  );
}

/** Runs `scripts/clusters.sh ...args`; resolves with its stdout. */
export async function clusters(...args: string[]): Promise<string> {
  const { stdout } = await run("bash", [script, ...args], { timeout: 300_000 });
  return stdout;
}

/** Runs a command, resolving with stdout. */
export async function sh(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run(cmd, [...args], { timeout: timeoutMs });
  return stdout;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns true, failing after `ms`. */
export async function until(f: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await f()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(200);
  }
}

interface Attempt {
  readonly start: number;
  readonly end: number;
  readonly ok: boolean;
  readonly code?: string;
  readonly text?: string | undefined;
}

/** What a kill cost, as measured by `Traffic`. */
export interface Cost {
  readonly calls: number;
  readonly failedCalls: number;
  readonly failedCodes: Record<string, number>;
  /** ms from the kill until every call succeeds again and is no slower than 2 s. */
  readonly recoveryMs: number;
  readonly slowestCallMs: number;
  readonly pushes: number;
  readonly failedPushes: number;
  readonly ackedPushes: number;
  /** Acknowledged pushes the server never handled. */
  readonly lostPushes: readonly string[];
  /** Pushes handled more than once (at-least-once redeliveries). */
  readonly duplicatePushes: number;
}

/** Steady rpc and push traffic from one client, each loop sequential, until `stop`. */
export class Traffic {
  readonly calls: Attempt[] = [];
  readonly pushes: Array<Attempt & { readonly id: string }> = [];
  #running = true;
  readonly #loops: Promise<void>[];

  constructor(
    client: ConformanceClient,
    readonly tag: string,
    callEveryMs = 25,
    pushEveryMs = 50,
    timeoutMs = 10_000,
  ) {
    let n = 0;
    let p = 0;
    const rpc = async (): Promise<void> => {
      while (this.#running) {
        const start = Date.now();
        try {
          const r = await client.echo({ n: ++n }, { timeout: timeoutMs });
          this.calls.push({ start, end: Date.now(), ok: true, text: r.text });
        } catch (e) {
          this.calls.push({ start, end: Date.now(), ok: false, code: (e as { code?: string }).code ?? String(e) });
        }
        await sleep(callEveryMs);
      }
    };
    const push = async (): Promise<void> => {
      while (this.#running) {
        const id = `${tag}-${++p}`;
        const start = Date.now();
        try {
          await client.record({ id }, { timeout: timeoutMs });
          this.pushes.push({ id, start, end: Date.now(), ok: true });
        } catch (e) {
          this.pushes.push({ id, start, end: Date.now(), ok: false, code: (e as { code?: string }).code ?? String(e) });
        }
        await sleep(pushEveryMs);
      }
    };
    this.#loops = [rpc(), push()];
  }

  /** Successful calls so far. */
  okCalls(): number {
    return this.calls.filter((c) => c.ok).length;
  }

  /** Resolves once `count` more calls succeeded after now. */
  async flowing(count: number, ms: number, what: string): Promise<void> {
    const from = Date.now();
    await until(() => this.calls.filter((c) => c.ok && c.start >= from).length >= count, ms, what).catch((e) => {
      throw new Error(`${(e as Error).message}; ${this.summary(from)}`);
    });
  }

  /** The calls and pushes since `from`, for an error message. */
  summary(from: number): string {
    const since = (xs: readonly Attempt[]) => xs.filter((x) => x.end >= from);
    const codes = (xs: readonly Attempt[]) => [...new Set(xs.filter((x) => !x.ok).map((x) => x.code))].join(",");
    const calls = since(this.calls);
    const pushes = since(this.pushes);
    return `since then ${calls.filter((c) => c.ok).length}/${calls.length} calls ok (failed: ${codes(calls)}), ${pushes.filter((p) => p.ok).length}/${pushes.length} pushes ok (failed: ${codes(pushes)})`;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }

  /** What happened from `killedAt` on, given the push ids the server handled (with repeats). */
  cost(killedAt: number, handled: readonly string[]): Cost {
    const failedCodes: Record<string, number> = {};
    for (const c of [...this.calls, ...this.pushes]) {
      if (!c.ok) failedCodes[c.code ?? "?"] = (failedCodes[c.code ?? "?"] ?? 0) + 1;
    }
    // Recovery: the end of the last call or push that failed or took over 2 s, after the kill.
    const bad = [...this.calls, ...this.pushes].filter((c) => c.end >= killedAt && (!c.ok || c.end - c.start > 2000));
    const recoveredAt = bad.length === 0 ? killedAt : Math.max(...bad.map((c) => c.end));
    const seen = new Map<string, number>();
    for (const id of handled) seen.set(id, (seen.get(id) ?? 0) + 1);
    const acked = this.pushes.filter((p) => p.ok);
    return {
      calls: this.calls.length,
      failedCalls: this.calls.filter((c) => !c.ok).length,
      failedCodes,
      recoveryMs: recoveredAt - killedAt,
      slowestCallMs: Math.max(0, ...this.calls.map((c) => c.end - c.start)),
      pushes: this.pushes.length,
      failedPushes: this.pushes.filter((p) => !p.ok).length,
      ackedPushes: acked.length,
      lostPushes: acked.filter((p) => !seen.has(p.id)).map((p) => p.id),
      duplicatePushes: [...seen.values()].filter((v) => v > 1).length,
    };
  }
}

/** One line for the CI log (and docs/clusters.md). */
export function report(what: string, cost: Cost, extra: Record<string, unknown> = {}): void {
  const { lostPushes, ...rest } = cost;
  console.log(
    `CLUSTER ${what}: ${JSON.stringify({ ...rest, lostPushes: lostPushes.length, lostIds: lostPushes.slice(0, 10), ...extra })}`,
  );
}
