/** Hostile input: every case returns diagnostics (never a stack trace) in bounded time. */
import { describe, expect, it } from "vitest";
import type { SourceFile } from "../../src/compiler/ast.js";
import { checkProgram } from "../../src/compiler/checker.js";
import { checkSources, formatDiagnostics } from "../../src/compiler/index.js";
import { parseFile } from "../../src/compiler/parser.js";
import { src } from "./helpers.js";

/** Deterministic pseudo-random bytes as a string (each char 1..255: a NUL would make it a binary file, FAN0012). */
function garbage(length: number, seed = 1): string {
  let x = seed;
  const out = new Array<string>(length);
  for (let i = 0; i < length; i++) {
    x = (x * 1_103_515_245 + 12_345) & 0x7fffffff;
    out[i] = String.fromCharCode(x & 0xff || 1);
  }
  return out.join("");
}

/**
 * Checks `text`: no internal error, printable diagnostics, and done within `boundMs`. The bound
 * is generous — a 10 MB file took 66-93 s on this 2-core machine at load average 26 (other
 * suites running), a small one milliseconds — so load never fails it, while a quadratic or
 * runaway case (hours on 10 MB) still does.
 */
function run(text: string, path = "x.fan", boundMs = text.length > 1024 * 1024 ? 180_000 : 10_000) {
  const t0 = performance.now();
  const r = checkSources([{ path, text }]);
  const ms = performance.now() - t0;
  expect(ms, `checking ${text.length} characters took ${Math.round(ms)} ms`).toBeLessThan(boundMs);
  expect(r.diagnostics.filter((d) => d.code === "FAN0999")).toEqual([]);
  expect(() => formatDiagnostics(r.diagnostics, [{ path, text }])).not.toThrow();
  return { ...r, ms };
}

describe("robustness", () => {
  it("reads binary garbage as errors", () => {
    const r = run(garbage(256 * 1024));
    expect(r.model).toBeUndefined();
    expect(r.diagnostics.length).toBeGreaterThan(0);
    expect(r.diagnostics.length).toBeLessThanOrEqual(210);
  });

  it("reports a file with a NUL byte near its start once, as binary (FAN0012), without lexing it", () => {
    const binary = `package p\n\u0000${garbage(64 * 1024, 3)}`;
    const r = run(binary, "logo.fan");
    expect(r.diagnostics.map((d) => [d.code, d.span.start, d.message])).toEqual([
      ["FAN0012", 10, "not a text file (NUL byte at offset 10); .fan files are UTF-8 text"],
    ]);
    // A NUL far into a text file is an ordinary stray character.
    const late = run(src("package p", `struct S { a: int }${" ".repeat(9000)}\u0000`));
    expect(late.diagnostics.map((d) => d.code)).toEqual(["FAN0001"]);
  });

  it("handles 10 MB of garbage", () => {
    const r = run(garbage(10 * 1024 * 1024, 7));
    expect(r.diagnostics.some((d) => d.code === "FAN0010")).toBe(true);
  }, 240_000);

  it("checks a 10 MB file of declarations", () => {
    const lines = ["package big"];
    let size = 0;
    for (let i = 0; size < 10 * 1024 * 1024; i++) {
      const line = `struct S${i} { a: int = ${i}, b: string @maxLength(10), c?: list<S${i}> }`;
      lines.push(line);
      size += line.length + 1;
    }
    const r = run(lines.join("\n"));
    expect(r.diagnostics).toEqual([]);
    expect(r.model!.packages[0]!.decls.length).toBe(lines.length - 1);
  }, 240_000);

  it.each([
    ["types", (n: number) => `struct S { a: ${"list<".repeat(n)}int${">".repeat(n)} }`],
    ["unclosed types", (n: number) => `struct S { a: ${"list<".repeat(n)}`],
    ["lists", (n: number) => `struct S { a: json = ${"[".repeat(n)}${"]".repeat(n)} }`],
    ["decorator arguments", (n: number) => `struct S { a: int @x(${"[".repeat(n)}) }`],
    ["braces", (n: number) => "{".repeat(n)],
  ])("reports nesting of %s 10,000 deep as FAN0006", (_name, make) => {
    const r = run(src("package p", make(10_000)));
    expect(r.diagnostics.filter((d) => d.code === "FAN0006")).toHaveLength(1);
  });

  it("reports unterminated strings and comments at the end of input", () => {
    expect(run('package p\nversion "1.0.0').diagnostics.map((d) => d.code)).toEqual(["FAN0002"]);
    expect(run("package p\n/*").diagnostics.map((d) => d.code)).toEqual(["FAN0003"]);
    expect(run('package p\nstruct S { a: string = "\\').diagnostics.map((d) => d.code)).toContain("FAN0002");
  });

  it("accepts CRLF line ends, a BOM, tabs and non-ASCII text", () => {
    run(`\uFEFFpackage p\r\n/// Caf\u00e9 \u2615\r\nstruct S {\r\n\ta: string = "\u00e9\u{1F377}"\r\n}\r\n`);
    expect(run(`\uFEFFpackage p\r\nstruct S {\r\n\ta: string = "\u00e9"\r\n}\r\n`).model).toBeDefined();
  });

  it("turns an exception inside the checker into FAN0999 at the declaration being checked, and checks the rest", () => {
    const good = parseFile("a.fan", src("package p", "struct A { x: Nope }")).ast;
    const text = src("package p", "struct B {}");
    const broken = parseFile("b.fan", text).ast;
    const struct = broken.decls[0]!;
    const corrupt: SourceFile = { ...broken, decls: [{ ...struct, fields: null } as unknown as typeof struct] };
    const r = checkProgram([good, corrupt]);
    const internal = r.diagnostics.filter((d) => d.code === "FAN0999");
    expect(internal).toHaveLength(1);
    expect(internal[0]!.span).toMatchObject({ file: "b.fan", start: text.indexOf("struct B") });
    expect(r.diagnostics.map((d) => d.code)).toContain("FAN0101");
  });

  it("turns an exception inside the parser into FAN0999 instead of throwing", () => {
    const r = parseFile("x.fan", null as unknown as string);
    expect(r.diagnostics.map((d) => d.code)).toEqual(["FAN0999"]);
    expect(checkSources([{ path: "x.fan", text: 42 as unknown as string }]).diagnostics.map((d) => d.code)).toContain(
      "FAN0999",
    );
  });
});
