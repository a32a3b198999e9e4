// `npm run build` (also `prepare`, so `npm pack` and git installs build): compiles src/ to
// dist/ (ESM JavaScript, .d.ts, source maps with the sources inlined) from a clean folder, so
// a file deleted from src/ never lingers in the package, then stamps the build. A build that
// is already current is skipped (`--force` rebuilds anyway).
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { distIsCurrent, stamp } from "./dist-stamp.mjs";

if (!process.argv.includes("--force") && distIsCurrent()) {
  console.log("dist/ is current");
  process.exit(0);
}
const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
if (r.status !== 0) process.exit(r.status ?? 1);
writeFileSync(stamp, `${new Date().toISOString()}\n`);
