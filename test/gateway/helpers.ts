/**
 * What the gateway tests share: the Till service in a child process on one transport
 * (fixtures/service.ts), the gateway itself (in this process through `fanc gateway`'s `run`,
 * or as a `bin/fanc.mjs gateway` child, `spawnGateway`), and a small Server-Sent Events reader over fetch.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../../src/cli/gateway.js";
import { type CapturedChild, captureIo, spawnCaptured, type TempDir, until } from "../cli/helpers.js";
import { SHARED_ETCD } from "../discovery/helpers.js";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const IDL = "test/gateway/fixtures/idl";
const TSX = join(repo, "node_modules/.bin/tsx");

/** Starts Till on `transports` (comma-separated) in `cluster`; resolves once it is registered. */
export async function startService(
  transports: string,
  cluster: string,
  env: Record<string, string> = {},
): Promise<CapturedChild> {
  const child = spawnCaptured(TSX, [join(repo, "test/gateway/fixtures/service.ts")], {
    FAN_GW_TRANSPORTS: transports,
    FAN_GW_CLUSTER: cluster,
    FAN_ETCD: SHARED_ETCD,
    ...env,
  });
  await until("the Till service is ready", () => /"event":"(ready|start failed)"/.test(child.stdout()), 120_000);
  if (!child.stdout().includes('"event":"ready"'))
    throw new Error(`Till did not start: ${child.stdout()}${child.stderr()}`);
  return child;
}

/** The IDL of Vault and Absent (`@auth` methods, failures of every kind). */
export const VAULT_IDL = "test/gateway/fixtures/vault-idl";

/** Starts Vault (fixtures/vault-service.ts) in `cluster`; resolves once it is registered. */
export async function startVault(cluster: string, transports = "http"): Promise<CapturedChild> {
  const vault = spawnCaptured(
    join(repo, "node_modules/.bin/tsx"),
    [join(repo, "test/gateway/fixtures/vault-service.ts")],
    {
      FAN_GW_CLUSTER: cluster,
      FAN_GW_TRANSPORTS: transports,
      FAN_ETCD: SHARED_ETCD,
    },
  );
  await until("Vault is ready", () => /"event":"(ready|start failed)"/.test(vault.stdout()), 120_000);
  if (!vault.stdout().includes('"event":"ready"'))
    throw new Error(`Vault did not start: ${vault.stdout()}${vault.stderr()}`);
  return vault;
}

/**
 * Board (fixtures/board-service.ts) in a child process on http and redis in `cluster`, serving
 * the IDL `idl` (written to `dir`); resolves once it is registered.
 */
export async function startBoard(cluster: string, dir: TempDir, idl: string): Promise<CapturedChild> {
  dir.write("board.fan", idl);
  const board = spawnCaptured(TSX, [join(repo, "test/gateway/fixtures/board-service.ts")], {
    FAN_GW_CLUSTER: cluster,
    FAN_GW_IDL: dir.path,
    FAN_ETCD: SHARED_ETCD,
  });
  await until("Board is ready", () => /"event":"(ready|start failed)"/.test(board.stdout()), 120_000);
  if (!board.stdout().includes('"event":"ready"'))
    throw new Error(`Board did not start: ${board.stdout()}${board.stderr()}`);
  return board;
}

/** Stops a child with SIGTERM and waits for it. */
export async function stopChild(c: CapturedChild | undefined): Promise<void> {
  if (c === undefined || c.child.exitCode !== null) return;
  c.child.kill("SIGTERM");
  await c.exited;
}

/** A gateway running in this process (`fanc gateway`'s `run`). */
export interface LocalGateway {
  readonly url: string;
  stop(): Promise<void>;
}

/** Runs `fanc gateway <idl> --port 0 ...args` in this process (the Till IDL unless `idl` names another); resolves once it listens. */
export async function startGateway(cluster: string, args: readonly string[] = [], idl = IDL): Promise<LocalGateway> {
  const io = captureIo();
  const ac = new AbortController();
  const done = run(gatewayArgs(cluster, args, idl), io, ac.signal);
  let code: number | undefined;
  void done.then((c) => (code = c));
  await until("the gateway listens", () => /listening on http/.test(io.errText()) || code !== undefined, 60_000);
  const m = /listening on (http:\/\/\S+)/.exec(io.errText());
  if (m === null) throw new Error(`the gateway did not start (exit ${code}): ${io.errText()}`);
  return {
    url: m[1] as string,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

/** `fanc gateway`'s arguments in these tests: `idl`, a free port, `cluster` in the shared etcd, warn logs, then `args`. */
function gatewayArgs(cluster: string, args: readonly string[], idl: string): string[] {
  return [
    idl,
    "--port",
    "0",
    "--cluster",
    cluster,
    "--discovery",
    `etcd://${SHARED_ETCD}`,
    "--log-level",
    "warn",
    ...args,
  ];
}

/** Runs `bin/fanc.mjs gateway <idl> --port 0 ...args` as a child process; resolves with it and its URL once it listens. */
export async function spawnGateway(
  cluster: string,
  args: readonly string[] = [],
  idl = IDL,
  env: Record<string, string> = {},
): Promise<{ gateway: CapturedChild; url: string }> {
  const gateway = spawnCaptured(
    process.execPath,
    [join(repo, "bin/fanc.mjs"), "gateway", ...gatewayArgs(cluster, args, idl)],
    env,
  );
  await until(
    "the gateway listens",
    () => /listening on http/.test(gateway.stderr()) || gateway.child.exitCode !== null,
    120_000,
  );
  const m = /listening on (http:\/\/\S+)/.exec(gateway.stderr());
  if (m === null) throw new Error(`the gateway did not start: ${gateway.stderr()}`);
  return { gateway, url: m[1] as string };
}

/** An open SSE stream read with fetch: each `data:` payload in order. */
export interface SseReader {
  /** The next data line's text (waits up to `timeoutMs`). */
  next(timeoutMs?: number): Promise<string>;
  close(): void;
}

/** Opens `url` as an event stream; resolves once the gateway says it is subscribed. */
export async function openSse(url: string): Promise<SseReader> {
  const ac = new AbortController();
  const res = await fetch(url, { signal: ac.signal, headers: { accept: "text/event-stream" } });
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const data: string[] = [];
  let buffer = "";
  let subscribed = false;
  let wake: (() => void) | undefined;
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split("\n")) {
            if (line.startsWith("data: ")) data.push(line.slice(6));
            if (line === ": subscribed") subscribed = true;
          }
          end = buffer.indexOf("\n\n");
        }
        wake?.();
      }
    } catch {
      // aborted
    }
  })();
  await until("the event stream opens", () => subscribed, 20_000);
  return {
    next: async (timeoutMs = 15_000) => {
      const end = Date.now() + timeoutMs;
      while (data.length === 0) {
        if (Date.now() > end) throw new Error(`no event on ${url} within ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      return data.shift() as string;
    },
    close: () => ac.abort(),
  };
}
