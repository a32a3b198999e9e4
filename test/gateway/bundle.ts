/** Bundling for the browser with esbuild (vite and vitest bring it), as a web app's build would. */
import { build } from "esbuild";
import { repo } from "./helpers.js";

/** Bundles `entry` for the browser; returns the code and the modules it contains. */
export async function bundleForBrowser(entry: string): Promise<{ code: string; inputs: string[] }> {
  const r = await build({
    entryPoints: [`${repo}/${entry}`],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
    alias: { "fan/browser": `${repo}/src/browser/index.ts` },
  });
  return { code: (r.outputFiles[0] as { text: string }).text, inputs: Object.keys(r.metafile.inputs) };
}

