/** Format document: the canonical layout of `fanc fmt`, as one edit over the whole text. */
import type { TextEdit } from "vscode-languageserver";
import { formatSource } from "../compiler/format.js";
import type { Lines } from "./positions.js";

/** The edit that formats `text`; none when it is canonical or cannot be formatted (a lexing error). */
export function formatEdits(path: string, text: string, lines: Lines): TextEdit[] {
  const r = formatSource(path, text);
  if (!r.ok || !r.changed) return [];
  return [{ range: lines.range({ start: 0, end: text.length }), newText: r.text }];
}
