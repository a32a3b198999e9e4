/**
 * `fanc check` FAN1052 since-missing: a method added within a major without `@since` later than
 * the version it is compared against reaches old instances during a rollout (UNIMPLEMENTED), so
 * it is a warning that names the member and the `@since` to write, and fails `--strict`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { run as check } from "../../src/cli/check.js";
import { compareModels } from "../../src/compiler/compat.js";
import { checkSources, type ProgramModel } from "../../src/compiler/index.js";

const idl = (version: string, members = ""): string => `package shop
version "${version}"
service Cellar {
  rpc get(id: string): int
${members}}
`;

function model(text: string): ProgramModel {
  const r = checkSources([{ path: "shop.fan", text }]);
  if (r.model === undefined) throw new Error(JSON.stringify(r.diagnostics.map((d) => d.message)));
  return r.model;
}

const found = (before: string, after: string, strict = false) => {
  const report = compareModels(model(before), model(after), { strict });
  return { report, since: report.changes.filter((c) => c.kind === "since-missing") };
};

describe("fanc check: a method added without @since (FAN1052)", () => {
  it("an rpc added in a minor without @since: a warning naming it and the @since to write; fails only with --strict", () => {
    const { report, since } = found(idl("1.0.0"), idl("1.1.0", "  rpc count(): int\n"));
    expect(since.map((c) => [c.code, c.severity, c.breaking, c.path])).toEqual([
      ["FAN1052", "warning", false, "shop.Cellar.count"],
    ]);
    expect(since[0]?.message).toBe(
      'rpc shop.Cellar.count was added without @since: clients built on this IDL may call it on instances still at 1.0.0, which answer UNIMPLEMENTED; mark it @since("1.1.0")',
    );
    expect(report.failed).toBe(false);
    expect(report.services[0]?.warnings.map((c) => c.code)).toEqual(["FAN1052"]);
    expect(found(idl("1.0.0"), idl("1.1.0", "  rpc count(): int\n"), true).report.failed).toBe(true);
  });

  it("a push too", () => {
    const { since } = found(idl("1.0.0"), idl("1.0.1", "  push touch(id: string)\n"));
    expect(since.map((c) => c.message)).toEqual([
      'push shop.Cellar.touch was added without @since: clients built on this IDL may call it on instances still at 1.0.0, which answer UNIMPLEMENTED; mark it @since("1.0.1")',
    ]);
  });

  it("@since not later than the old version is no protection: old instances are still picked", () => {
    const { since, report } = found(idl("1.1.0"), idl("1.2.0", '  @since("1.1.0") rpc count(): int\n'), true);
    expect(since.map((c) => c.message)).toEqual([
      'rpc shop.Cellar.count was added with @since("1.1.0"), not later than 1.1.0: clients built on this IDL may call it on instances still at 1.1.0, which answer UNIMPLEMENTED; mark it @since("1.2.0")',
    ]);
    expect(report.failed).toBe(true);
  });

  it("the version not bumped: says to bump it and which @since to write", () => {
    const { since } = found(idl("1.0.0"), idl("1.0.0", "  rpc count(): int\n"));
    expect(since.map((c) => c.message)).toEqual([
      'rpc shop.Cellar.count was added without @since and the version is still 1.0.0: clients built on this IDL may call it on instances still at 1.0.0, which answer UNIMPLEMENTED; bump the version to 1.1.0 and mark it @since("1.1.0")',
    ]);
  });

  it("no warning with @since later than the old version (also one between it and the new), after a major bump, or for a new service", () => {
    expect(found(idl("1.0.0"), idl("1.1.0", '  @since("1.1.0") rpc count(): int\n'), true).report.failed).toBe(false);
    expect(found(idl("1.0.0"), idl("1.3.0", '  @since("1.2.0") rpc count(): int\n'), true).since).toEqual([]);
    expect(found(idl("1.0.0"), idl("2.0.0", "  rpc count(): int\n"), true).report.failed).toBe(false);
    const other = `${idl("1.1.0")}service Till { rpc total(): int }\n`;
    expect(found(idl("1.0.0"), other, true).since).toEqual([]);
  });

  it("the command: --strict exits 1 and the warning is located at the new method", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fanc-since-"));
    try {
      const write = (sub: string, text: string): string => {
        mkdirSync(join(dir, sub), { recursive: true });
        writeFileSync(join(dir, sub, "shop.fan"), text);
        return join(dir, sub);
      };
      const old = write("old", idl("1.0.0"));
      const now = write("new", idl("1.1.0", "  @idempotent\n  rpc count(): int\n"));
      const out: string[] = [];
      const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
      expect(await check([now, "--against", old], io)).toBe(0);
      expect(await check([now, "--against", old, "--strict"], io)).toBe(1);
      const text = out.join("\n");
      expect(text).toContain("shop.Cellar 1.0.0 → 1.1.0: warnings (FAIL with --strict)");
      expect(text).toContain("FAN1052 since-missing");
      expect(text).toContain('mark it @since("1.1.0")');
      expect(text).toContain(`was ${join(old, "shop.fan")}:3:9, now ${join(now, "shop.fan")}:6:7`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
