/**
 * `fanc config set` and `push` on `decimal` fields, in-process against the shared etcd. A decimal
 * is text; `unitPrice=12.25` (and `unitPrice: 3.10` in a pushed file) is YAML for a float, which
 * was refused ("expected a decimal (text), got number 12.25") with no hint, and would have lost
 * the trailing zero of 3.10. The text is now taken as written; a number that is no decimal text
 * (`1e3`) is refused with the quoting hint.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as config } from "../../src/cli/config.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { captureIo, TempDir } from "./helpers.js";

const IDL_TEXT = `package shop

service Orders {
  config {
    unitPrice: decimal,
    discount?: decimal @min("0") @max("1"),
    note?: string
  }
}
`;

describeEtcd("fanc config on decimal fields", () => {
  const cluster = randomCluster();
  const tmp = new TempDir();
  let C: string[];

  beforeAll(() => {
    tmp.write("idl/shop.fan", IDL_TEXT);
    C = ["--idl", `${tmp.path}/idl`, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  });
  afterAll(() => tmp.cleanup());

  const stored = async (): Promise<unknown> => {
    const io = captureIo();
    expect(await config(["get", "Orders", "--json", ...C], io)).toBe(0);
    return JSON.parse(io.outText());
  };

  it("set takes an unquoted decimal as written: its digits, not YAML's float", async () => {
    const io = captureIo();
    expect(await config(["set", "Orders", "unitPrice=12.25", "discount=0.10", ...C], io), io.errText()).toBe(0);
    expect(await stored()).toEqual({ unitPrice: "12.25", discount: "0.10" });
    // Quoted, as before; and a constraint still applies to the text.
    expect(await config(["set", "Orders", `unitPrice="7.50"`, ...C], captureIo())).toBe(0);
    expect(await stored()).toEqual({ unitPrice: "7.50", discount: "0.10" });
    const over = captureIo();
    expect(await config(["set", "Orders", "discount=1.5", ...C], over)).toBe(1);
    expect(over.errText()).toContain("discount");
  });

  it("set refuses a number that is no decimal text with the quoting hint, as for strings", async () => {
    const io = captureIo();
    expect(await config(["set", "Orders", "unitPrice=1e3", ...C], io)).toBe(1);
    expect(io.errText()).toContain(
      `(YAML read a number: a decimal is digits with an optional fraction, -?digits[.digits]; quote it, unitPrice='"…"')`,
    );
  });

  it("push takes a decimal as the file writes it: 3.10 keeps its trailing zero", async () => {
    tmp.write("settings.yml", "shop.Orders:\n  unitPrice: 3.10\n  discount: '0.25'\n  note: 12.5\n");
    const bad = captureIo();
    // A string field still needs the quotes: only decimals are taken as written.
    expect(await config(["push", `${tmp.path}/settings.yml`, ...C], bad)).toBe(1);
    expect(bad.errText()).toContain("note");
    tmp.write("settings.yml", "shop.Orders:\n  unitPrice: 3.10\n  discount: '0.25'\n");
    const io = captureIo();
    expect(await config(["push", `${tmp.path}/settings.yml`, ...C], io), io.errText()).toBe(0);
    expect(await stored()).toEqual({ unitPrice: "3.10", discount: "0.25" });
  });
});
