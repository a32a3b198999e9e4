/**
 * Program-wide checks on the service dependency graph: cycles of hard `depends` (named in
 * full, `A -> B -> A`) and dependencies whose declared version falls outside the asked range.
 */
import semver from "semver";
import type { Checker } from "./check-context.js";
import type { DependencyEdge } from "./check-services.js";
import { diag } from "./diagnostics.js";

/** Check every dependency edge of the program. */
export function checkDependencyGraph(c: Checker, edges: readonly DependencyEdge[]): void {
  checkVersions(c, edges);
  reportCycles(
    c,
    edges.filter((e) => !e.soft),
  );
}

function checkVersions(c: Checker, edges: readonly DependencyEdge[]): void {
  for (const e of edges) {
    const target = c.models.get(e.to);
    if (target?.kind !== "service" || semver.valid(target.version) === null) continue;
    if (!semver.satisfies(target.version, e.range, { includePrerelease: true })) {
      c.out.push(diag.dependencyVersionMismatch(e.rangeSpan, { name: e.to, version: target.version, range: e.range }));
    }
  }
}

/** Depth-first search without recursion; each back edge closes one cycle, reported once. */
function reportCycles(c: Checker, hard: readonly DependencyEdge[]): void {
  const next = new Map<string, DependencyEdge[]>();
  for (const e of hard) {
    const list = next.get(e.from) ?? [];
    list.push(e);
    next.set(e.from, list);
  }
  const state = new Map<string, "open" | "done">();
  const reported = new Set<string>();
  for (const start of [...next.keys()].sort()) {
    if (state.has(start)) continue;
    const path: string[] = [start];
    const cursor: number[] = [0];
    state.set(start, "open");
    while (path.length > 0) {
      const node = path[path.length - 1]!;
      const out = next.get(node) ?? [];
      const i = cursor[cursor.length - 1]!;
      if (i >= out.length) {
        state.set(node, "done");
        path.pop();
        cursor.pop();
        continue;
      }
      cursor[cursor.length - 1] = i + 1;
      const to = out[i]!.to;
      const s = state.get(to);
      if (s === "open") report(c, path.slice(path.indexOf(to)), hard, reported);
      else if (s === undefined) {
        state.set(to, "open");
        path.push(to);
        cursor.push(0);
      }
    }
  }
}

function report(c: Checker, cycle: readonly string[], hard: readonly DependencyEdge[], reported: Set<string>): void {
  let k = 0;
  for (let i = 1; i < cycle.length; i++) if (cycle[i]! < cycle[k]!) k = i;
  const rotated = [...cycle.slice(k), ...cycle.slice(0, k)];
  const key = rotated.join(" ");
  if (reported.has(key)) return;
  reported.add(key);
  const to = rotated[1] ?? rotated[0]!;
  const edge = hard.find((e) => e.from === rotated[0] && e.to === to)!;
  c.out.push(diag.dependencyCycle(edge.span, { cycle: [...rotated, rotated[0]!].join(" -> ") }));
}
