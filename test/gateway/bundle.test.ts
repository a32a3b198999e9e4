/**
 * `fan/browser` and a page built on it bundle for the browser with no Node built-ins: esbuild
 * with `platform: "browser"` fails on any `node:` (or bare built-in) import, and the metafile
 * lists every module that went in.
 */
import { expect, it } from "vitest";
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
