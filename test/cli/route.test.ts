/**
 * `fanc route` run from a folder whose `idl/` does not compile (the rollback button must work from
 * any folder), against the shared etcd, in-process with captured output: a full registered name
 * needs no IDL and says nothing about it; a short name is looked up among the registered services
 * after a warning that `idl/` was skipped; an unknown name is refused naming the registered ones;
 * an `--idl` given that does not compile is an error, not skipped; a pin or split naming a
 * version no registered instance has is written with a warning naming the registered versions.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as route } from "../../src/cli/route.js";
import { routesRoot } from "../../src/runtime/call/versions.js";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { captureIo, TempDir } from "./helpers.js";

describeEtcd("fanc route from a folder whose idl/ does not compile", () => {
  const cluster = randomCluster();
  const D = ["--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  const service = "pay.payments.Payments";
  const tmp = new TempDir();
  const home = process.cwd();
  let reg: EtcdRegistry;
  let dir: RegistryDirectory;

  beforeAll(async () => {
    // A parenthesis never closed: idl/ does not compile.
    tmp.write("idl/orders.fan", "package shop.orders\n\nservice Orders {\n  rpc place(: string\n}\n");
    reg = new EtcdRegistry(SHARED_ETCD);
    dir = new RegistryDirectory(reg, { cluster, appId: "app-1" });
    await dir.register({
      service,
      instanceId: "p1",
      version: "2.0.0",
      endpoints: { http: "http://127.0.0.1:1" },
      shards: [],
      appId: "app-1",
    });
    // The folder an operator runs fanc in: idl/ is read relative to it (forks pool: chdir is allowed).
    process.chdir(tmp.path);
  });

  afterAll(async () => {
    process.chdir(home);
    await dir?.close();
    await reg?.close();
    tmp.cleanup();
  });

  const rule = async (): Promise<unknown> => {
    const kv = await reg.get(`${routesRoot(cluster)}${service}`);
    return kv === undefined ? undefined : JSON.parse(kv.value);
  };

  it("a full registered name needs no IDL: pinned, and idl/ is not even read", async () => {
    const io = captureIo();
    expect(await route(["pin", service, "2.0.0", ...D], io)).toBe(0);
    expect(io.stdout).toEqual([`${service}: pinned to 2.0.0`]);
    expect(io.stderr).toEqual([]);
    expect(await rule()).toEqual({ pin: "2.0.0" });
  });

  it("a short name: idl/ is skipped with a warning and the name found among the registered services", async () => {
    const io = captureIo();
    expect(await route(["clear", "Payments", ...D], io)).toBe(0);
    expect(io.stderr).toHaveLength(1);
    // The first diagnostic says why.
    expect(io.errText()).toMatch(
      /^fanc route: idl\/ skipped \(the IDL under idl has errors: orders\.fan:4:13: error FAN\d+: expected `\)` but found `:`\); names are looked up in discovery only$/,
    );
    expect(io.stdout).toEqual([`${service}: rule cleared; clients use their own version ranges`]);
    expect(await rule()).toBeUndefined();
  });

  it("an unknown name is refused (exit 2) naming the registered services, and nothing is written", async () => {
    const io = captureIo();
    expect(await route(["pin", "Orders", "1.0.0", ...D], io)).toBe(2);
    expect(io.errText()).toContain(
      `fanc route: no service "Orders" registered in cluster "${cluster}" (services: ${service}); Apps look a rule up by the full name`,
    );
    expect((await reg.list(routesRoot(cluster))).items).toEqual([]);
  });

  it("a pin or split naming a version no registered instance has is written, with a warning naming the registered ones", async () => {
    const pin = captureIo();
    expect(await route(["pin", service, "3.0.0", ...D], pin)).toBe(0);
    expect(pin.stdout).toEqual([`${service}: pinned to 3.0.0`]);
    expect(pin.stderr).toEqual([
      `fanc route: warning: no registered instance of ${service} satisfies 3.0.0 in cluster "${cluster}" (versions registered: 2.0.0): every call to it fails UNAVAILABLE until one registers`,
    ]);
    expect(await rule()).toEqual({ pin: "3.0.0" });
    // A range a registered version satisfies: no warning.
    const ranged = captureIo();
    expect(await route(["pin", service, "2.x", ...D], ranged)).toBe(0);
    expect(ranged.stderr).toEqual([]);
    const part = captureIo();
    expect(await route(["split", service, "2.0.0=90", "2.1.0=10", ...D], part)).toBe(0);
    expect(part.stderr).toEqual([
      `fanc route: warning: no registered instance of ${service} runs 2.1.0 in cluster "${cluster}" (versions registered: 2.0.0): its share goes to the other versions until one registers`,
    ]);
    const none = captureIo();
    expect(await route(["split", service, "2.1.0=10", "3.0.0=90", ...D], none)).toBe(0);
    expect(none.errText()).toContain("runs 2.1.0, 3.0.0 in cluster");
    expect(none.errText()).toContain("every call to it fails UNAVAILABLE until one registers");
    expect(await route(["clear", service, ...D], captureIo())).toBe(0);
  });

  it("an --idl given that does not compile is an error, not skipped", async () => {
    const io = captureIo();
    expect(await route(["pin", "Payments", "2.0.0", "--idl", "idl", ...D], io)).toBe(2);
    expect(io.errText()).toMatch(/^fanc route: the IDL under idl has errors:/);
    expect(io.errText()).not.toContain("skipped");
    expect(await rule()).toBeUndefined();
  });
});
