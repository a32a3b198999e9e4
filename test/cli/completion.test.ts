/**
 * Shell completion: `fanc __complete` candidates from the IDL (in-process), and the bash
 * script of `fanc completion bash` sourced into a real bash, completing with a `fanc` on PATH.
 */
import { spawnSync } from "node:child_process";
import { chmodSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { candidates } from "../../src/cli/completion.js";
import { TempDir } from "./helpers.js";

const IDL = "test/transports/fixtures/idl";

describe("fanc __complete", () => {
  it("completes commands, options and transports", async () => {
    expect(await candidates(0, ["c"])).toEqual(["compile", "config", "check", "call", "completion"]);
    expect(await candidates(2, ["bench", "X", "--con"])).toEqual(["--concurrency"]);
    expect(await candidates(3, ["call", "X", "--via", "r"])).toEqual(["redis"]);
    expect(await candidates(3, ["watch", "X", "--via", "n"])).toEqual(["nats"]);
    expect(await candidates(4, ["new", "service", "X", "--transport", ""])).toEqual([
      "http",
      "zmq",
      "tcp",
      "redis",
      "amqp",
      "nats",
    ]);
    expect(await candidates(1, ["completion", ""])).toEqual(["bash", "zsh"]);
    expect(await candidates(2, ["dev", "idl/", "--ty"])).toEqual(["--typecheck"]);
  });

  it("completes <service>.<member> from the IDL by command: rpcs, pushes, events, states, services", async () => {
    const rpcs = await candidates(3, ["call", "--idl", IDL, "Conformance.e"]);
    expect(rpcs).toEqual(["Conformance.echo", "Conformance.empty"]);
    const pushes = await candidates(3, ["push", "--idl", IDL, "Conf"]);
    expect(pushes.length).toBeGreaterThan(0);
    expect(pushes.every((p) => !rpcs.includes(p))).toBe(true);
    expect(await candidates(3, ["subscribe", "--idl", IDL, "Conformance."])).toEqual([
      "Conformance.flush",
      "Conformance.ping",
    ]);
    expect(await candidates(3, ["watch", "--idl", "test/states/fixtures/idl", "Board."])).toEqual([
      "Board.entries",
      "Board.mode",
    ]);
    expect(await candidates(1, ["watch", "PublicWines.i"])).toEqual(["PublicWines.inventory"]); // idl/ by default
    expect(await candidates(1, ["ls", "Light"])).toEqual(["Lightspeed", "LightspeedSync"]);
    // Only the first argument is a name; nothing where there is no IDL.
    expect(await candidates(2, ["call", "PublicWines.get", "Pub"])).toEqual([]);
    expect(await candidates(3, ["call", "--idl", "/nonexistent", ""])).toEqual([]);
  });
});

describe("fanc completion bash", () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it("completes in a real bash once sourced", () => {
    tmp.write("bin/fanc", `#!/bin/sh\nexec "${process.execPath}" "${join(process.cwd(), "bin/fanc.mjs")}" "$@"\n`);
    chmodSync(join(tmp.path, "bin/fanc"), 0o755);
    const print = `printf '%s\\n' "$\{COMPREPLY[@]}"`;
    const script = [
      "source <(fanc completion bash)",
      `COMP_WORDS=(fanc call PublicWines.l); COMP_CWORD=2; _fanc_complete; ${print}`,
      `COMP_WORDS=(fanc wa); COMP_CWORD=1; _fanc_complete; ${print}`,
      "complete -p fanc",
    ].join("\n");
    const r = spawnSync("bash", ["-c", script], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${join(tmp.path, "bin")}:${process.env.PATH}` },
      timeout: 60_000,
    });
    expect(r.stderr).toBe("");
    expect(r.stdout.split("\n")).toEqual([
      "PublicWines.list",
      "watch",
      expect.stringContaining("_fanc_complete fanc"),
      "",
    ]);
  }, 90_000);
});
