/**
 * Rename a declaration (struct, enum, union, error, service) or an event across every file of
 * the program: its name and the last part of every name that refers to it.
 */
import { type Range, ResponseError, type TextEdit, type WorkspaceEdit } from "vscode-languageserver";
import type { Span } from "../compiler/ast.js";
import { linesOf } from "./positions.js";
import type { Project, Snapshot } from "./project.js";
import { declarationOf, referencesTo, type Target, targetOf } from "./targets.js";
import type { Workspace } from "./workspace.js";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function renamable(snap: Snapshot, path: string, offset: number): Target | undefined {
  const hit = snap.analysis().at(path, offset);
  const t = hit === undefined ? undefined : targetOf(hit);
  return t?.kind === "package" ? undefined : t;
}

/** The range of the name to rename at `offset`, or undefined when nothing there can be renamed. */
export function prepareRenameAt(project: Project, snap: Snapshot, path: string, offset: number): Range | undefined {
  const t = renamable(snap, path, offset);
  if (t === undefined) return undefined;
  const a = snap.analysis();
  const spans = [declarationOf(a, t), ...referencesTo(a, t).map((r) => r.nameSpan)];
  const here = spans.find((s) => s !== undefined && s.file === path && offset >= s.start && offset <= s.end);
  return here === undefined ? undefined : linesOf(`${project.root}:${path}`, project.text(path) ?? "").range(here);
}

/** The edits that rename what is at `offset` to `newName`. */
export function renameAt(
  ws: Workspace,
  project: Project,
  snap: Snapshot,
  path: string,
  offset: number,
  newName: string,
): WorkspaceEdit | undefined {
  if (!NAME.test(newName)) throw new ResponseError(-32602, `"${newName}" is not a valid fan name ([A-Za-z_][A-Za-z0-9_]*)`);
  const t = renamable(snap, path, offset);
  if (t === undefined) return undefined;
  const a = snap.analysis();
  const decl = declarationOf(a, t);
  const spans: Span[] = referencesTo(a, t).map((r) => r.nameSpan);
  if (decl !== undefined) spans.push(decl);
  const changes: Record<string, TextEdit[]> = {};
  for (const s of spans) {
    const uri = ws.uri(project, s.file);
    const range = linesOf(`${project.root}:${s.file}`, project.text(s.file) ?? "").range(s);
    const edits = changes[uri] ?? [];
    edits.push({ range, newText: newName });
    changes[uri] = edits;
  }
  return { changes };
}
