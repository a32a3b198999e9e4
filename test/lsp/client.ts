/**
 * A test client for `fanc lsp`: spawns the real command (bin/fanc.mjs lsp --stdio), speaks LSP
 * over its stdin/stdout with vscode-languageserver-protocol, and collects the diagnostics and
 * `fan/checked` notifications it publishes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  createProtocolConnection,
  type Diagnostic,
  InitializeRequest,
  type ProtocolConnection,
  PublishDiagnosticsNotification,
  StreamMessageReader,
  StreamMessageWriter,
} from "vscode-languageserver-protocol/node";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The `fan/checked` payload (see src/lsp/server.ts). */
export interface Checked {
  readonly root: string;
  readonly version: number;
  readonly parsed: number;
  readonly rechecked: readonly string[];
  readonly ms: number;
  readonly versions: Readonly<Record<string, number>>;
}

/** A running server and what it has sent. */
export class LspClient {
  readonly diagnostics = new Map<string, Diagnostic[]>();
  readonly checks: Checked[] = [];
  readonly #waiters: (() => void)[] = [];
  #versions = new Map<string, number>();

  private constructor(
    readonly conn: ProtocolConnection,
    readonly child: ChildProcess,
    readonly dir: string,
  ) {
    conn.onNotification(PublishDiagnosticsNotification.type, (p) => {
      this.diagnostics.set(p.uri, p.diagnostics);
      this.#wake();
    });
    conn.onNotification("fan/checked", (p: Checked) => {
      this.checks.push(p);
      this.#wake();
    });
  }

  /** Copies `fixture` (a folder under test/lsp/fixtures) to a temp dir and starts the server on it. */
  static async start(fixture: string): Promise<LspClient> {
    const dir = mkdtempSync(join(tmpdir(), "fan-lsp-"));
    cpSync(join(repo, "test/lsp/fixtures", fixture), dir, { recursive: true });
    return LspClient.startIn(dir);
  }

  /** Starts the server on a workspace folder (removed by `stop`). */
  static async startIn(dir: string): Promise<LspClient> {
    const child = spawn(process.execPath, [join(repo, "bin/fanc.mjs"), "lsp", "--stdio"], {
      cwd: dir,
      stdio: ["pipe", "pipe", "inherit"],
    });
    const conn = createProtocolConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    conn.listen();
    const c = new LspClient(conn, child, dir);
    await conn.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: pathToFileURL(dir).href,
      workspaceFolders: [{ uri: pathToFileURL(dir).href, name: "t" }],
      capabilities: {},
    });
    await conn.sendNotification("initialized", {});
    return c;
  }

  uri(rel: string): string {
    return pathToFileURL(join(this.dir, rel)).href;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves when `cond()` holds (checked after every notification), or fails after `ms`. */
  async until<T>(cond: () => T | undefined | false, what: string, ms = 20_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = cond();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  async open(rel: string, text: string): Promise<void> {
    this.#versions.set(rel, 1);
    await this.conn.sendNotification("textDocument/didOpen", {
      textDocument: { uri: this.uri(rel), languageId: "fan", version: 1, text },
    });
  }

  /** Replaces the whole text of an open document. */
  async change(rel: string, text: string): Promise<void> {
    const v = (this.#versions.get(rel) ?? 1) + 1;
    this.#versions.set(rel, v);
    await this.conn.sendNotification("textDocument/didChange", {
      textDocument: { uri: this.uri(rel), version: v },
      contentChanges: [{ text }],
    });
  }

  /** The version of an open document the client last sent. */
  version(rel: string): number {
    return this.#versions.get(rel) ?? 0;
  }

  /** The first check that saw the document's current version. */
  checkedNow(rel: string): Promise<Checked> {
    const v = this.version(rel);
    const uri = this.uri(rel);
    return this.until(() => this.checks.find((x) => x.versions[uri] === v), `a check of ${rel} version ${v}`);
  }

  request<R>(method: string, params: unknown): Promise<R> {
    return this.conn.sendRequest(method, params) as Promise<R>;
  }

  async stop(): Promise<void> {
    try {
      await this.conn.sendRequest("shutdown");
      await this.conn.sendNotification("exit");
    } catch {
      // already gone
    }
    const exited = new Promise((r) => this.child.once("exit", r));
    setTimeout(() => this.child.kill(), 2000).unref();
    await exited;
    this.conn.dispose();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
