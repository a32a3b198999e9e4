/**
 * The default range of a client generated at a prerelease (call/versions.ts `majorRange`): a
 * system whose server and clients are all generated at 2.0.0-beta.1 calls and watches its own
 * service, and later prereleases of that version, as well as the major's releases; a client
 * generated at 2.0.0 still reaches no beta. Owners and watchers are processes over redis
 * (test/states/fixtures/node.ts); `fanc call` and `fanc watch` run in this process with the
 * fixture IDL at 2.0.0-beta.1. Before, the default was `2.x`, which admits no prerelease: the
 * beta-generated client's calls failed `UNAVAILABLE … versions available: 2.0.0-beta.1`.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import semver from "semver";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { run as callCli } from "../../src/cli/call.js";
import { run as watchCli } from "../../src/cli/state-watch.js";
import { mayPark, parkingMajor } from "../../src/runtime/call/parked.js";
import { majorRange } from "../../src/runtime/call/versions.js";
import type { InstanceInfo } from "../../src/runtime/discovery/types.js";
import { shortId } from "../../src/runtime/ids.js";
import { REDIS_URL } from "../transports/redis-server.js";
import { clusterNodes, converged, type Node, until } from "./processes.js";

const nodes: Node[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});

describe("majorRange: the default range of a generated client", () => {
  const admitted = (version: string): string[] =>
    [
      "1.9.0",
      "2.0.0-alpha.1",
      "2.0.0-beta.0",
      "2.0.0-beta.1",
      "2.0.0-beta.2",
      "2.0.0-rc.1",
      "2.0.0",
      "2.0.3",
      "2.1.0-beta.1",
      "2.1.0-beta.2",
      "2.1.0",
      "3.0.0-0",
      "3.0.0-alpha.1",
      "3.0.0",
    ].filter((v) => semver.satisfies(v, majorRange(version)));

  it("at a release, the major's releases (`2.x`), no prerelease", () => {
    expect(majorRange("2.0.0")).toBe("2.x");
    expect(admitted("2.0.0")).toEqual(["2.0.0", "2.0.3", "2.1.0"]);
  });

  it("at a prerelease, also it and the later prereleases of its version; no other prerelease, no 3.0.0 one", () => {
    expect(majorRange("2.0.0-beta.1")).toBe("2.x || >=2.0.0-beta.1 <2.0.0");
    expect(admitted("2.0.0-beta.1")).toEqual(["2.0.0-beta.1", "2.0.0-beta.2", "2.0.0-rc.1", "2.0.0", "2.0.3", "2.1.0"]);
    // Every release of the major, as `2.x` (2.0.x included, as for a client generated at 2.1.0).
    expect(admitted("2.1.0-beta.1")).toEqual(["2.0.0", "2.0.3", "2.1.0-beta.1", "2.1.0-beta.2", "2.1.0"]);
    expect(majorRange("0.1.0-beta.1")).toBe("0.x || >=0.1.0-beta.1 <0.1.0");
    expect(semver.satisfies("0.2.0", majorRange("0.1.0-beta.1"))).toBe(true);
  });

  it("a push of a beta-generated client still waits in its major's queue, unless an instance of the major is registered", () => {
    const range = semver.validRange(majorRange("2.0.0-beta.1")) as string;
    expect(parkingMajor(range, undefined, "2.0.0-beta.1")).toBe(2);
    expect(parkingMajor(semver.validRange(majorRange("2.1.0-beta.1")) as string, undefined, "2.1.0-beta.1")).toBe(2);
    const at = (version: string) => ({ version }) as InstanceInfo;
    expect(mayPark(range, 2, [])).toBe(true);
    expect(mayPark(range, 2, [at("2.0.0-beta.1")])).toBe(false);
    expect(mayPark(range, 2, [at("1.4.0")])).toBe(true);
  });
});

const redis = { name: "redis", transports: () => ({ redis: { url: REDIS_URL } }) };

/** The error message a command of `n` rejects with. */
const refusal = (n: Node, op: string): Promise<string> =>
  n.send(op).then(
    (r) => `answered ${JSON.stringify(r)}`,
    (e: unknown) => (e as Error).message,
  );

describe("server and clients generated at 2.0.0-beta.1 (processes over redis)", () => {
  const cluster = `beta-default-${process.pid}-${shortId()}`;
  const nodesOf = clusterNodes(cluster, redis, nodes);
  afterAll(nodesOf.forget);

  it("the beta client calls and watches the beta owner, then a later beta; a 2.0.0 client reaches neither", async () => {
    const beta1 = await nodesOf.start("owner", { FAN_STATES_VERSION: "2.0.0-beta.1" });
    await beta1.send("set", { value: { b: { n: 1, label: "beta.1" } } });
    // No client range: the default of the version it was generated from.
    const client = await nodesOf.start("watcher", { FAN_STATES_VERSION: "2.0.0-beta.1" });
    expect(await client.send("ping")).toMatchObject({ value: "pong" });
    expect((await converged(client, beta1, "the beta client live on the beta owner")).value).toEqual({
      b: { n: 1, label: "beta.1" },
    });
    expect(await client.send("get")).toMatchObject({ value: { b: { n: 1, label: "beta.1" } } });
    await beta1.send("patch", { patch: { c: { n: 3, label: "three" } } });
    expect((await converged(client, beta1, "the beta owner's patch")).value).toEqual({
      b: { n: 1, label: "beta.1" },
      c: { n: 3, label: "three" },
    });

    // A client generated at the release keeps `2.x`: no prerelease.
    const release = await nodesOf.start("watcher", { FAN_STATES_VERSION: "2.0.0" });
    expect(await refusal(release, "ping")).toBe(
      "no instance of fan.replica.Board 2.x (versions available: 2.0.0-beta.1)",
    );
    await until(
      "the release client's prerelease refusal",
      () => release.report(),
      (r) => r.status === "owner-absent" && r.reason?.includes("which the range 2.x does not admit") === true,
    );

    // A client generated at a later beta does not reach an earlier one; its message names its range.
    const beta2client = await nodesOf.start("watcher", { FAN_STATES_VERSION: "2.0.0-beta.2" });
    expect(await refusal(beta2client, "ping")).toBe(
      "no instance of fan.replica.Board 2.x || >=2.0.0-beta.2 <2.0.0 (versions available: 2.0.0-beta.1)",
    );

    // The owner is replaced by 2.0.0-beta.2: the beta.1 client follows it, and so does beta.2's.
    await beta1.stop();
    const beta2 = await nodesOf.start("owner", { FAN_STATES_VERSION: "2.0.0-beta.2" });
    await beta2.send("set", { value: { b: { n: 2, label: "beta.2" } } });
    for (const w of [client, beta2client]) {
      expect((await converged(w, beta2, "live on the 2.0.0-beta.2 owner")).value).toEqual({
        b: { n: 2, label: "beta.2" },
      });
      expect(await w.send("ping")).toMatchObject({ value: "pong" });
    }
    expect(await refusal(release, "ping")).toBe(
      "no instance of fan.replica.Board 2.x (versions available: 2.0.0-beta.2)",
    );
  }, 120_000);

  it("fanc call and fanc watch with an IDL at 2.0.0-beta.1 reach the beta owner by default", async () => {
    const beta = await nodesOf.start("owner", { FAN_STATES_VERSION: "2.0.0-beta.1" });
    await beta.send("set", { value: { b: { n: 1, label: "beta.1" } } });
    const idl = join(mkdtempSync(join(tmpdir(), "fan-beta-idl-")), "idl");
    mkdirSync(idl);
    const source = readFileSync(fileURLToPath(new URL("./fixtures/idl/replica.fan", import.meta.url)), "utf8");
    writeFileSync(join(idl, "replica.fan"), source.replace('version "1.0.0"', 'version "2.0.0-beta.1"'));
    const common = ["--idl", idl, "--discovery", "etcd://127.0.0.1:2379", "--cluster", cluster];

    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) };
    const code = await callCli(["fan.replica.Board.ping", "{}", ...common, "--via", "redis", "--json"], io);
    expect(code, err.join("\n")).toBe(0);
    expect(JSON.parse(out.join(""))).toMatchObject({ value: "pong" });

    const lines: string[] = [];
    const said: string[] = [];
    const ctl = new AbortController();
    const watching = watchCli(
      ["fan.replica.Board.entries", ...common, "--json"],
      { out: (t) => void lines.push(t), err: (t) => void said.push(t) },
      ctl.signal,
    );
    try {
      await until(
        "fanc watch's snapshot of the beta",
        async () => lines.length,
        (n) => n >= 1,
        30_000,
      );
      expect(JSON.parse(lines[0] as string)).toMatchObject({
        cause: "snapshot",
        value: { b: { n: 1, label: "beta.1" } },
      });
      expect(said.join("\n")).not.toContain("owner-absent");
    } finally {
      ctl.abort();
      expect(await watching).toBe(0);
    }
  }, 60_000);
});
