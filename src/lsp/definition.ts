/** Go to definition: from any name to the declaration it refers to, across files and imports. */
import type { Location } from "vscode-languageserver";
import { linesOf } from "./positions.js";
import type { Project, Snapshot } from "./project.js";
import { declarationOf, targetOf } from "./targets.js";
import type { Workspace } from "./workspace.js";

/** The declaration of what is at `offset`, or undefined. */
export function definitionAt(ws: Workspace, project: Project, snap: Snapshot, path: string, offset: number): Location | undefined {
  const a = snap.analysis();
  const hit = a.at(path, offset);
  const target = hit === undefined ? undefined : targetOf(hit);
  const span = target === undefined ? undefined : declarationOf(a, target);
  if (span === undefined) return undefined;
  const lines = linesOf(`${project.root}:${span.file}`, project.text(span.file) ?? "");
  return { uri: ws.uri(project, span.file), range: lines.range(span) };
}
