/**
 * The no-change fast path of `fanc compile` (src/cli/compile-cache.ts): a second compile of
 * unchanged inputs answers from `node_modules/.cache/fan` without loading the compiler, and
 * any change to the inputs, the options or the output goes through the compiler again.
 */
import { existsSync, mkdirSync, readdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { captureIo, SHOP, TempDir } from "./helpers.js";

const temps: TempDir[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) t.cleanup();
});

/** A project folder with node_modules (where the cache lives), src/shop.fan and gen/. */
function project(): TempDir {
  const t = new TempDir();
  temps.push(t);
  mkdirSync(join(t.path, "node_modules"));
  t.write("src/shop.fan", SHOP);
  return t;
}

async function compile(t: TempDir, ...extra: string[]) {
  const io = captureIo();
  const code = await main(["compile", join(t.path, "src"), "--out", join(t.path, "gen"), ...extra], io);
  return { code, io };
}

const cacheFiles = (t: TempDir): string[] => {
  const dir = join(t.path, "node_modules/.cache/fan");
  return existsSync(dir) ? readdirSync(dir) : [];
};

describe("fanc compile, no change", () => {
  it("answers from the cache, and recompiles on an input edit, a removed output or other options", async () => {
    const t = project();
    const first = await compile(t);
    expect(first.code).toBe(0);
    expect(first.io.outText()).toMatch(/into 2 output files \(2 written, 0 unchanged, 0 removed\)/);
    expect(cacheFiles(t)).toHaveLength(1);

    const again = await compile(t);
    expect(again.code).toBe(0);
    expect(again.io.outText()).toMatch(/compiled 1 \.fan file into 2 output files \(0 written, 2 unchanged, 0 removed\)/);

    // An output file deleted by hand: the compiler runs and writes it again.
    unlinkSync(join(t.path, "gen/shop.ts"));
    const restored = await compile(t);
    expect(restored.io.outText()).toMatch(/\(1 written, 1 unchanged, 0 removed\)/);
    expect(t.read("gen/shop.ts")).toContain("export interface Line");

    // An edit: the new field reaches the output.
    t.write("src/shop.fan", SHOP.replace("qty: int = 1", "qty: int = 1\n  note?: string"));
    const edited = await compile(t);
    expect(edited.io.outText()).toMatch(/\(1 written, 1 unchanged, 0 removed\)/);
    expect(t.read("gen/shop.ts")).toContain("note?: string | undefined;");

    // A broken edit is never answered from the cache.
    t.write("src/shop.fan", "package shop\nstruct Line { sku: strin }\n");
    const broken = await compile(t);
    expect(broken.code).toBe(1);
    expect(broken.io.errText()).toContain("FAN0101");
  });

  it("prints a cached compile's warnings again, and --strict is a different compile", async () => {
    const t = project();
    // A decorator at the end of a line belongs to the next member: warning FAN0507.
    t.write("src/shop.fan", "package shop\nservice Svc {\n  rpc b(): int @idempotent\n  rpc c(): int\n}\n");
    const first = await compile(t);
    expect(first.code).toBe(0);
    const warning = first.io.errText();
    expect(warning).toContain("warning");
    const again = await compile(t);
    expect(again.io.errText()).toBe(warning);
    expect(again.io.outText()).toMatch(/\(0 written, \d+ unchanged, 0 removed, 1 warning\)/);
    const strict = await compile(t, "--strict");
    expect(strict.code).toBe(1);
  });

  it("keeps no cache where no node_modules is above the output", async () => {
    const t = new TempDir();
    temps.push(t);
    t.write("src/shop.fan", SHOP);
    expect((await compile(t)).code).toBe(0);
    expect((await compile(t)).io.outText()).toMatch(/\(0 written, 2 unchanged, 0 removed\)/);
    expect(existsSync(join(t.path, "node_modules"))).toBe(false);
  });
});
