/**
 * Reuse of generated modules between compiles (watch mode). A module is regenerated only when
 * its package's key changed (its source files, or its model when no sources are given) or
 * when something it read from another package changed (a referenced declaration's kind or
 * name, or a subscribed event's parameters).
 */
import type { PackageModel } from "../compiler/model.js";
import { declFingerprint, type ModuleContext } from "./module-context.js";
import type { ProgramIndex } from "./program-index.js";

interface Entry {
  readonly key: string;
  readonly deps: ReadonlyMap<string, string>;
  readonly text: string;
}

/** Source text by compile-root-relative path, when the caller has it. */
export type SourceLookup = (path: string) => string | undefined;

/** Generated modules of the last compile, by package name. */
export class GenerateCache {
  private readonly entries = new Map<string, Entry>();
  /** Modules generated and reused by the last `generate` call (for tests and benchmarks). */
  stats = { generated: 0, reused: 0 };

  /** The key of a package: its program context, declarations and source texts (or its model). */
  static key(index: ProgramIndex, pkg: PackageModel, sources: SourceLookup | undefined): string {
    const program = index.packages.map((p) => p.name).join(",");
    const texts = sources === undefined ? undefined : pkg.files.map((f) => sources(f));
    const own = texts === undefined || texts.some((t) => t === undefined) ? JSON.stringify(pkg) : texts.join("\u0000");
    return `${program}\u0001${pkg.files.join(",")}\u0001${pkg.decls.map((d) => d.fullName).join(",")}\u0001${own}`;
  }

  /** The cached text of a package's module, when its key and every dependency are unchanged. */
  lookup(index: ProgramIndex, pkg: string, key: string): string | undefined {
    const entry = this.entries.get(pkg);
    if (entry === undefined || entry.key !== key) return undefined;
    for (const [dep, fingerprint] of entry.deps) {
      if (current(index, dep) !== fingerprint) return undefined;
    }
    this.stats.reused++;
    return entry.text;
  }

  /** Remembers a freshly generated module. */
  store(ctx: ModuleContext, key: string, text: string): void {
    this.entries.set(ctx.pkg.name, { key, deps: new Map(ctx.deps), text });
    this.stats.generated++;
  }

  /** Forgets packages that are no longer in the program, and resets the stats. */
  begin(index: ProgramIndex): void {
    const names = new Set(index.packages.map((p) => p.name));
    for (const name of this.entries.keys()) if (!names.has(name)) this.entries.delete(name);
    this.stats = { generated: 0, reused: 0 };
  }
}

/** The current fingerprint of a recorded dependency, or undefined when it no longer resolves. */
function current(index: ProgramIndex, dep: string): string | undefined {
  try {
    const [kind, name] = [dep.slice(0, dep.indexOf(" ")), dep.slice(dep.indexOf(" ") + 1)];
    if (kind === "decl") return declFingerprint(index.decl(name));
    const dot = name.lastIndexOf(".");
    return JSON.stringify(index.event(name.slice(0, dot), name.slice(dot + 1)).params);
  } catch {
    return undefined;
  }
}
