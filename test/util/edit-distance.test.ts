import { describe, expect, it } from "vitest";
import { likelySection } from "../../src/runtime/discovery/config.js";
import { closest } from "../../src/compiler/suggest.js";
import { editDistance } from "../../src/util/edit-distance.js";

describe("editDistance (shared by the compiler's hints and the runtime's config sections)", () => {
  it("counts edits case-insensitively, a swap of neighbours as one", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("Billing", "billing")).toBe(0);
    expect(editDistance("tpye", "type")).toBe(1);
    expect(editDistance("", "abc")).toBe(3);
  });

  it("gives the same hints in both places", () => {
    expect(closest("tpye", ["type", "tuple"])).toBe("type");
    expect(likelySection("shop.Billing", ["shop.Bililng", "shop.Orders"])).toBe("shop.Bililng");
    expect(likelySection("shop.Billing", ["shop.Orders"])).toBeUndefined();
  });
});
