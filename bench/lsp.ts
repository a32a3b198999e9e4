/**
 * `npm run bench -- lsp`: the language server (`fanc lsp`, over stdio as an editor runs it) on
 * the compile benchmark's corpus: 100 packages, 500 services, 2,000 structs.
 *
 * Cases: a keystroke in a doc comment (no file's interface changes: only that file is parsed
 * and re-checked) and a keystroke that adds a field (an interface changes: every file is
 * re-checked) — each timed from `didChange` to the server's `fan/checked` after it published
 * the diagnostics; hover and completion latency on a method of the edited file. Targets: p50
 * keystroke→diagnostics < 50 ms, hover/completion < 20 ms (ratio = p50 / target).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { LspClient } from "../test/lsp/client.js";
import { fanFile } from "./compile.js";
import type { BenchRow } from "./lib.js";

const PACKAGES = 100;
const EDITED = 50;
const pkg = (p: number): string => `p${String(p).padStart(3, "0")}`;

function row(name: string, ms: number[], targetMs: number, note: string): BenchRow {
  const sorted = [...ms].sort((a, b) => a - b);
  const q = (x: number): number => sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))]!;
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  return { case: name, opsPerSec: 1000 / mean, p50Ms: q(0.5), p99Ms: q(0.99), ratio: q(0.5) / targetMs, note };
}

export default async function lspBench(): Promise<BenchRow[]> {
  console.log(`load average: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const dir = mkdtempSync(join(tmpdir(), "fan-bench-lsp-"));
  mkdirSync(join(dir, "idl"));
  for (let p = 0; p < PACKAGES; p++) writeFileSync(join(dir, "idl", `${pkg(p)}.fan`), fanFile(p));
  const c = await LspClient.startIn(dir);
  const rel = `idl/${pkg(EDITED)}.fan`;
  const base = fanFile(EDITED);
  try {
    let t0 = performance.now();
    await c.open(rel, base);
    await c.until(() => c.checks.length > 0, "the first check", 120_000);
    console.log(`first check of ${PACKAGES} files: ${(performance.now() - t0).toFixed(0)} ms (server: ${c.checks[0]!.ms.toFixed(0)} ms)`);

    const keystrokes = async (n: number, text: (i: number) => string): Promise<{ ms: number[]; rechecked: number }> => {
      const ms: number[] = [];
      let rechecked = 0;
      for (let i = 0; i < n; i++) {
        t0 = performance.now();
        await c.change(rel, text(i));
        const done = await c.checkedNow(rel);
        ms.push(performance.now() - t0);
        rechecked = done.rechecked.length;
      }
      return { ms, rechecked };
    };
    const doc = await keystrokes(40, (i) => base.replace(`/// Service 0 of package ${EDITED}.`, `/// Service 0 of package ${EDITED}. ${"x".repeat(i + 1)}`));
    const field = await keystrokes(15, (i) => fanFile(EDITED, `f${"x".repeat(i + 1)}`));
    await c.change(rel, base);
    await c.checkedNow(rel);

    const lines = base.split("\n");
    const line = lines.findIndex((l) => l.includes("rpc m3("));
    const character = lines[line]!.indexOf("m3") + 1;
    const timed = async (n: number, op: () => Promise<unknown>): Promise<number[]> => {
      for (let i = 0; i < 5; i++) await op();
      const ms: number[] = [];
      for (let i = 0; i < n; i++) {
        t0 = performance.now();
        await op();
        ms.push(performance.now() - t0);
      }
      return ms;
    };
    const hover = await timed(100, () => c.request("textDocument/hover", { textDocument: { uri: c.uri(rel) }, position: { line, character } }));
    const fieldLine = lines.findIndex((l) => l.includes("  name: string @maxLength(100)"));
    const completion = await timed(100, () =>
      c.request("textDocument/completion", { textDocument: { uri: c.uri(rel) }, position: { line: fieldLine, character: 8 } }),
    );
    return [
      row("keystroke→diagnostics (doc comment)", doc.ms, 50, `target p50 < 50 ms; re-checked ${doc.rechecked} of ${PACKAGES} files`),
      row("keystroke→diagnostics (new field)", field.ms, 50, `target p50 < 50 ms; re-checked ${field.rechecked} of ${PACKAGES} files`),
      row("hover (rpc)", hover, 20, "target p50 < 20 ms"),
      row("completion (type position)", completion, 20, "target p50 < 20 ms"),
    ];
  } finally {
    await c.stop();
    console.log(`load average: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  }
}
