/**
 * docs/generated-code.md shows what `fanc compile` writes for its example: the page's `fan`
 * block, compiled and generated here, gives every interface of the page's "Services" block
 * word for word (the page once showed handler contexts without `XStates`, and no `XStates`).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { generate } from "../../src/codegen/index.js";
import { checkSources } from "../../src/compiler/index.js";

const page = readFileSync(new URL("../../docs/generated-code.md", import.meta.url), "utf8");
const common = readFileSync(new URL("../../idl/retail/common.fan", import.meta.url), "utf8");

/** Each `export interface X ... }` of `text` (its closing brace at the start of a line). */
function interfaces(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^export interface (\w+)[^\n]*\{\n(?:.*\n)*?\}$/gm)) out.set(m[1] ?? "", m[0]);
  return out;
}

describe("docs/generated-code.md", () => {
  it("shows the service interfaces fanc generates for its example, word for word", () => {
    const idl = /```fan\n([\s\S]*?)```/.exec(page)?.[1] ?? "";
    const { model, diagnostics } = checkSources([
      { path: "retail/common.fan", text: common },
      { path: "retail/wines.fan", text: idl },
    ]);
    expect(diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    if (model === undefined) throw new Error("no model");
    const generated = interfaces(generate(model).get("retail/wines.ts") ?? "");
    const services = page.slice(page.indexOf("## Services"), page.indexOf("## Callers"));
    const shown = interfaces(services);
    expect([...shown.keys()]).toEqual([
      "PublicWinesConfig",
      "PublicWinesRequests",
      "PublicWinesEvents",
      "PublicWinesStates",
      "PublicWinesHandler",
      "PublicWinesClient",
      "PublicWinesMock",
    ]);
    for (const [name, text] of shown) expect(text, name).toBe(generated.get(name));
  });
});
