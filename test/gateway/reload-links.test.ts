/**
 * `fanc gateway --watch` on an IDL path that goes through symbolic links, as deploys switch
 * them: the path itself a link (`idl -> idls/v1`, then `ln -sfn idls/v2 idl`), and a folder on
 * the way a link (`current -> releases/r1`, Capistrano's pattern), switched by a rename of a
 * new link over it. Neither changes a file of the folder watched until then; the gateway must
 * see that the path now leads elsewhere and serve what it finds there. A Kubernetes ConfigMap
 * (files linked into `..data`, a new `..data` renamed over the old) is read and followed.
 * `linksOf` (which links a path goes through) is checked on its own.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, realpathSync, renameSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { linksOf } from "../../src/gateway/reload.js";
import { type CapturedChild, TempDir, until } from "../cli/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { uniqueCluster, up } from "../transports/processes.js";
import { spawnGateway, stopChild } from "./helpers.js";

/** An IDL of the services `names`, on http. */
const idl = (...names: string[]): string =>
  `package fan.ln\n\nversion "1.0.0"\n\n${names.map((n) => `@transports(http)\nservice ${n} {\n  rpc ping(): void\n}\n`).join("\n")}`;

/** The services the gateway at `url` serves now. */
async function services(url: string): Promise<string[]> {
  const res = await fetch(`${url}/health`);
  return ((await res.json()) as { services: string[] }).services;
}

describe("linksOf", () => {
  const t = new TempDir();
  afterAll(() => t.cleanup());

  it("names each link on the way, in the real folder that holds it, and none on a plain path", () => {
    const root = realpathSync(t.path);
    mkdirSync(join(root, "releases/r1/idls/v1"), { recursive: true });
    symlinkSync("releases/r1", join(root, "current"));
    symlinkSync("idls/v1", join(root, "releases/r1/idl"));
    expect(linksOf(join(root, "current/idl"))).toEqual([
      { dir: root, name: "current" },
      { dir: join(root, "releases/r1"), name: "idl" },
    ]);
    expect(linksOf(join(root, "releases/r1/idls/v1"))).toEqual([]);
    // A link to nowhere is still named: its retargeting must be seen.
    symlinkSync("missing", join(root, "dangling"));
    expect(linksOf(join(root, "dangling/idl"))).toEqual([{ dir: root, name: "dangling" }]);
    // A loop ends.
    symlinkSync("loop", join(root, "loop"));
    expect(linksOf(join(root, "loop")).length).toBe(40);
  });
});

describeWithBroker(
  up.etcd,
  "etcd",
  "gateway watch links",
)("fanc gateway --watch follows links on its IDL path", () => {
  const t = new TempDir();
  const cluster = uniqueCluster("gw-watch-links");
  let gateway: CapturedChild | undefined;
  let url = "";

  /** Waits for the `n`-th reload line of the gateway's log. */
  const reloaded = (n: number): Promise<void> =>
    until(
      `reload ${n} is logged`,
      () => (gateway?.stderr().match(/fanc gateway: reloaded the IDL \(--watch/g)?.length ?? 0) >= n,
      20_000,
    );

  beforeAll(async () => {
    // <tmp>/current -> releases/r1; <tmp>/releases/r1/idl -> idls/v1 (two links on the way).
    t.write("releases/r1/idls/v1/a.fan", idl("A"));
    t.write("releases/r1/idls/v2/a.fan", idl("A", "B"));
    t.write("releases/r2/idl/a.fan", idl("A", "C"));
    symlinkSync("releases/r1", join(t.path, "current"));
    symlinkSync("idls/v1", join(t.path, "releases/r1/idl"));
    ({ gateway, url } = await spawnGateway(cluster, ["--watch", "--transports", "http"], join(t.path, "current/idl")));
  }, 120_000);

  afterAll(async () => {
    await stopChild(gateway);
    t.cleanup();
  }, 60_000);

  it("serves the folder a link switched by `ln -sfn` leads to, and a save in it after that", async () => {
    expect(await services(url)).toEqual(["fan.ln.A"]);
    execFileSync("ln", ["-sfn", "idls/v2", join(t.path, "releases/r1/idl")]);
    await reloaded(1);
    expect(gateway?.stderr()).toMatch(/reloaded the IDL \(--watch[^\n]*services added: fan\.ln\.B/);
    expect(await services(url)).toEqual(["fan.ln.A", "fan.ln.B"]);
    // The folder it now leads to is the one watched.
    t.write("releases/r1/idls/v2/a.fan", idl("A", "B", "D"));
    await reloaded(2);
    expect(await services(url)).toEqual(["fan.ln.A", "fan.ln.B", "fan.ln.D"]);
  }, 60_000);

  it("serves the release a folder link on the way leads to once a new link is renamed over it", async () => {
    symlinkSync("releases/r2", join(t.path, "current.next"));
    renameSync(join(t.path, "current.next"), join(t.path, "current"));
    await reloaded(3);
    expect(gateway?.stderr()).toMatch(/reloaded the IDL \(--watch[^\n]*services added: fan\.ln\.C/);
    expect(await services(url)).toEqual(["fan.ln.A", "fan.ln.C"]);
    // Edits in the release switched away from are not this gateway's any more.
    t.write("releases/r1/idls/v2/a.fan", idl("A", "E"));
    t.write("releases/r2/idl/a.fan", idl("A", "C", "F"));
    await reloaded(4);
    expect(await services(url)).toEqual(["fan.ln.A", "fan.ln.C", "fan.ln.F"]);
    expect(gateway?.stderr()).not.toContain("fan.ln.E");
  }, 60_000);

  it("reads a Kubernetes ConfigMap's linked files, and reloads when a new ..data is renamed over the old", async () => {
    // cm/a.fan -> ..data/a.fan, ..data -> ..t1: the files the compiler reads are all links.
    t.write("cm/..t1/a.fan", idl("A", "G"));
    t.write("cm/..t2/a.fan", idl("A", "H"));
    symlinkSync("..t1", join(t.path, "cm/..data"));
    symlinkSync("..data/a.fan", join(t.path, "cm/a.fan"));
    const cm = await spawnGateway(cluster, ["--watch", "--transports", "http"], join(t.path, "cm"));
    try {
      expect(await services(cm.url)).toEqual(["fan.ln.A", "fan.ln.G"]);
      symlinkSync("..t2", join(t.path, "cm/..data_tmp"));
      renameSync(join(t.path, "cm/..data_tmp"), join(t.path, "cm/..data"));
      await until(
        "the swapped ConfigMap is served",
        () => /services added: fan\.ln\.H/.test(cm.gateway.stderr()),
        20_000,
      );
      expect(await services(cm.url)).toEqual(["fan.ln.A", "fan.ln.H"]);
    } finally {
      await stopChild(cm.gateway);
    }
  }, 120_000);
});
