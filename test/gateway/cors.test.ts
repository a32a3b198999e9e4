/** The gateway's CORS headers: with a list of origins every answer varies on Origin. */
import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { Cors } from "../../src/gateway/cors.js";

const req = (origin?: string): IncomingMessage => ({ headers: origin === undefined ? {} : { origin } }) as IncomingMessage;

describe("Cors", () => {
  const list = new Cors("https://shop.example");

  it("sends vary: origin with a list of origins, whether the origin is allowed, refused or absent", () => {
    expect(list.headers(req("https://shop.example"))).toMatchObject({ "access-control-allow-origin": "https://shop.example", vary: "origin" });
    expect(list.headers(req("https://evil.example"))).toEqual({ vary: "origin" });
    expect(list.headers(req())).toEqual({ vary: "origin" });
    expect(list.preflight(req("https://evil.example"))).toEqual({ status: 403, headers: { vary: "origin" } });
  });

  it("sends no vary with `*` or without --cors", () => {
    expect(new Cors("*").headers(req("https://any.example"))).toEqual({
      "access-control-allow-origin": "*",
      "access-control-expose-headers": expect.any(String),
    });
    expect(new Cors(undefined).headers(req("https://any.example"))).toEqual({});
  });
});
