/** Service-level settings: version, transports, unique, config and dependencies. */
import { describe, expect, it } from "vitest";
import { expectClean, expectDiagnostics, messageOf, src } from "../helpers.js";

describe("services", () => {
  it("takes the version from @version, else the package's version line, else 0.0.0", () => {
    const model = expectClean({
      "a.fan": src("package a", 'version "1.4.0"', "service A {}", '@version("2.0.0-beta.1") service B {}'),
      "b.fan": src("package b", "service C {}"),
    });
    expect(model.packages.flatMap((p) => p.decls.map((d) => d.kind === "service" && d.version))).toEqual([
      "1.4.0",
      "2.0.0-beta.1",
      "0.0.0",
    ]);
  });

  it("serves on every transport by default and always includes local, in a fixed order", () => {
    const model = expectClean(
      src(
        "package p",
        "service A {}",
        "@transports(zmq, http) service B {}",
        "@transports(local, amqp, local) @unique service C {}",
      ),
    );
    expect(model.packages[0]!.decls.map((d) => d.kind === "service" && [d.transports, d.unique])).toEqual([
      [["http", "amqp", "redis", "nats", "zmq", "tcp", "local"], false],
      [["http", "zmq", "local"], false],
      [["amqp", "local"], true],
    ]);
  });

  it("rejects unknown transports (FAN0309), naming every one it accepts, and invalid versions (FAN0311)", () => {
    const r = expectDiagnostics(
      src("package p", "@transports(http, grpc, tcp) service A {}", '@version("v1") service B {}'),
      [
        ["FAN0309", 2, 19],
        ["FAN0311", 3, 10],
      ],
    );
    expect(messageOf(r, "FAN0309")).toBe("unknown transport `grpc`; use http, amqp, redis, nats, zmq, tcp or local");
  });

  it("reads the config block with secrets, docs and defaults", () => {
    const model = expectClean(
      src(
        "package p",
        "service A {",
        "  config {",
        "    /// Page size.",
        "    pageSize: int = 50 @min(1)",
        "    apiKey: string @secret",
        "  }",
        "}",
      ),
    );
    const a = model.packages[0]!.decls[0]!;
    expect(a.kind === "service" && a.config).toEqual([
      {
        name: "pageSize",
        optional: false,
        type: { kind: "primitive", name: "int" },
        default: 50,
        constraints: { min: 1 },
        secret: false,
        doc: "Page size.",
      },
      { name: "apiKey", optional: false, type: { kind: "primitive", name: "string" }, constraints: {}, secret: true },
    ]);
  });

  it("rejects a second config block (FAN0404) and duplicate config entries (FAN0103)", () => {
    expectDiagnostics(src("package p", "service A {", "  config { a: int, a: int }", "  config { b: int }", "}"), [
      ["FAN0103", 3, 20],
      ["FAN0404", 4, 3],
    ]);
  });

  it("resolves dependencies to services across packages", () => {
    const model = expectClean({
      "a.fan": src("package a", 'version "1.2.0"', "service Api {}"),
      "b.fan": src(
        "package b",
        "import a as x",
        'service B { depends x.Api "^1", depends soft Other ">=0.0.0" }',
        "service Other {}",
      ),
    });
    const b = model.packages[1]!.decls[0]!;
    expect(b.kind === "service" && b.depends).toEqual([
      { service: "a.Api", range: "^1", soft: false },
      { service: "b.Other", range: ">=0.0.0", soft: true },
    ]);
  });

  it("rejects unknown services (FAN0110), non-services (FAN0111), bad ranges (FAN0312) and repeated dependencies (FAN0402)", () => {
    expectDiagnostics(
      src(
        "package p",
        "struct S {}",
        "service Other {}",
        "service A {",
        '  depends Nope "^1"',
        '  depends S "^1"',
        '  depends Other "not a range"',
        '  depends Other "*"',
        '  depends soft Other "*"',
        "}",
      ),
      [
        ["FAN0110", 5, 11],
        ["FAN0111", 6, 11],
        ["FAN0312", 7, 17],
        ["FAN0402", 8, 11],
        ["FAN0402", 9, 16],
      ],
    );
  });

  it("lets `soft` name a service when no other name follows", () => {
    const r = expectDiagnostics(src("package p", "service soft {}", 'service A { depends soft "*" }'), [
      ["FAN0501", 2, 9],
    ]);
    const model = r.model!;
    const a = model.packages[0]!.decls[1]!;
    expect(a.kind === "service" && a.depends).toEqual([{ service: "p.soft", range: "*", soft: false }]);
  });
});
