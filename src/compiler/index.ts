/**
 * The compiler's public API: text in, checked model (or diagnostics) out.
 * The CLI and the code generator use only what is exported here.
 */

/** Parse and check sources as one program; see `CheckResult`. */
export { checkSources } from "./program.js";
/** AST (and check result) cache for watch mode: unchanged files are not parsed or checked again. */
export { ParseCache } from "./program.js";
/** Read every `*.fan` file under a folder, sorted by path. */
export { readSources } from "./program.js";
/** Format diagnostics as `file:line:col: error FAN0123: message`, source line and caret. */
export { formatDiagnostic, formatDiagnostics } from "./diagnostics.js";
/** The table of all diagnostic codes (code, severity, message template, help). */
export { diagnosticTable } from "./diagnostics.js";

/** A source file given to the compiler, the result of a check, and its options. */
export type { CheckOptions, CheckResult, SourceInput } from "./program.js";
/** A located message (`code`, `severity`, `message`, `span`) and its severity. */
export type { Diagnostic, Severity } from "./diagnostics.js";
/** A half-open range of offsets in one file. */
export type { Span } from "./ast.js";
/** The checked model that codegen consumes. */
export type * from "./model.js";
