/** `npm run vsix` packages the VS Code extension as a .vsix that holds the Marketplace layout and its runtime dependency. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repo } from "./client.js";

describe("the VS Code extension package", () => {
  it("is a zip with the manifest, the grammar, the extension and vscode-languageclient", () => {
    const out = join(mkdtempSync(join(tmpdir(), "fan-vsix-test-")), "fan.vsix");
    execFileSync(process.execPath, [join(repo, "editors/vscode/package-vsix.mjs"), "--out", out], { stdio: "pipe" });
    const list = execFileSync("unzip", ["-Z1", out], { encoding: "utf8" }).split("\n");
    for (const f of [
      "[Content_Types].xml",
      "extension.vsixmanifest",
      "extension/package.json",
      "extension/extension.js",
      "extension/language-configuration.json",
      "extension/syntaxes/fan.tmLanguage.json",
      "extension/node_modules/vscode-languageclient/package.json",
    ])
      expect(list).toContain(f);
    expect(() => execFileSync("unzip", ["-tq", out])).not.toThrow();
    const manifest = execFileSync("unzip", ["-p", out, "extension.vsixmanifest"], { encoding: "utf8" });
    const pkg = JSON.parse(readFileSync(join(repo, "editors/vscode/package.json"), "utf8")) as { version: string };
    expect(manifest).toContain(`<Identity Language="en-US" Id="fan-idl" Version="${pkg.version}" Publisher="fan" />`);
  }, 120_000);
});
