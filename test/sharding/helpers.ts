/** Child processes serving `test.shards.Store` on etcd, for the sharding and versioning suites. */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import type { Registry, WatchEvent } from "../../src/runtime/discovery/registry.js";
import { type App, createApp, type ShardChange } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { SHARED_ETCD, until } from "../discovery/helpers.js";
import { deleteByPrefix } from "../transports/amqp-broker.js";
import { deleteKeys } from "../transports/redis-server.js";
import { Store } from "./fixtures/generated/test/shards.js";
import { StoreImpl } from "./fixtures/store.js";
import { assignShards } from "../../src/runtime/call/shards.js";
import type { TransportName } from "../../src/runtime/descriptor.js";

const script = fileURLToPath(new URL("./fixtures/serve-store.ts", import.meta.url));

/** One serving child. */
export interface Child {
  readonly instanceId: string;
  readonly proc: ChildProcess;
  readonly stderr: () => string;
  /** Everything it printed so far. */
  readonly stdout: () => string;
}

/** Starts a child and resolves once it printed `ready` (rejects with its stderr when it exits first). */
export function serveStore(args: {
  etcd: string;
  cluster: string;
  instanceId: string;
  transports: readonly string[];
  version?: string;
  leaseTtlMs?: number;
  shards?: readonly number[];
  /** Added to the child's environment (e.g. `FAN_TEST_LOAD_MS`: serve-store.ts). */
  env?: Record<string, string>;
}): Promise<Child> {
  // node --import tsx, not the tsx CLI: the CLI runs node as a child of its own, which a
  // SIGKILL of the CLI would leave running.
  const argv = [
    "--import",
    "tsx",
    script,
    args.etcd,
    args.cluster,
    args.instanceId,
    args.transports.join(","),
    args.version ?? "",
    String(args.leaseTtlMs ?? 2000),
    (args.shards ?? []).join(","),
  ];
  const proc = spawn(process.execPath, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    ...(args.env === undefined ? {} : { env: { ...process.env, ...args.env } }),
  });
  let err = "";
  proc.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${args.instanceId} not ready in 60 s: ${err}`)), 60_000);
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("ready\n")) {
        clearTimeout(timer);
        resolve({ instanceId: args.instanceId, proc, stderr: () => err, stdout: () => out });
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.instanceId} exited with ${code}: ${err}`));
    });
  });
}

/** SIGKILLs a child and waits for it to be gone. */
export function kill(c: Child): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    c.proc.once("exit", () => resolve());
    c.proc.kill("SIGKILL");
  });
}

/** The ownership changes a child's `onShards` printed. */
export function changes(c: Child): ShardChange[] {
  return c
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("shards "))
    .map((l) => JSON.parse(l.slice("shards ".length)) as ShardChange);
}

/**
 * A registry whose watch events arrive `lagMs` late: a client whose view of discovery is stale.
 * `closeInner: false` leaves `inner` open on close (a registry the test shares between Apps).
 */
export function lagging(inner: Registry, lagMs: number, closeInner = true): Registry {
  return {
    get: (k) => inner.get(k),
    put: (k, v, o) => inner.put(k, v, o),
    delete: (k) => inner.delete(k),
    list: (p) => inner.list(p),
    watch: (p, rev, fn) => inner.watch(p, rev, (ev: WatchEvent) => void setTimeout(() => fn(ev), lagMs)),
    grantLease: (ttl) => inner.grantLease(ttl),
    close: () => (closeInner ? inner.close() : Promise.resolve()),
  };
}

/**
 * Two started client Apps on the shared etcd, `app` and `stale` (its discovery view runs 700 ms
 * behind; a redirect waits up to 1 s for it), once both see `count` Store instances.
 */
export async function clientApps(
  cluster: string,
  transports: Record<string, object>,
  count: number,
): Promise<{ app: App; stale: App }> {
  const opts = { cluster, logger: silentLogger(), transports };
  const app = createApp({ ...opts, discovery: `etcd://${SHARED_ETCD}` });
  const stale = createApp({ ...opts, discovery: lagging(new EtcdRegistry(SHARED_ETCD), 700) });
  await Promise.all([app.start(), stale.start()]);
  for (const a of [app, stale]) {
    const set = await a.watch(Store.descriptor.name);
    await until(`${count} Store instances`, () => set.instances().length === count, 20_000);
  }
  return { app, stale };
}

/** Kills the children, stops the Apps and deletes the cluster's amqp queues and redis keys. */
export async function tearDown(
  cluster: string,
  children: readonly Child[],
  apps: readonly (App | undefined)[],
): Promise<void> {
  await Promise.all(children.map(kill));
  await Promise.allSettled(apps.map((a) => a?.stop()));
  await Promise.allSettled([deleteKeys(`fan.${cluster}*`), deleteByPrefix(`fan.${cluster}`)]);
}

/** Which of A and B owns each of Store's 16 shards while both run (A owns all once B stops). */
export const OWNERS_OF_A_AND_B = assignShards(
  ["A", "B"].map((instanceId) => ({ instanceId, shards: [] })),
  16,
);

/**
 * Servers A (`impl`) and B of Store and a client App, all of `opts` (pushed on `apps` to stop),
 * each server with `serve` besides its instance id; once both own their parts B stops, and A's
 * `onShards` gaining B's shards runs until `release` is called (or throws at `fail`). Resolves
 * once the client sees A alone and that hook runs.
 */
export async function aGainingB(
  opts: Parameters<typeof createApp>[0],
  impl: StoreImpl,
  apps: App[],
  serve: { readonly transports?: TransportName[]; readonly maxInFlight?: number } = {},
): Promise<{ a: App; caller: App; release: () => void; fail: (e: Error) => void }> {
  let release = (): void => undefined;
  let reject = (_: Error): void => undefined;
  let gate: Promise<void> | undefined;
  const onShards = impl.onShards.bind(impl);
  impl.onShards = (change) => {
    onShards(change);
    return gate;
  };
  const a = createApp(opts).serve(Store, impl, { instanceId: "A", ...serve });
  const b = createApp(opts).serve(Store, new StoreImpl(), { instanceId: "B", ...serve });
  const caller = createApp(opts);
  apps.push(a, b, caller);
  await Promise.all([a.start(), b.start(), caller.start()]);
  const set = await caller.watch(Store.descriptor.name);
  const mine = OWNERS_OF_A_AND_B.filter((o) => o === "A").length;
  await until("A and B owning their parts", () => impl.changes.at(-1)?.owned.length === mine);
  gate = new Promise((r, j) => {
    release = r;
    reject = j;
  });
  try {
    await b.stop();
    await until("the client to see A alone", () => set.instances().length === 1);
    await until("A's onShards gaining B's shards", () => impl.changes.at(-1)?.owned.length === 16);
  } catch (e) {
    release();
    throw e;
  }
  // `fail`: the hook throws; called again (1 s later) it resolves at once.
  const fail = (e: Error): void => {
    gate = undefined;
    reject(e);
  };
  return { a, caller, release: () => release(), fail };
}
