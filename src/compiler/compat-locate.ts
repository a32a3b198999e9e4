/**
 * Where the things `fanc check` names are in the source: a map from the paths its changes use
 * (`shop.Wine`, `shop.Wine.price`, `shop.Cellar.get`, `shop.Cellar.get.id`,
 * `shop.Cellar.config.pageSize`, `shop.Cellar.depends.Stock`) to file, line and column. A path
 * that is not declared in this version (a removed field, in the new IDL) resolves to its
 * nearest enclosing declaration.
 */
import type { Field, SourceFile, Span } from "./ast.js";
import type { SourceLocation } from "./compat-kinds.js";
import { lineColumn, lineStarts } from "./diagnostics.js";

export type Locate = (path: string) => SourceLocation | undefined;

/** A locator over parsed files; `display` turns a source path into what the report prints. */
export function locator(files: readonly SourceFile[], display: (file: string) => string = (f) => f): Locate {
  const spans = new Map<string, Span>();
  const texts = new Map<string, string>();
  for (const f of files) {
    texts.set(f.path, f.text);
    const pkg = f.package?.name.parts.map((p) => p.name).join(".") ?? "";
    for (const d of f.decls) {
      const name = pkg === "" ? d.name.name : `${pkg}.${d.name.name}`;
      spans.set(name, d.name.span);
      const fields = (owner: string, list: readonly Field[]): void => {
        for (const x of list) spans.set(`${owner}.${x.name.name}`, x.name.span);
      };
      switch (d.kind) {
        case "Struct":
        case "Error":
          fields(name, d.fields);
          break;
        case "Enum":
        case "Union":
          for (const m of d.members) spans.set(`${name}.${m.name.name}`, m.name.span);
          break;
        case "Service":
          for (const m of d.members) {
            if (m.kind === "Config") fields(`${name}.config`, m.fields);
            else if (m.kind === "Depends") spans.set(`${name}.depends.${m.service.parts.at(-1)?.name}`, m.service.span);
            else if (m.kind !== "On") {
              spans.set(`${name}.${m.name.name}`, m.name.span);
              if (m.kind !== "State") fields(`${name}.${m.name.name}`, m.params);
            }
          }
      }
    }
  }
  const starts = new Map<string, number[]>();
  return (path) => {
    for (let p = path; p !== ""; p = p.includes(".") ? p.slice(0, p.lastIndexOf(".")) : "") {
      const span = spans.get(p);
      if (span === undefined) continue;
      let s = starts.get(span.file);
      if (s === undefined) {
        s = lineStarts(texts.get(span.file) ?? "");
        starts.set(span.file, s);
      }
      return { file: display(span.file), ...lineColumn(s, span.start) };
    }
    return undefined;
  };
}
