/**
 * docs/testing.md is real: every ts block is preceded by `<!-- file: path -->` and equals that
 * file, and importing the files here runs their tests (`npm run typecheck` checks their types,
 * `@ts-expect-error` lines included).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import "../../examples/testing/dependency.test.js";
import "../../examples/testing/events-states.test.js";
import "../../examples/testing/mistakes.test.js";
import "../../examples/testing/pushes.test.js";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string): string => readFileSync(join(repo, path), "utf8");

describe("docs/testing.md", () => {
  it("quotes every ts block from a file, verbatim", () => {
    const lines = read("docs/testing.md").split("\n");
    const quoted: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      if (!/^```ts\s*$/.test(lines[i] ?? "")) continue;
      const marker = /^<!-- file: (\S+) -->$/.exec(lines[i - 1] ?? "");
      expect(marker, `docs/testing.md:${i + 1} has no file marker`).not.toBeNull();
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== "```"; i++) body.push(lines[i] ?? "");
      const file = marker?.[1] ?? "";
      expect(`${body.join("\n")}\n`, `docs/testing.md:${i + 1} quotes ${file}`).toBe(read(file));
      quoted.push(file);
    }
    expect(quoted.length).toBeGreaterThanOrEqual(1);
  });
});
