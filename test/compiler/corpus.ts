/**
 * A synthetic program for speed measurements: `services` services of `methods` methods each,
 * plus `structs` structs, spread over packages of 50 declarations per file.
 */
import type { SourceInput } from "../../src/compiler/index.js";

/** Build the corpus (deterministic). */
export function syntheticCorpus(services = 500, methods = 10, structs = 2000): SourceInput[] {
  const files: SourceInput[] = [];
  const perFile = 50;
  for (let f = 0; f * perFile < structs; f++) {
    const lines = [`/// Types, part ${f}.`, `package corpus.types${f}`, ""];
    for (let i = f * perFile; i < Math.min(structs, (f + 1) * perFile); i++) {
      lines.push(
        `/// Struct ${i}.`,
        `struct S${i} {`,
        "  id: uuid",
        "  name: string @maxLength(100)",
        "  count: int = 0 @min(0)",
        "  tags: list<string> = []",
        `  price?: decimal @min(0)`,
        "}",
        "",
      );
    }
    files.push({ path: `types/t${f}.fan`, text: lines.join("\n") });
  }
  const typeFiles = Math.ceil(structs / perFile);
  for (let f = 0; f * perFile < services; f++) {
    const t = f % typeFiles;
    const lines = [`package corpus.svc${f}`, `import corpus.types${t} as types`, `version "1.${f}.0"`, ""];
    for (let s = f * perFile; s < Math.min(services, (f + 1) * perFile); s++) {
      lines.push(`@transports(http, amqp)`, `service Svc${s} {`, "  config { pageSize: int = 50 }");
      for (let m = 0; m < methods; m++) {
        const st = `types.S${t * perFile + ((s + m) % perFile)}`;
        lines.push(
          `  /// Method ${m}.`,
          `  @timeout(2s) @shard(storeId)`,
          `  rpc m${m}(storeId: string, item: ${st}, limit: int = 10 @min(1)): list<${st}>`,
        );
      }
      lines.push("  event changed(id: string)", "  state cache: map<string, string> @delta", "}", "");
    }
    files.push({ path: `svc/s${f}.fan`, text: lines.join("\n") });
  }
  return files;
}
