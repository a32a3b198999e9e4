/** Compiler diagnostics as LSP diagnostics: same code and message as `fanc compile`, with related locations. */
import {
  type Diagnostic as LspDiagnostic,
  DiagnosticSeverity,
  DiagnosticTag,
  type DiagnosticRelatedInformation,
} from "vscode-languageserver";
import type { Diagnostic } from "../compiler/diagnostics.js";
import type { Snapshot } from "./project.js";
import { linesOf } from "./positions.js";
import type { Workspace } from "./workspace.js";
import type { Project } from "./project.js";

/** The LSP form of one file's diagnostics. */
export function toLsp(ws: Workspace, project: Project, snap: Snapshot, path: string, ds: readonly Diagnostic[]): LspDiagnostic[] {
  const lines = linesOf(`${project.root}:${path}`, project.text(path) ?? "");
  return ds.map((d) => {
    const related = relatedOf(ws, project, snap, d);
    return {
      range: lines.range(d.span),
      severity: d.severity === "error" ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning,
      code: d.code,
      source: "fan",
      message: d.message,
      ...(d.code === "FAN0506" ? { tags: [DiagnosticTag.Unnecessary] } : {}),
      ...(related.length > 0 ? { relatedInformation: related } : {}),
    };
  });
}

/** Where else a diagnostic points: the first declaration of a duplicate name. */
function relatedOf(ws: Workspace, project: Project, snap: Snapshot, d: Diagnostic): DiagnosticRelatedInformation[] {
  if (d.code !== "FAN0102") return [];
  const m = /^`([^`]+)` is already declared in package `([^`]+)`/.exec(d.message);
  if (m === null) return [];
  const first = snap.analysis().decls.get(`${m[2]}.${m[1]}`);
  if (first === undefined) return [];
  const path = first.file.path;
  const lines = linesOf(`${project.root}:${path}`, project.text(path) ?? "");
  return [
    {
      location: { uri: ws.uri(project, path), range: lines.range(first.decl.name.span) },
      message: `\`${m[1]}\` is first declared here`,
    },
  ];
}
