/**
 * The language server: wires the LSP requests to the features (one file each) over a
 * connection. Diagnostics are published after every change, for every file of the project
 * whose diagnostics changed (an edit in one file can fix or break another); each check also
 * sends a `fan/checked` notification with what it re-did, for tests and the benchmark.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import {
  type Connection,
  type InitializeParams,
  type InitializeResult,
  type TextDocumentPositionParams,
  TextDocumentSyncKind,
  TextDocuments,
} from "vscode-languageserver";
import { TextDocument } from "vscode-languageserver-textdocument";
import { quickFixes } from "./code-actions.js";
import { completionsAt } from "./completion.js";
import { definitionAt } from "./definition.js";
import { toLsp } from "./diagnostics.js";
import { formatEdits } from "./formatting.js";
import { hoverAt } from "./hover.js";
import { linesOf } from "./positions.js";
import type { Project, Snapshot } from "./project.js";
import { referencesAt } from "./references.js";
import { prepareRenameAt, renameAt } from "./rename.js";
import { LEGEND, semanticTokens } from "./semantic-tokens.js";
import { documentSymbols } from "./symbols.js";
import { type Located, Workspace } from "./workspace.js";

/** The `fan/checked` notification's payload. */
export interface CheckedParams {
  readonly root: string;
  readonly version: number;
  readonly parsed: number;
  readonly rechecked: readonly string[];
  readonly ms: number;
  /** The version of each open document the check saw, by URI. */
  readonly versions: Readonly<Record<string, number>>;
}

/** Serve the language on `connection` until it closes. */
export function serve(connection: Connection): void {
  const documents = new TextDocuments(TextDocument);
  let ws = new Workspace();
  const published = new Map<string, string>();
  const pending = new Set<Project>();
  let scheduled = false;

  const lines = (project: Project, path: string) => linesOf(`${project.root}:${path}`, project.text(path) ?? "");

  const publish = (project: Project): void => {
    const snap = project.snapshot();
    const stats = project.stats;
    for (const [path, ds] of snap.diagnostics) {
      const uri = ws.uri(project, path);
      const lsp = toLsp(ws, project, snap, path, ds);
      const key = JSON.stringify(lsp);
      if (published.get(uri) === key) continue;
      published.set(uri, key);
      void connection.sendDiagnostics({ uri, diagnostics: lsp });
    }
    void connection.sendNotification("fan/checked", {
      root: project.root,
      version: snap.version,
      parsed: stats.parsed,
      rechecked: stats.rechecked,
      ms: stats.ms,
      versions: Object.fromEntries(documents.all().map((d) => [d.uri, d.version])),
    } satisfies CheckedParams);
  };

  // Changes that arrive together (a burst of keystrokes) are checked once.
  const schedule = (project: Project): void => {
    pending.add(project);
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      const ps = [...pending];
      pending.clear();
      for (const p of ps) {
        try {
          publish(p);
        } catch (e) {
          connection.console.error(`fan: checking ${p.root} failed: ${e instanceof Error ? e.stack : String(e)}`);
        }
      }
    });
  };

  const at = async (uri: string): Promise<Located | undefined> => ws.locate(uri);
  const withSnap = async <T>(p: TextDocumentPositionParams, f: (l: Located, snap: Snapshot, offset: number) => T): Promise<T | undefined> => {
    const l = await at(p.textDocument.uri);
    if (l === undefined) return undefined;
    const snap = l.project.snapshot();
    return f(l, snap, lines(l.project, l.path).offset(p.position));
  };

  connection.onInitialize((params: InitializeParams): InitializeResult => {
    const folders = (params.workspaceFolders ?? []).map((f) => fileURLToPath(f.uri));
    if (folders.length === 0 && params.rootUri) folders.push(fileURLToPath(params.rootUri));
    ws = new Workspace(folders);
    const opts = params.initializationOptions as { root?: string } | undefined;
    ws.configure(opts?.root);
    return {
      capabilities: {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental, save: { includeText: false } },
        hoverProvider: true,
        definitionProvider: true,
        referencesProvider: true,
        completionProvider: { triggerCharacters: ["@", ".", "{", ":", " "] },
        documentSymbolProvider: true,
        renameProvider: { prepareProvider: true },
        codeActionProvider: { codeActionKinds: ["quickfix"] },
        documentFormattingProvider: true,
        semanticTokensProvider: { legend: LEGEND, full: true },
      },
      serverInfo: { name: "fanc lsp" },
    };
  });

  documents.onDidChangeContent(async (e) => {
    const l = await at(e.document.uri);
    if (l === undefined) return;
    l.project.setOpen(l.path, e.document.getText());
    schedule(l.project);
  });
  documents.onDidClose(async (e) => {
    const l = await at(e.document.uri);
    if (l === undefined) return;
    // The text on disk counts again (an unsaved edit is dropped; a file never saved is gone).
    l.project.close(l.path, await readFile(fileURLToPath(e.document.uri), "utf8").catch(() => undefined));
    schedule(l.project);
  });
  connection.onDidChangeWatchedFiles(async (e) => {
    for (const c of e.changes) {
      if (documents.get(c.uri) !== undefined) continue;
      const l = await ws.refresh(c.uri);
      if (l !== undefined) schedule(l.project);
    }
  });

  connection.onHover((p) => withSnap(p, (l, snap, o) => hoverAt(snap, l.path, o)));
  connection.onDefinition((p) => withSnap(p, (l, snap, o) => definitionAt(ws, l.project, snap, l.path, o)));
  connection.onReferences((p) =>
    withSnap(p, (l, snap, o) => referencesAt(ws, l.project, snap, l.path, o, p.context.includeDeclaration)),
  );
  connection.onCompletion((p) =>
    withSnap(p, (l, snap, o) => completionsAt(snap.analysis(), l.path, l.project.text(l.path) ?? "", o)),
  );
  connection.onPrepareRename((p) => withSnap(p, (l, snap, o) => prepareRenameAt(l.project, snap, l.path, o) ?? null));
  connection.onRenameRequest(async (p) => (await withSnap(p, (l, snap, o) => renameAt(ws, l.project, snap, l.path, o, p.newName))) ?? null);
  connection.onDocumentSymbol(async (p) => {
    const l = await at(p.textDocument.uri);
    const file = l?.project.snapshot().files.get(l.path);
    return l === undefined || file === undefined ? [] : documentSymbols(file, lines(l.project, l.path));
  });
  connection.onCodeAction(async (p) => {
    const l = await at(p.textDocument.uri);
    if (l === undefined) return [];
    const file = l.project.snapshot().files.get(l.path);
    return quickFixes(p.textDocument.uri, file, lines(l.project, l.path), p.context.diagnostics);
  });
  connection.onDocumentFormatting(async (p) => {
    const l = await at(p.textDocument.uri);
    const text = l?.project.text(l.path);
    return l === undefined || text === undefined ? [] : formatEdits(l.path, text, lines(l.project, l.path));
  });
  connection.languages.semanticTokens.on(async (p) => {
    const l = await at(p.textDocument.uri);
    if (l === undefined) return { data: [] };
    return semanticTokens(l.project.snapshot().analysis(), l.path, lines(l.project, l.path));
  });

  documents.listen(connection);
  connection.listen();
}
