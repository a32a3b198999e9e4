/**
 * `fanc lsp` driven over stdio by a test client, on a three-file fixture (shop.common,
 * shop.orders importing it, shop.billing subscribing to an orders event).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  CodeAction,
  CompletionItem,
  Diagnostic,
  DocumentSymbol,
  Hover,
  Location,
  TextEdit,
  WorkspaceEdit,
} from "vscode-languageserver-protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LspClient, repo } from "./client.js";

const ORDERS = "idl/shop/orders.fan";
const COMMON = "idl/shop/common.fan";
const BILLING = "idl/shop/billing.fan";
const fixture = (rel: string): string => readFileSync(join(repo, "test/lsp/fixtures", rel), "utf8");

/** The LSP position of the `delta`-th character after the first `needle` in `text`. */
function pos(text: string, needle: string, delta = 0): { line: number; character: number } {
  const i = text.indexOf(needle);
  if (i < 0) throw new Error(`no ${needle}`);
  const before = text.slice(0, i + delta).split("\n");
  return { line: before.length - 1, character: before[before.length - 1]!.length };
}

let c: LspClient;
beforeAll(async () => {
  c = await LspClient.start(".");
}, 60_000);
afterAll(async () => {
  await c?.stop();
});

describe("fanc lsp", () => {
  it("publishes the diagnostics `fanc compile` prints for a broken file, as you type", async () => {
    const broken = fixture(ORDERS)
      .replace("id: string\n  total", "id: strng\n  total")
      .replace("@timeout(2s)", "@timeot(2s)");
    await c.open(ORDERS, broken);
    const ds = await c.until(() => {
      const d = c.diagnostics.get(c.uri(ORDERS));
      return d !== undefined && d.length >= 2 ? d : undefined;
    }, "diagnostics of the broken file");
    // The CLI on the same files.
    const dir = mkdtempSync(join(tmpdir(), "fan-lsp-cli-"));
    cpSync(join(repo, "test/lsp/fixtures/idl"), dir, { recursive: true });
    writeFileSync(join(dir, "shop/orders.fan"), broken);
    let printed = "";
    try {
      execFileSync(process.execPath, [join(repo, "bin/fanc.mjs"), "compile", dir, "--out", join(dir, "out")], {
        encoding: "utf8",
        stdio: "pipe",
      });
    } catch (e) {
      printed = String((e as { stderr?: string }).stderr ?? "") + String((e as { stdout?: string }).stdout ?? "");
    }
    const cli = [...printed.matchAll(/^(?:.*\/)?shop\/orders\.fan:(\d+):(\d+): (error|warning) (FAN\d+): (.*)$/gm)].map(
      (m) => ({
        line: Number(m[1]) - 1,
        character: Number(m[2]) - 1,
        code: m[4],
        message: m[5],
      }),
    );
    expect(cli.length).toBeGreaterThanOrEqual(2);
    expect(
      ds.map((d) => ({
        line: d.range.start.line,
        character: d.range.start.character,
        code: d.code,
        message: d.message,
      })),
    ).toEqual(cli);
    expect(ds.map((d) => d.message)).toEqual([
      "unknown type `strng`; did you mean `string`?",
      "unknown decorator @timeot; did you mean `@timeout`?",
    ]);
  });

  it("offers the did-you-mean hint as a quick fix", async () => {
    const ds = c.diagnostics.get(c.uri(ORDERS))!;
    const actions = await c.request<CodeAction[]>("textDocument/codeAction", {
      textDocument: { uri: c.uri(ORDERS) },
      range: ds[1]!.range,
      context: { diagnostics: ds },
    });
    const edits = actions.map((a) => a.edit?.changes?.[c.uri(ORDERS)]?.[0]?.newText);
    expect(actions.map((a) => a.title)).toEqual(["Change to `string`", "Change to `@timeout`"]);
    expect(edits).toEqual(["string", "timeout"]);
    // Applying both fixes leaves no diagnostics.
    await c.change(ORDERS, fixture(ORDERS));
    await c.until(() => c.diagnostics.get(c.uri(ORDERS))?.length === 0, "diagnostics cleared");
  });

  it("relates a duplicate declaration to the first one, in another file", async () => {
    const dup = `${fixture(COMMON)}\nstruct Order {}\n`.replace("package shop.common", "package shop.orders");
    await c.open(COMMON, dup);
    const d = await c.until(
      () => [...c.diagnostics.values()].flat().find((x: Diagnostic) => x.code === "FAN0102"),
      "FAN0102",
    );
    try {
      // The first file by path keeps the name; the diagnostic is on the second.
      expect(d.message).toBe("`Order` is already declared in package `shop.orders`");
      expect(d.range.start).toEqual(pos(fixture(ORDERS), "struct Order", 7));
      expect(d.relatedInformation?.[0]?.location.uri).toBe(c.uri(COMMON));
      expect(d.relatedInformation?.[0]?.location.range.start).toEqual(pos(dup, "struct Order", 7));
    } finally {
      await c.change(COMMON, fixture(COMMON));
    }
    await c.until(() => ![...c.diagnostics.values()].flat().some((x) => x.code === "FAN0102"), "FAN0102 gone");
  });

  it("hovers a method with its doc and effective timeout, route and defaults", async () => {
    const text = fixture(ORDERS);
    const get = await c.request<Hover>("textDocument/hover", {
      textDocument: { uri: c.uri(ORDERS) },
      position: pos(text, "rpc get", 5),
    });
    const value = (get.contents as { value: string }).value;
    expect(value).toContain("rpc get(storeId: string, id: string): shop.orders.Order throws shop.common.NotFound");
    expect(value).toContain("Fetch one order.");
    expect(value).toContain("timeout 2s");
    expect(value).toContain("route `GET /stores/{storeId}/orders/{id}`");
    const place = await c.request<Hover>("textDocument/hover", {
      textDocument: { uri: c.uri(ORDERS) },
      position: pos(text, "rpc place", 5),
    });
    expect((place.contents as { value: string }).value).toContain("timeout 10s (default)");
    const money = await c.request<Hover>("textDocument/hover", {
      textDocument: { uri: c.uri(ORDERS) },
      position: pos(text, "common.Money", 9),
    });
    expect((money.contents as { value: string }).value).toContain("struct shop.common.Money");
    expect((money.contents as { value: string }).value).toContain("An amount of money.");
  });

  it("fallback: hovers @fallback and a method carrying it; completes @fallback on an rpc", async () => {
    const text = fixture(ORDERS);
    const sharded = text.replace("  @timeout(2s)\n", "  @shard(storeId) @fallback\n  @timeout(2s)\n");
    const hover = async (needle: string, delta: number): Promise<string> => {
      const h = await c.request<Hover>("textDocument/hover", {
        textDocument: { uri: c.uri(ORDERS) },
        position: pos(sharded, needle, delta),
      });
      return (h.contents as { value: string }).value;
    };
    await c.change(ORDERS, sharded);
    try {
      const value = await hover("rpc get", 5);
      expect(value).toContain("shard key `storeId`");
      expect(value).toContain("fallback to another instance when the shard's owner is unavailable");
      expect(await hover("@fallback", 3)).toMatch(/^\*\*@fallback\*\*: With @shard: when the shard's owner is gone/);
      const typing = sharded.replace("  /// Place an order.\n", "  @fal\n");
      await c.change(ORDERS, typing);
      const items = await c.request<CompletionItem[]>("textDocument/completion", {
        textDocument: { uri: c.uri(ORDERS) },
        position: pos(typing, "@fal\n", 4),
      });
      expect(items.map((i) => i.label)).toContain("@fallback");
    } finally {
      await c.change(ORDERS, text);
    }
  });

  it("goes to the definition across files and imports", async () => {
    const text = fixture(ORDERS);
    const loc = await c.request<Location>("textDocument/definition", {
      textDocument: { uri: c.uri(ORDERS) },
      position: pos(text, "common.Money", 8),
    });
    expect(loc.uri).toBe(c.uri(COMMON));
    expect(loc.range.start).toEqual(pos(fixture(COMMON), "struct Money", 7));
    const billing = fixture(BILLING);
    await c.open(BILLING, billing);
    const ev = await c.request<Location>("textDocument/definition", {
      textDocument: { uri: c.uri(BILLING) },
      position: pos(billing, "Orders.placed", 9),
    });
    expect(ev.uri).toBe(c.uri(ORDERS));
    expect(ev.range.start).toEqual(pos(text, "event placed", 6));
  });

  it("finds references of a declaration and of an event across files", async () => {
    const text = fixture(ORDERS);
    const refs = await c.request<Location[]>("textDocument/references", {
      textDocument: { uri: c.uri(ORDERS) },
      position: pos(text, "service Orders", 9),
      context: { includeDeclaration: true },
    });
    expect(refs.map((r) => [r.uri === c.uri(BILLING) ? "billing" : "orders", r.range.start.line])).toEqual([
      ["orders", 11],
      ["billing", 6],
      ["billing", 8],
    ]);
    const order = await c.request<Location[]>("textDocument/references", {
      textDocument: { uri: c.uri(ORDERS) },
      position: pos(text, "struct Order", 8),
      context: { includeDeclaration: false },
    });
    expect(order).toHaveLength(4);
    const placed = await c.request<Location[]>("textDocument/references", {
      textDocument: { uri: c.uri(ORDERS) },
      position: pos(text, "event placed", 7),
      context: { includeDeclaration: false },
    });
    expect(placed.map((r) => r.uri)).toEqual([c.uri(BILLING)]);
  });

  it("completes decorators valid at the position, route params, package members and types", async () => {
    const text = fixture(ORDERS);
    const at = async (edited: string, needle: string, delta: number): Promise<string[]> => {
      await c.change(ORDERS, edited);
      try {
        const items = await c.request<CompletionItem[]>("textDocument/completion", {
          textDocument: { uri: c.uri(ORDERS) },
          position: pos(edited, needle, delta),
        });
        return items.map((i) => i.label);
      } finally {
        await c.change(ORDERS, text);
      }
    };
    const onRpc = text.replace("  /// Place an order.\n", "  @ti\n");
    const decs = await at(onRpc, "@ti", 3);
    expect(decs).toContain("@timeout");
    expect(decs).toContain("@route");
    expect(decs).not.toContain("@min");
    expect(decs).not.toContain("@code");
    // `@` alone on a line: the member below it decides, across the decorators and comments between.
    for (const [above, yes, no] of [
      ["  @idempotent\n", "@timeout", ["@ttl", "@broadcast", "@full", "@delta"]],
      ["  /// An order was placed.\n", "@broadcast", ["@timeout", "@ttl", "@full", "@route"]],
    ] as const) {
      const alone = text.replace(above, `  @\n${above}`);
      const got = await at(alone, "  @\n", 3);
      expect(got, above).toContain(yes);
      for (const n of no) expect(got, above).not.toContain(n);
    }
    // After a parameter's type: a field's decorators, not types.
    const param = text.replace("rpc get(storeId: string,", "rpc get(storeId: string @,");
    const paramDecs = await at(param, "string @,", 8);
    expect(paramDecs).toContain("@maxLength");
    expect(paramDecs).not.toContain("string");
    const onField = text.replace("  id: string\n", "  @\n  id: string\n");
    const fieldDecs = await at(onField, "  @\n", 3);
    expect(fieldDecs).toContain("@maxLength");
    expect(fieldDecs).not.toContain("@timeout");
    const route = text.replace('@route("/stores/{storeId}/orders/{id}")', '@route("/stores/{');
    expect(await at(route, '@route("/stores/{', 17)).toEqual(["storeId", "id"]);
    const verb = text.replace('@route("/stores/{storeId}/orders/{id}")', '@route("DE');
    expect(await at(verb, '@route("DE', 10)).toEqual(["GET", "POST", "PUT", "PATCH", "DELETE"]);
    const member = text.replace("total: common.Money", "total: common.");
    expect(await at(member, "common.\n", 7)).toEqual(["Money", "NotFound"]);
    const type = text.replace("total: common.Money", "total: ");
    const types = await at(type, "total: ", 7);
    expect(types).toEqual(expect.arrayContaining(["string", "decimal", "Order", "common"]));
    expect(types).not.toContain("Orders");
    await c.change(ORDERS, text);
  });

  it("renames a declaration across files", async () => {
    const common = fixture(COMMON);
    const edit = await c.request<WorkspaceEdit>("textDocument/rename", {
      textDocument: { uri: c.uri(COMMON) },
      position: pos(common, "struct Money", 8),
      newName: "Amount",
    });
    const changes = edit.changes ?? {};
    expect(Object.keys(changes).sort()).toEqual([c.uri(COMMON), c.uri(ORDERS)].sort());
    expect(changes[c.uri(COMMON)]!.map((e: TextEdit) => e.range.start)).toEqual([pos(common, "struct Money", 7)]);
    expect(changes[c.uri(ORDERS)]!.map((e: TextEdit) => [e.range.start, e.newText])).toEqual([
      [pos(fixture(ORDERS), "common.Money", 7), "Amount"],
    ]);
    await expect(
      c.request("textDocument/rename", {
        textDocument: { uri: c.uri(COMMON) },
        position: pos(common, "struct Money", 8),
        newName: "no-good",
      }),
    ).rejects.toThrow(/not a valid fan name/);
  });

  it("gives an outline, semantic tokens and format-document", async () => {
    const syms = await c.request<DocumentSymbol[]>("textDocument/documentSymbol", {
      textDocument: { uri: c.uri(ORDERS) },
    });
    expect(syms.map((s) => s.name)).toEqual(["shop.orders", "Order", "Orders"]);
    expect(syms[2]!.children?.map((s) => s.name)).toEqual(["get", "place", "placed"]);
    const tokens = await c.request<{ data: number[] }>("textDocument/semanticTokens/full", {
      textDocument: { uri: c.uri(ORDERS) },
    });
    expect(tokens.data.length % 5).toBe(0);
    expect(tokens.data.length / 5).toBeGreaterThan(15);
    const messy = fixture(ORDERS).replace("struct Order {\n  id: string", "struct Order{\n        id :string");
    await c.change(ORDERS, messy);
    const edits = await c.request<TextEdit[]>("textDocument/formatting", {
      textDocument: { uri: c.uri(ORDERS) },
      options: { tabSize: 2, insertSpaces: true },
    });
    expect(edits).toHaveLength(1);
    expect(edits[0]!.newText).toBe(fixture(ORDERS));
    await c.change(ORDERS, fixture(ORDERS));
  });

  it("re-checks only the edited file while no interface changes, and its importers when one does", async () => {
    const text = fixture(ORDERS);
    await c.change(ORDERS, text.replace("/// Fetch one order.", "/// Fetch one order by id."));
    const docEdit = await c.checkedNow(ORDERS);
    expect(docEdit.parsed).toBe(1);
    expect(docEdit.rechecked).toEqual(["shop/orders.fan"]);
    await c.change(ORDERS, text.replace("  id: string\n  total", "  id: string\n  note?: string\n  total"));
    const shapeEdit = await c.checkedNow(ORDERS);
    expect(shapeEdit.parsed).toBe(1);
    // billing imports shop.orders; common does not, so its results are reused.
    expect([...shapeEdit.rechecked].sort()).toEqual(["shop/billing.fan", "shop/orders.fan"]);
    await c.change(ORDERS, text);
  });

  it("drops an unsaved edit when its document closes, and sees files created on disk", async () => {
    await c.change(ORDERS, fixture(ORDERS).replace("total: common.Money", "total: Mony"));
    await c.until(
      () => c.diagnostics.get(c.uri(ORDERS))?.some((d) => d.code === "FAN0101"),
      "FAN0101 from the unsaved edit",
    );
    await c.conn.sendNotification("textDocument/didClose", { textDocument: { uri: c.uri(ORDERS) } });
    await c.until(() => c.diagnostics.get(c.uri(ORDERS))?.length === 0, "the disk text's diagnostics (none)");
    writeFileSync(join(c.dir, "idl/shop/extra.fan"), "package shop.extra\n\nstruct Extra { x: Nope }\n");
    await c.conn.sendNotification("workspace/didChangeWatchedFiles", {
      changes: [{ uri: c.uri("idl/shop/extra.fan"), type: 1 }],
    });
    const ds = await c.until(() => c.diagnostics.get(c.uri("idl/shop/extra.fan")), "diagnostics of a new file");
    expect(ds.map((d) => d.message)).toEqual(["unknown type `Nope`"]);
  });
});
