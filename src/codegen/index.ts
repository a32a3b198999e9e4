/**
 * The code generator: a checked `ProgramModel` in, TypeScript modules out (one per package
 * plus `index.ts`), as a map of output-relative path to file text. Pure and deterministic:
 * the same model gives the same bytes. The shapes are specified in docs/generated-code.md.
 */
import type { DeclModel, PackageModel, ProgramModel } from "../compiler/model.js";
import { emitService } from "./emit-service.js";
import { emitEnum, emitError, emitStruct, emitUnion } from "./emit-types.js";
import { GenerateCache, type SourceLookup } from "./cache.js";
import { ModuleContext, RUNTIME_MODULE } from "./module-context.js";
import { importSpecifier, str } from "./names.js";
import { INDEX_PATH, ProgramIndex } from "./program-index.js";
import { header, newWriter, writeDoc } from "./writer.js";
import type CodeBlockWriter from "code-block-writer";

export { GenerateCache, type SourceLookup } from "./cache.js";
export { CodegenCode, CodegenError } from "./errors.js";
export { HEADER_PREFIX, isGeneratedText } from "./writer.js";
export { INDEX_PATH } from "./program-index.js";

/** Options of `generate`. */
export interface GenerateOptions {
  /** Reuse modules of unchanged packages from the previous call (watch mode). */
  readonly cache?: GenerateCache;
  /** Source texts by path: a cheaper cache key than the package's model. */
  readonly sources?: SourceLookup;
  /**
   * `browser`: modules import `fan/browser` (a runtime without Node built-ins whose clients
   * call a `fanc gateway` over fetch and EventSource) instead of `fan/runtime`. Default `node`.
   */
  readonly target?: Target;
}

/** Where generated code runs: Node (`fan/runtime`) or a browser (`fan/browser`). */
export type Target = "node" | "browser";

/** The runtime module of each target. */
export const TARGET_MODULES: Readonly<Record<Target, string>> = { node: RUNTIME_MODULE, browser: "fan/browser" };

/** Generates every output file of a program: relative path (`retail/wines.ts`) → text. Throws `CodegenError` only. */
export function generate(model: ProgramModel, opts: GenerateOptions = {}): Map<string, string> {
  const index = new ProgramIndex(model);
  const cache = opts.cache;
  cache?.begin(index);
  const out = new Map<string, string>();
  for (const pkg of index.packages) {
    const key = cache === undefined ? "" : GenerateCache.key(index, pkg, opts.sources);
    const reused = cache?.lookup(index, pkg.name, key);
    if (reused !== undefined) {
      out.set(index.pathOf(pkg.name), forTarget(reused, opts.target));
      continue;
    }
    const ctx = new ModuleContext(index, pkg);
    const text = generateModule(ctx);
    cache?.store(ctx, key, text);
    out.set(ctx.path, forTarget(text, opts.target));
  }
  out.set(INDEX_PATH, generateIndex(index));
  return out;
}

/** A module's text for `target`: the same code, importing the target's runtime module. */
function forTarget(text: string, target: Target | undefined): string {
  if (target === undefined || target === "node") return text;
  return text.replace(`} from ${str(RUNTIME_MODULE)};`, `} from ${str(TARGET_MODULES[target])};`);
}

/** Data declarations first (source order), then services, which reference their errors by value. */
function emitOrder(decls: readonly DeclModel[]): DeclModel[] {
  return [...decls.filter((d) => d.kind !== "service"), ...decls.filter((d) => d.kind === "service")];
}

function emitDecl(w: CodeBlockWriter, ctx: ModuleContext, decl: DeclModel): void {
  switch (decl.kind) {
    case "struct":
      emitStruct(w, ctx, decl);
      break;
    case "enum":
      emitEnum(w, ctx, decl);
      break;
    case "union":
      emitUnion(w, ctx, decl);
      break;
    case "error":
      emitError(w, ctx, decl);
      break;
    case "service":
      emitService(w, ctx, decl);
      break;
  }
}

function generateModule(ctx: ModuleContext): string {
  const body = newWriter();
  for (const decl of emitOrder(ctx.pkg.decls)) {
    if (body.getLength() > 0) body.blankLineIfLastNot();
    emitDecl(body, ctx, decl);
  }
  const head = newWriter();
  head.writeLine(header(ctx.pkg.files));
  writeDoc(head, { doc: ctx.pkg.doc ?? `The ${ctx.pkg.name} package.` });
  const imports = ctx.importLines();
  if (imports.length > 0) {
    head.blankLine();
    for (const line of imports) head.writeLine(line);
  }
  return `${head.toString()}${body.getLength() > 0 ? `\n${body.toString()}` : ""}`;
}

function packageSources(pkgs: readonly PackageModel[]): string[] {
  return pkgs.flatMap((p) => p.files).sort();
}

function generateIndex(index: ProgramIndex): string {
  const w = newWriter();
  const files = packageSources(index.packages);
  w.writeLine(header(files.length > 20 ? [`${files.length} files`] : files));
  w.writeLine("/** Every generated package, each under its namespace. */");
  for (const pkg of index.packages) {
    w.writeLine(`export * as ${index.aliasOf(pkg.name)} from ${str(importSpecifier(INDEX_PATH, index.pathOf(pkg.name)))};`);
  }
  if (index.packages.length === 0) w.writeLine("export {};");
  return w.toString();
}
