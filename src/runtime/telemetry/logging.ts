/**
 * Logging with pino. The App owns one logger (injectable); everything else gets a child of it:
 * transports and discovery by component, served instances by service and instance id, calls
 * by method and trace id. Nothing logs through a global.
 */
import { pino, type Logger } from "pino";
import type { Schema, StructSchema } from "../codec/schema.js";

/** Options for the App's default logger when none is injected. */
export interface LoggingOptions {
  /** pino level; default `FAN_LOG_LEVEL` or "info". */
  readonly level?: string;
  /** App name bound on every record. */
  readonly name?: string;
}

/** The App's default logger: JSON lines on stdout at `level`. */
export function createLogger(opts: LoggingOptions = {}): Logger {
  const level = opts.level ?? process.env.FAN_LOG_LEVEL ?? "info";
  return pino({ level, ...(opts.name === undefined ? {} : { name: opts.name }) });
}

/** A logger that writes nothing (test kit default unless FAN_LOG_LEVEL is set). */
export function silentLogger(): Logger {
  return pino({ level: process.env.FAN_LOG_LEVEL ?? "silent" });
}

/**
 * A child logger for a library without logging support of its own, tagged with `component`.
 * Give it to the library instead of letting it log to the console.
 */
export function componentLogger(log: Logger, component: string): Logger {
  return log.child({ component });
}

const REDACTED = "[secret]";
/** The value of a key the config block does not declare: maybe a misspelt `@secret` one. */
const UNDECLARED = "[undeclared]";

/**
 * A copy of a raw config object with every `@secret` entry (at any depth) replaced, for logging,
 * and every key the schema does not declare too (a misspelt secret must not reach the log).
 */
export function redactSecrets(schema: StructSchema | undefined, raw: unknown): unknown {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return raw;
  const out: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  const declared = new Set((schema?.fields ?? []).map((f) => f.name));
  for (const key of Object.keys(out)) if (!declared.has(key)) out[key] = UNDECLARED;
  if (schema === undefined) return out;
  for (const field of schema.fields) {
    if (!Object.hasOwn(out, field.name)) continue;
    if (field.secret === true) out[field.name] = REDACTED;
    else {
      const inner = structOf(field.schema);
      if (inner !== undefined) out[field.name] = redactSecrets(inner, out[field.name]);
    }
  }
  return out;
}

function structOf(schema: Schema): StructSchema | undefined {
  const s = schema.kind === "ref" ? schema.get() : schema;
  return s.kind === "struct" ? s : undefined;
}
