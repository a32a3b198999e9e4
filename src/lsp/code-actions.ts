/**
 * Quick fixes: apply a diagnostic's "did you mean `X`?" hint (unknown types and decorators, a
 * route's verb: from the compiler's suggest.ts) in place of the diagnostic's span, and add the
 * missing `import` a FAN0104 asks for.
 */
import { type CodeAction, CodeActionKind, type Diagnostic } from "vscode-languageserver";
import type * as A from "../compiler/ast.js";
import type { Lines } from "./positions.js";

/** The quick fixes for the diagnostics the editor sends back. */
export function quickFixes(
  uri: string,
  file: A.SourceFile | undefined,
  lines: Lines,
  diagnostics: readonly Diagnostic[],
): CodeAction[] {
  const out: CodeAction[] = [];
  for (const d of diagnostics) {
    if (d.source !== "fan") continue;
    const message = typeof d.message === "string" ? d.message : d.message.value;
    const hint = /did you mean `([^`]+)`\?/.exec(message);
    if (hint !== null) {
      const replacement = hint[1]!.replace(/^@/, "");
      out.push({
        title: `Change to \`${hint[1]}\``,
        kind: CodeActionKind.QuickFix,
        diagnostics: [d],
        isPreferred: true,
        edit: { changes: { [uri]: [{ range: d.range, newText: replacement }] } },
      });
    }
    const missing = d.code === "FAN0104" ? /package `([^`]+)` is not imported/.exec(message) : null;
    if (missing !== null && file !== undefined) {
      const after = file.imports[file.imports.length - 1] ?? file.package;
      const at =
        after === undefined
          ? { line: 0, character: 0 }
          : { line: lines.position(after.span.end).line + 1, character: 0 };
      out.push({
        title: `Add \`import ${missing[1]}\``,
        kind: CodeActionKind.QuickFix,
        diagnostics: [d],
        edit: { changes: { [uri]: [{ range: { start: at, end: at }, newText: `import ${missing[1]}\n` }] } },
      });
    }
  }
  return out;
}
