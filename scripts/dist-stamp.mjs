// Whether dist/ is a build of the current sources: `dist/.stamp` (written last by
// scripts/build.mjs) is newer than every file under src/ and the build's tsconfig files.
// Used by bin/fanc.mjs inside the repository and by the build itself, which skips a build
// that is already current (so `npm pack` in the tests never swaps dist/ under a running fanc).
import { existsSync, readdirSync, statSync } from "node:fs";

const root = new URL("../", import.meta.url);
/** The file the build writes last. */
export const stamp = new URL("dist/.stamp", root);

/** The newest modification time under a folder (about 150 files: ~1 ms). */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(`${entry.parentPath ?? entry.path}/${entry.name}`).mtimeMs);
  }
  return latest;
}

/** True when dist/ was built after the last change to src/ (or to tsconfig.json, tsconfig.build.json). */
export function distIsCurrent() {
  if (!existsSync(stamp)) return false;
  const inputs = [newest(new URL("src/", root)), ...["tsconfig.json", "tsconfig.build.json"].map((f) => statSync(new URL(f, root)).mtimeMs)];
  return statSync(stamp).mtimeMs >= Math.max(...inputs);
}

