/**
 * The compiler's public API: text in, checked model (or diagnostics) out.
 * The CLI and the code generator use only what is exported here.
 */
export type { Span } from "./ast.js";
export type { Diagnostic, Severity } from "./diagnostics.js";
export type { CheckOptions, CheckResult, SourceInput } from "./program.js";
export type * from "./model.js";

/** Parse and check sources as one program; see `CheckResult`. */
export { checkSources } from "./program.js";
/** AST cache for watch mode. */
export { ParseCache } from "./program.js";
/** Read every `*.fan` file under a folder, sorted by path. */
export { readSources } from "./program.js";
/** Format diagnostics as `file:line:col: error FAN0123: message`, source line and caret. */
export { formatDiagnostic, formatDiagnostics } from "./diagnostics.js";
/** The table of all diagnostic codes (code, severity, message template, help). */
export { diagnosticTable } from "./diagnostics.js";
