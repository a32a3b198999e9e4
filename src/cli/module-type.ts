/**
 * fan is ESM-only: the code `fanc compile` writes is ES modules, which TypeScript and Node read
 * as CommonJS when the nearest package.json of the output folder does not say
 * `"type": "module"` (tsc then fails with TS1295 and TS1287 in every generated file). `fanc
 * compile`, `--watch` and `fanc dev` warn once before compiling; this file finds what to say.
 * (Without verbatimModuleSyntax tsc compiles them to require() calls instead, which load an
 * ES module only on Node 20.19+ and 22.12+, and which fan is not built or tested for.)
 */
import { readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

/** The nearest package.json at or above `dir` (which may not exist yet), or undefined. */
function nearestPackageJson(dir: string): { path: string; text: string } | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const path = join(d, "package.json");
    try {
      return { path, text: readFileSync(path, "utf8") };
    } catch {
      if (dirname(d) === d) return undefined;
    }
  }
}

/**
 * The warning to print when the output folder `out` is in a CommonJS package, or undefined when
 * it is in an ESM one (or in no package at all: nothing to say of a loose folder).
 */
export function commonJsWarning(out: string, cwd = process.cwd()): string | undefined {
  const pkg = nearestPackageJson(out);
  if (pkg === undefined) return undefined;
  let type: unknown;
  try {
    type = (JSON.parse(pkg.text) as { type?: unknown }).type;
  } catch {
    return undefined; // npm and node report a broken package.json better
  }
  if (type === "module") return undefined;
  const shown = (p: string): string => {
    const rel = relative(cwd, p);
    return rel === "" ? "." : rel.startsWith("..") ? p : rel;
  };
  const has = type === undefined ? 'has no "type", so it is CommonJS' : `has "type": ${JSON.stringify(type)}`;
  return `fanc: warning: ${shown(pkg.path)} ${has}, but fan is ESM-only: ${shown(out)}/ is ES module code, which tsc rejects in a CommonJS package (TS1295, TS1287 under verbatimModuleSyntax) or turns into require() calls fan does not support. Set "type": "module" in ${shown(pkg.path)} (npm pkg set type=module; rename CommonJS .js files of your own to .cjs).`;
}
