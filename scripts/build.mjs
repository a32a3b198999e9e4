// `npm run build` (and `prepare`, so `npm pack` and git installs build too): compiles src/ to
// dist/ (ESM JavaScript, .d.ts, source maps with the sources inlined) from a clean folder, so
// a file deleted from src/ never lingers in the package, then stamps the build for
// bin/fanc.mjs, which runs dist/ only when the stamp is newer than every source file.
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
if (r.status !== 0) process.exit(r.status ?? 1);
writeFileSync(new URL("../dist/.stamp", import.meta.url), `${new Date().toISOString()}\n`);
