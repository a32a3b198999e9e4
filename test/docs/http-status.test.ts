/**
 * docs/gateway.md's table of HTTP statuses is the runtime's (`httpStatus`), and the IDL docs say
 * what an error declared without `@code` answers over HTTP (trial 2 finding 11: 412).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { httpStatus } from "../../src/runtime/errors.js";

const read = (name: string): string => readFileSync(new URL(`../../docs/${name}`, import.meta.url), "utf8");

describe("HTTP statuses in the docs", () => {
  it("docs/gateway.md lists every code with the status the http transport and the gateway answer", () => {
    const doc = read("gateway.md");
    const listed = new Map<string, number>();
    for (const row of doc.matchAll(
      /^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| (\d{3}) \| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| (\d{3}) \|$/gm,
    ))
      for (const [codes, status] of [
        [row[1], row[2]],
        [row[3], row[4]],
      ] as const)
        for (const code of (codes ?? "").matchAll(/`([A-Z_]+)`/g)) listed.set(code[1] ?? "", Number(status));
    expect(Object.fromEntries(listed)).toEqual({ ...httpStatus });
  });

  it("the default error code's status is said where errors are declared and where they are answered", () => {
    expect(httpStatus.FAILED_PRECONDITION).toBe(412);
    expect(read("idl.md")).toContain("an error without `@code` answers **412 Precondition Failed**");
    expect(read("gateway.md")).toContain(
      "declared without `@code` is `FAILED_PRECONDITION` (docs/idl.md), so it answers\n**412 Precondition Failed**",
    );
  });
});
