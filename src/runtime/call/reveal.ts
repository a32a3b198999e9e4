/**
 * Test apps show a handler's unexpected exception, and a reply that does not fit the IDL, to
 * the test. The INTERNAL WireError of either carries it under a symbol key: a property JSON
 * never writes, so it reaches only a caller in the same process (the local transport keeps it
 * across its serialised path) and never crosses a network transport. The caller's INTERNAL
 * error then has the exception (or the codec's error) as `cause` and a message saying where
 * the handler threw (or which field of the reply broke which rule).
 */
import { relative } from "node:path";
import type { WireError } from "../errors.js";

const REVEALED: unique symbol = Symbol.for("fan.revealedError") as never;

/** What a revealed INTERNAL error carries. */
export interface Revealed {
  /** What the handler threw. */
  readonly error: unknown;
  /**
   * `test.shop.Catalog.boom threw Error: no stock (at src/catalog.ts:80:11)`, or for a reply
   * that does not fit the IDL `reply.name: at most 200 characters, got string "…"`.
   */
  readonly what: string;
}

/**
 * Attaches `error` to `wire` (non-enumerable, symbol-keyed); returns `wire`. `why`: why a
 * FanError became INTERNAL (`handler threw x.Y, which S.m does not declare`), added to the message.
 */
export function reveal(wire: WireError, error: unknown, service: string, method: string, why?: string): WireError {
  const what = `${service}.${method} threw ${describe(error)}${where(error)}`;
  return attach(wire, error, why === undefined ? what : `${what}; ${why}`);
}

/**
 * Attaches the codec's error of a reply that did not encode to `wire` (whose message already
 * names the method): the caller's message gets the field path and the rule it broke.
 */
export function revealBadReply(wire: WireError, error: unknown): WireError {
  return attach(wire, error, error instanceof Error ? error.message : String(error));
}

function attach(wire: WireError, error: unknown, what: string): WireError {
  Object.defineProperty(wire, REVEALED, { value: { error, what } satisfies Revealed, enumerable: false });
  return wire;
}

/** The revealed exception of a WireError payload, when it has one. */
export function revealed(payload: unknown): Revealed | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  return (payload as { [REVEALED]?: Revealed })[REVEALED];
}

/** Copies the revealed exception of `from` onto `to` (a serialised copy of the same error). */
export function keepRevealed(from: unknown, to: unknown): void {
  const r = revealed(from);
  if (r !== undefined && typeof to === "object" && to !== null)
    Object.defineProperty(to, REVEALED, { value: r, enumerable: false });
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `a non-Error value: ${String(e)}`;
}

/** ` (at file:line:col)` of the first stack frame outside node's internals, fan and node_modules. */
function where(e: unknown): string {
  const stack = e instanceof Error && typeof e.stack === "string" ? e.stack : "";
  for (const line of stack.split("\n")) {
    const m = /^\s+at (?:.*? \()?(.+?:\d+:\d+)\)?$/.exec(line);
    if (m === null) continue;
    const loc = (m[1] ?? "").replace(/^file:\/\//, "");
    if (loc.startsWith("node:") || loc.includes("/node_modules/") || /\/src\/runtime\//.test(loc)) continue;
    const rel = relative(process.cwd(), loc);
    return ` (at ${rel.startsWith("..") ? loc : rel})`;
  }
  return "";
}
