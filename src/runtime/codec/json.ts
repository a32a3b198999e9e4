/**
 * json: any JSON value (null, bool, finite number, string, array, plain object). Decode and
 * encode build a copy; all three reject functions, undefined, symbols, bigints, non-finite
 * numbers, non-plain objects, cycles, forbidden keys and nesting past the bound.
 */
import { at, describe, fail, failDepth, FORBIDDEN_KEYS } from "./fail.js";
import type { Compiled, Compiler } from "./types.js";

/** The json codec. */
export function jsonCodec(c: Compiler): Compiled {
  const max = c.maxDepth;
  return {
    decode: (v, d) => walk(v, d, max, [], true),
    encode: (v, d) => walk(v, d, max, [], true),
    validate: (v, d) => {
      walk(v, d, max, [], false);
    },
  };
}

/** Checks (and with `copy`, copies) one JSON value; `anc` holds the objects being walked. */
function walk(v: unknown, d: number, max: number, anc: object[], copy: boolean): unknown {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      if (!Number.isFinite(v)) fail(`expected a JSON value, got ${describe(v)}`);
      return v;
    case "object":
      if (v === null) return v;
      if (d >= max) failDepth(max);
      if (anc.includes(v)) fail("expected a JSON value, got a cycle");
      anc.push(v);
      try {
        return Array.isArray(v) ? walkArray(v, d, max, anc, copy) : walkObject(v, d, max, anc, copy);
      } finally {
        anc.pop();
      }
    default:
      return fail(`expected a JSON value, got ${describe(v)}`);
  }
}

function walkArray(a: unknown[], d: number, max: number, anc: object[], copy: boolean): unknown {
  const out: unknown[] | undefined = copy ? [] : undefined;
  let i = 0;
  try {
    for (; i < a.length; i++) {
      const x = walk(a[i], d + 1, max, anc, copy);
      if (out !== undefined) out.push(x);
    }
  } catch (e) {
    throw at(e, i);
  }
  return out ?? a;
}

function walkObject(o: object, d: number, max: number, anc: object[], copy: boolean): unknown {
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) fail(`expected a JSON value, got ${describe(o)}`);
  const out: Record<string, unknown> | undefined = copy ? {} : undefined;
  const src = o as Record<string, unknown>;
  for (const k of Object.keys(src)) {
    try {
      if (FORBIDDEN_KEYS.has(k)) fail(`key "${k}" is not allowed`);
      const x = src[k];
      if (x === undefined) fail("expected a JSON value, got undefined");
      const y = walk(x, d + 1, max, anc, copy);
      if (out !== undefined) out[k] = y;
    } catch (e) {
      throw at(e, k);
    }
  }
  return out ?? o;
}
