/**
 * The one error the generator reports: a checked model that still cannot become valid
 * TypeScript (two generated names that collide, a reference to nothing). The CLI prints its
 * message like a diagnostic; it is never a crash.
 */

/** A model the generator cannot turn into valid TypeScript; `message` says what to rename. */
export class CodegenError extends Error {
  /** Diagnostic-style code, so the CLI can print it like the checker's diagnostics. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "CodegenError";
    this.code = code;
  }
}

/** Codes of the generator's errors, one per kind of problem. */
export const CodegenCode = {
  /** Two generated names in one module or one interface are the same. */
  NameCollision: "FANGEN001",
  /** The model refers to a declaration, service or event that it does not contain. */
  UnknownReference: "FANGEN002",
  /** A package would be written over another generated file. */
  PathCollision: "FANGEN003",
} as const;
