/**
 * Every config file the docs show is one the IDL's `config {}` blocks take: each ```yaml block
 * of README.md and docs/*.md whose top-level keys are services of the repository's idl/ is
 * written to a file and read as a user would, by `fanc config get --file` (a child process:
 * exit 0, nothing on stderr, so no value is refused) and by the runtime's config decoder. The
 * discovery.md example (`cacheTtl: 1m`, `tick: 500ms`) was refused (user trial: "expected a
 * duration (a non-negative integer of milliseconds), got string "500ms"").
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IdlConfig } from "../../src/cli/idl-config.js";
import { configDecoder } from "../../src/runtime/discovery/live-config.js";
import { parseConfigText } from "../../src/runtime/discovery/yaml-config.js";
import { runFanc, TempDir } from "../cli/helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Each ```yaml block of the user docs, with the file it is in. */
function yamlBlocks(): { file: string; text: string }[] {
  const files = [
    "README.md",
    ...readdirSync(join(repo, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];
  return files.flatMap((file) =>
    [...readFileSync(join(repo, file), "utf8").matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)].map((m) => ({
      file,
      text: m[1] ?? "",
    })),
  );
}

describe("the docs' config files", () => {
  const tmp = new TempDir();
  let idl: IdlConfig;
  beforeAll(async () => {
    idl = await IdlConfig.load(join(repo, "idl"));
  });
  afterAll(() => tmp.cleanup());

  /** True when the IDL has a service of this full name. */
  const isService = (name: string): boolean => {
    try {
      return idl.service(name).fullName === name;
    } catch {
      return false;
    }
  };

  /** The blocks that are config files for the repository's IDL, by their top-level keys. */
  const configFiles = (): { file: string; text: string; sections: Record<string, Record<string, unknown>> }[] =>
    yamlBlocks().flatMap((b) => {
      let sections: Record<string, Record<string, unknown>>;
      try {
        sections = parseConfigText(b.text, b.file);
      } catch {
        return [];
      }
      const names = Object.keys(sections);
      return names.length > 0 && names.every(isService) ? [{ ...b, sections }] : [];
    });

  it("discovery.md's example decodes, its durations in milliseconds", () => {
    const found = configFiles();
    expect(found.map((f) => f.file)).toContain("docs/discovery.md");
    const decoded = Object.fromEntries(
      Object.entries(found.find((f) => f.file === "docs/discovery.md")?.sections ?? {}).map(([name, raw]) => [
        name,
        configDecoder(name, idl.configSchema(idl.service(name)))(raw),
      ]),
    );
    expect(decoded).toMatchObject({
      "retail.wines.PublicWines": { apiKey: "k-123", pageSize: 50, cacheTtl: 60_000 },
      "trading.Exchange": { symbols: ["WINE", "GRAPE", "CORK"], tick: 500 },
    });
  });

  it("fanc config get --file takes every one of them without a remark", async () => {
    const found = configFiles();
    expect(found.length).toBeGreaterThan(0);
    for (const [i, f] of found.entries()) {
      tmp.write(`example-${i}.yml`, f.text);
      for (const name of Object.keys(f.sections)) {
        const ran = await runFanc(["config", "get", name, "--file", `${tmp.path}/example-${i}.yml`, "--idl", "idl"]);
        expect({ where: f.file, name, code: ran.code, stderr: ran.stderr }).toEqual({
          where: f.file,
          name,
          code: 0,
          stderr: "",
        });
      }
    }
  }, 120_000);
});
