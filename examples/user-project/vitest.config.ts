import { defineConfig } from "vitest/config";

// Only the sources: `npx tsc` also writes the tests, compiled, under dist/.
export default defineConfig({ test: { include: ["test/**/*.test.ts"] } });
