/** Offsets (what the compiler uses) to LSP line/character positions and back (both count UTF-16 units). */
import type { Position, Range } from "vscode-languageserver";
import type { Span } from "../compiler/ast.js";
import { lineStarts } from "../compiler/diagnostics.js";

/** The line table of one text. */
export class Lines {
  readonly #starts: number[];

  constructor(readonly text: string) {
    this.#starts = lineStarts(text);
  }

  /** The position of an offset (clamped to the text). */
  position(offset: number): Position {
    const o = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.#starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#starts[mid]! <= o) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: o - this.#starts[lo]! };
  }

  /** The offset of a position (clamped to its line and the text). */
  offset(p: Position): number {
    const start = this.#starts[Math.min(p.line, this.#starts.length - 1)] ?? 0;
    const next = this.#starts[p.line + 1] ?? this.text.length;
    return Math.min(start + p.character, next, this.text.length);
  }

  /** The range of a span. */
  range(s: Pick<Span, "start" | "end">): Range {
    return { start: this.position(s.start), end: this.position(s.end) };
  }
}

const cache = new Map<string, Lines>();

/** The line table of `text`, reused while the file's text is unchanged. */
export function linesOf(key: string, text: string): Lines {
  const hit = cache.get(key);
  if (hit !== undefined && hit.text === text) return hit;
  const lines = new Lines(text);
  cache.set(key, lines);
  return lines;
}
