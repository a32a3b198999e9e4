/**
 * `fan/browser` and a page built on it bundle for the browser with no Node built-ins: esbuild
 * with `platform: "browser"` fails on any `node:` (or bare built-in) import, and the metafile
 * lists every module that went in.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { runFanc, TempDir } from "../cli/helpers.js";
import { repo } from "./helpers.js";
import { bundleForBrowser } from "./bundle.js";

it("fan/browser bundles for the browser without Node built-ins or Node-only modules", async () => {
  const { code, inputs } = await bundleForBrowser("src/browser/index.ts");
  expect(inputs.filter((i) => i.startsWith("node:") || i.includes("node_modules"))).toEqual([]);
  // None of the runtime's Node side came along (transports, discovery, AsyncLocalStorage, pino).
  expect(inputs.filter((i) => /runtime\/(transports|discovery|app|call|telemetry)\//.test(i))).toEqual([]);
  expect(code).not.toMatch(/from ?["']node:|require\(["']node:/);
  console.log(`fan/browser: ${inputs.length} modules, ${(code.length / 1024).toFixed(1)} KiB unminified`);
});

it("a page using the code of fanc compile --target browser bundles the same way", async () => {
  const { code, inputs } = await bundleForBrowser("test/gateway/fixtures/page.ts");
  expect(inputs.filter((i) => i.startsWith("node:") || i.includes("node_modules"))).toEqual([]);
  expect(inputs).toContain("test/gateway/fixtures/web/fan/gw.ts");
  expect(code).toContain("fanTest");
});

it("fanc compile --target browser writes the committed browser modules (importing fan/browser)", async () => {
  const t = new TempDir();
  try {
    const r = await runFanc(["compile", "test/gateway/fixtures/idl", "--target", "browser", "--out", t.path]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const text = t.read("fan/gw.ts") as string;
    expect(text).toBe(readFileSync(join(repo, "test/gateway/fixtures/web/fan/gw.ts"), "utf8"));
    expect(text).toContain('} from "fan/browser";');
    expect(text).not.toContain("fan/runtime");
    const bad = await runFanc(["compile", "test/gateway/fixtures/idl", "--target", "deno", "--out", t.path]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--target is node or browser, got "deno"');
  } finally {
    t.cleanup();
  }
}, 60_000);
