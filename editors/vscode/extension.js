// The fan extension: starts `fanc lsp --stdio` (the workspace's fanc, else the one on the PATH,
// or the command in the `fan.server.command` setting) and connects VS Code to it.
const { existsSync } = require("node:fs");
const { join } = require("node:path");
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function serverCommand() {
  const configured = vscode.workspace.getConfiguration("fan").get("server.command") || [];
  if (configured.length > 0) return { command: configured[0], args: [...configured.slice(1), "lsp", "--stdio"] };
  for (const folder of vscode.workspace.workspaceFolders || []) {
    const local = join(folder.uri.fsPath, "node_modules", ".bin", process.platform === "win32" ? "fanc.cmd" : "fanc");
    if (existsSync(local)) return { command: local, args: ["lsp", "--stdio"] };
  }
  return { command: process.platform === "win32" ? "fanc.cmd" : "fanc", args: ["lsp", "--stdio"] };
}

async function activate(context) {
  const { command, args } = serverCommand();
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const run = { command, args, transport: TransportKind.stdio, options: cwd ? { cwd } : {} };
  client = new LanguageClient(
    "fan",
    "fan language server",
    { run, debug: run },
    {
      documentSelector: [{ scheme: "file", language: "fan" }],
      initializationOptions: { root: vscode.workspace.getConfiguration("fan").get("root") || undefined },
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.fan") },
    },
  );
  context.subscriptions.push(client);
  try {
    await client.start();
  } catch (e) {
    vscode.window.showErrorMessage(
      `fan: could not start "${command} ${args.join(" ")}" (${e && e.message ? e.message : e}). Install fan in the workspace (npm i -D fan) or set fan.server.command.`,
    );
  }
}

async function deactivate() {
  if (client) await client.stop();
}

module.exports = { activate, deactivate };
