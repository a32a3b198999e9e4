/** `fanc lsp`: the language server on stdin/stdout (what editors launch; see docs/editor.md). */
import { createConnection, ProposedFeatures, StreamMessageReader, StreamMessageWriter } from "vscode-languageserver/node";
import type { Io } from "../cli/io.js";
import { serve } from "./server.js";

export const LSP_USAGE = `usage: fanc lsp [--stdio]

Runs the fan language server over stdin/stdout for an editor (diagnostics, hover, go to
definition, references, completion, rename, quick fixes, outline, formatting, semantic
tokens). The compile root of a file is the editor's "fan.root" setting, else its nearest
folder named idl, else its own folder. See docs/editor.md.`;

/** Runs until the editor closes the connection; resolves to the exit code. */
export async function run(args: readonly string[], io: Io): Promise<number> {
  if (args.includes("-h") || args.includes("--help")) {
    io.out(LSP_USAGE);
    return 0;
  }
  const unknown = args.find((a) => a !== "--stdio");
  if (unknown !== undefined) {
    io.err(`fanc lsp: unknown argument ${unknown}\n${LSP_USAGE}`);
    return 2;
  }
  const connection = createConnection(ProposedFeatures.all, new StreamMessageReader(process.stdin), new StreamMessageWriter(process.stdout));
  const closed = new Promise<void>((resolve) => connection.onExit(() => resolve()));
  serve(connection);
  await closed;
  return 0;
}
