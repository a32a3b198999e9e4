/** The diagnostic table, its documentation, its test coverage, and how diagnostics print. */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { diag, diagnosticTable, lineColumn, lineStarts, sortDiagnostics } from "../../src/compiler/diagnostics.js";
import { checkSources, formatDiagnostic, formatDiagnostics } from "../../src/compiler/index.js";
import { TRANSPORT_NAMES } from "../../src/compiler/model.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const table = diagnosticTable();

function testFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((p) => p.endsWith(".test.ts") && !p.endsWith("diagnostics.test.ts"))
    .map((p) => join(dir, p));
}

describe("diagnostic table", () => {
  it("has unique, well-formed codes and names; warnings live in FAN05xx", () => {
    expect(new Set(table.map((d) => d.code)).size).toBe(table.length);
    expect(new Set(table.map((d) => d.name)).size).toBe(table.length);
    for (const d of table) {
      expect(d.code).toMatch(/^FAN\d{4}$/);
      expect(d.severity === "warning", d.code).toBe(d.code.startsWith("FAN05"));
      expect(d.help.length, d.code).toBeGreaterThan(10);
    }
  });

  it("agrees with docs/diagnostics.md: every code documented with its name and severity, nothing extra", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../docs/diagnostics.md", import.meta.url)), "utf8");
    const headings = [...doc.matchAll(/^### (FAN\d{4}) (\w+) \((error|warning)\)$/gm)].map((m) => ({
      code: m[1],
      name: m[2],
      severity: m[3],
    }));
    expect(headings).toEqual(table.map((d) => ({ code: d.code, name: d.name, severity: d.severity })));
  });

  it("agrees with docs/diagnostics.md on every message, and on the transports' order", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../docs/diagnostics.md", import.meta.url)), "utf8");
    for (const d of table) {
      const section = doc.slice(doc.indexOf(`### ${d.code} `));
      expect(/^Message: (`+) ?(.*?) ?\1$/m.exec(section)?.[2], d.code).toBe(d.message);
    }
    expect(doc).toContain(`listed in the fixed order ${TRANSPORT_NAMES.join(", ")}.`);
  });

  it("has at least one test per code (each code is expected to be reported by a compiler test)", () => {
    const text = testFiles(here)
      .map((f) => readFileSync(f, "utf8"))
      .join("\n");
    // Only an assertion that the code IS reported counts: an `expectDiagnostics` triple
    // (`["FAN0101", 3, 5`), `.toBe("FAN0101")` or `.toEqual(["FAN0101"`; a mention in
    // `.not.toBe(...)`, a filter or a comment does not.
    const asserted = (code: string) =>
      new RegExp(`\\[\\[?"${code}", \\d|(?<!not\\.)toBe\\("${code}"\\)|toEqual\\(\\[\\[?"${code}"`).test(text);
    const untested = table.map((d) => d.code).filter((code) => !asserted(code));
    expect(untested).toEqual([]);
  });

  it("builds messages from the templates with typed constructors", () => {
    const span = { file: "a.fan", start: 3, end: 7 };
    expect(diag.unknownType(span, { name: "Wyne", hint: "" })).toEqual({
      code: "FAN0101",
      severity: "error",
      message: "unknown type `Wyne`",
      span,
    });
    expect(diag.unknownType(span, { name: "Wyne", hint: "; did you mean `Wine`?" }).message).toBe(
      "unknown type `Wyne`; did you mean `Wine`?",
    );
    expect(diag.unusedImport(span, { pkg: "a.b" }).severity).toBe("warning");
    expect(diag.missingPackage(span).message).toBe("missing `package` line; every file starts with `package name`");
  });

  it("sorts by file, then offset, then code", () => {
    const at = (file: string, start: number) => ({ file, start, end: start });
    const sorted = sortDiagnostics([
      diag.emptyEnum(at("b.fan", 1), { name: "E" }),
      diag.unknownType(at("a.fan", 9), { name: "X", hint: "" }),
      diag.emptyUnion(at("a.fan", 2), { name: "U" }),
      diag.emptyEnum(at("a.fan", 2), { name: "E" }),
    ]);
    expect(sorted.map((d) => [d.span.file, d.span.start, d.code])).toEqual([
      ["a.fan", 2, "FAN0207"],
      ["a.fan", 2, "FAN0212"],
      ["a.fan", 9, "FAN0101"],
      ["b.fan", 1, "FAN0207"],
    ]);
  });
});

describe("formatting", () => {
  it("prints file:line:col, the source line and a caret under the span", () => {
    const text = "package p\nstruct S {\n  price: Wyne\n}\n";
    const [d] = checkSources([{ path: "retail/wines.fan", text }]).diagnostics;
    expect(formatDiagnostic(d!, text)).toBe(
      "retail/wines.fan:3:10: error FAN0101: unknown type `Wyne`\n  price: Wyne\n         ^^^^",
    );
  });

  it("counts a tab as one column and keeps tabs in the caret line so it lines up", () => {
    const text = "package p\nstruct S {\n\t\tprice: Wyne\n}";
    const [d] = checkSources([{ path: "t.fan", text }]).diagnostics;
    expect(formatDiagnostic(d!, text)).toBe(
      "t.fan:3:10: error FAN0101: unknown type `Wyne`\n\t\tprice: Wyne\n\t\t       ^^^^",
    );
  });

  it("handles CRLF and lone CR line ends", () => {
    const text = "package p\r\nstruct S {\r\r\n  a: Nope\r\n}";
    const [d] = checkSources([{ path: "c.fan", text }]).diagnostics;
    expect(formatDiagnostic(d!, text)).toBe("c.fan:4:6: error FAN0101: unknown type `Nope`\n  a: Nope\n     ^^^^");
    expect(lineColumn(lineStarts("a\rb\r\nc\nd"), 7)).toEqual({ line: 4, column: 1 });
  });

  it("puts one caret at the end of input and at empty spans", () => {
    const text = "package p\nstruct S";
    const [d] = checkSources([{ path: "e.fan", text }]).diagnostics;
    expect(formatDiagnostic(d!, text)).toBe(
      "e.fan:2:9: error FAN0005: expected `{` but found end of file\nstruct S\n        ^",
    );
    // A bracket left open is reported where it opens, not at the end of the file.
    const open = "package p\nstruct S { a: int";
    const [o] = checkSources([{ path: "e.fan", text: open }]).diagnostics;
    expect(formatDiagnostic(o!, open)).toBe(
      "e.fan:2:10: error FAN0005: expected `}` but found end of file: this `{` is never closed\nstruct S { a: int\n         ^",
    );
    expect(formatDiagnostic(diag.missingPackage({ file: "m.fan", start: 0, end: 0 }), "")).toBe(
      "m.fan:1:1: error FAN0007: missing `package` line; every file starts with `package name`\n\n^",
    );
  });

  it("shows a window of a very long line around the column, and no control characters", () => {
    const text = `package p\nstruct S { ${"a: int, ".repeat(100)}b: Nope\u0007 }`;
    const [d] = checkSources([{ path: "l.fan", text }]).diagnostics.filter((x) => x.code === "FAN0101");
    const [head, line, caret] = formatDiagnostic(d!, text).split("\n");
    expect(head).toBe("l.fan:2:815: error FAN0101: unknown type `Nope`");
    expect(line!.length).toBeLessThanOrEqual(200);
    expect(line!.slice(caret!.indexOf("^"), caret!.indexOf("^") + 4)).toBe("Nope");
    expect(line).not.toContain("\u0007");
  });

  it("formats many diagnostics of many files, one after another", () => {
    const sources = [
      { path: "a.fan", text: "package a\nstruct A { x: X }" },
      { path: "b.fan", text: "struct B {}" },
    ];
    const out = formatDiagnostics(checkSources(sources).diagnostics, sources);
    expect(out).toBe(
      "a.fan:2:15: error FAN0101: unknown type `X`\nstruct A { x: X }\n              ^\nb.fan:1:1: error FAN0007: missing `package` line; every file starts with `package name`\nstruct B {}\n^\n",
    );
    expect(formatDiagnostics([], sources)).toBe("");
  });
});
