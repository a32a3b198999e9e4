#!/usr/bin/env node
// The `fanc` command. An installed package has only dist/ (compiled JavaScript) and runs it.
// In this repository, where src/ sits next to dist/, it runs dist/ only when `npm run build`
// is newer than every source file, and otherwise the TypeScript sources through tsx (a dev
// dependency), so an edit to the compiler is never hidden behind a stale build.
import { existsSync } from "node:fs";

const dist = new URL("../dist/cli/main.js", import.meta.url);
const src = new URL("../src/", import.meta.url);

let useDist = existsSync(dist);
if (useDist && existsSync(src)) {
  const { distIsCurrent } = await import("../scripts/dist-stamp.mjs");
  useDist = distIsCurrent();
}

let main;
if (useDist) {
  ({ main } = await import(dist.href));
} else if (existsSync(src)) {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import(new URL("cli/main.ts", src).href));
} else {
  console.error("fanc: dist/ is missing; run `npm run build` in the fan package");
  process.exit(2);
}
process.exitCode = await main(process.argv.slice(2));
