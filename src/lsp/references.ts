/** Find references: every name in the program that refers to the symbol at the cursor. */
import type { Location } from "vscode-languageserver";
import type { Span } from "../compiler/ast.js";
import { linesOf } from "./positions.js";
import type { Project, Snapshot } from "./project.js";
import { declarationOf, referencesTo, targetOf } from "./targets.js";
import type { Workspace } from "./workspace.js";

/** References to what is at `offset` (with its declaration when `withDecl`). */
export function referencesAt(
  ws: Workspace,
  project: Project,
  snap: Snapshot,
  path: string,
  offset: number,
  withDecl: boolean,
): Location[] {
  const a = snap.analysis();
  const hit = a.at(path, offset);
  const target = hit === undefined ? undefined : targetOf(hit);
  if (target === undefined) return [];
  const spans: Span[] = referencesTo(a, target).map((r) => r.span);
  const decl = declarationOf(a, target);
  if (withDecl && decl !== undefined) spans.unshift(decl);
  return spans.map((s) => ({
    uri: ws.uri(project, s.file),
    range: linesOf(`${project.root}:${s.file}`, project.text(s.file) ?? "").range(s),
  }));
}
