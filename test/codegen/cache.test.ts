import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GenerateCache, generate } from "../../src/codegen/index.js";
import { checkSources, type SourceInput } from "../../src/compiler/index.js";

const idl = resolve(dirname(fileURLToPath(import.meta.url)), "../../idl");
const original: SourceInput[] = ["integration/api.fan", "retail/common.fan", "retail/wines.fan", "trading/exchange.fan"].map((path) => ({
  path,
  text: readFileSync(join(idl, path), "utf8"),
}));

function edit(sources: readonly SourceInput[], path: string, from: string, to: string): SourceInput[] {
  return sources.map((s) => {
    if (s.path !== path) return s;
    if (!s.text.includes(from)) throw new Error(`${path} has no ${from}`);
    return { path, text: s.text.replace(from, to) };
  });
}

/** Generates with the cache and without; both must agree byte for byte. */
function both(cache: GenerateCache, sources: readonly SourceInput[]): Map<string, string> {
  const { model, diagnostics } = checkSources(sources);
  expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  if (model === undefined) throw new Error("no model");
  const texts = new Map(sources.map((s) => [s.path, s.text]));
  const cached = generate(model, { cache, sources: (p) => texts.get(p) });
  expect([...cached.entries()]).toEqual([...generate(model).entries()]);
  return cached;
}

describe("GenerateCache", () => {
  it("reuses every module of an unchanged program", () => {
    const cache = new GenerateCache();
    both(cache, original);
    expect(cache.stats).toEqual({ generated: 4, reused: 0 });
    both(cache, original);
    expect(cache.stats).toEqual({ generated: 0, reused: 4 });
  });

  it("regenerates only the edited package when what others use of it is unchanged", () => {
    const cache = new GenerateCache();
    both(cache, original);
    both(cache, edit(original, "retail/common.fan", "struct Money {", "struct Extra { a: int }\nstruct Money {"));
    expect(cache.stats).toEqual({ generated: 1, reused: 3 });
  });

  it("regenerates dependents when a declaration they reference changes kind", () => {
    const cache = new GenerateCache();
    const base = edit(original, "retail/common.fan", "struct Page {", "struct Level { n: int }\nstruct Page {");
    const user = edit(base, "trading/exchange.fan", "struct Level { price: decimal, quantity: int64 }", "struct Level { price: decimal, quantity: int64, tier?: retail.common.Level }");
    both(cache, user);
    const files = both(cache, edit(user, "retail/common.fan", "struct Level { n: int }", "enum Level { LOW, HIGH }"));
    expect(cache.stats).toEqual({ generated: 2, reused: 2 });
    expect(files.get("trading.ts")).toContain("tier?: retail_common.Level | undefined;");
  });

  it("regenerates a subscriber when the event it subscribes to changes, and agrees with a fresh generate", () => {
    const cache = new GenerateCache();
    both(cache, original);
    const files = both(cache, edit(original, "retail/wines.fan", "event wineChanged(wine: Wine)", "event wineChanged(wine: Wine, by?: string)"));
    expect(cache.stats).toEqual({ generated: 2, reused: 2 });
    expect(files.get("retail/wines.ts")).toContain("wineChanged: { wine: Wine; by?: string | undefined };");
    expect(files.get("integration/api.ts")).toContain('onWineChanged(event: retail_wines.PublicWinesEvents["wineChanged"]');
  });

  it("forgets removed packages and follows a package that comes back", () => {
    const cache = new GenerateCache();
    both(cache, original);
    const without = original.filter((s) => s.path !== "trading/exchange.fan");
    expect([...both(cache, without).keys()]).not.toContain("trading.ts");
    expect(both(cache, original).get("trading.ts")).toContain("export interface ExchangeHandler");
    expect(cache.stats.generated).toBeGreaterThanOrEqual(1);
  });
});
