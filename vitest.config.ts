import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(`./src/${p}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Generated code imports the runtime by its package name, as users' code does.
    alias: {
      "fan/runtime": src("runtime/index.ts"),
      "fan/testing": src("testing/index.ts"),
      "fan/compiler": src("compiler/index.ts"),
      "fan/browser": src("browser/index.ts"),
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
  },
});
