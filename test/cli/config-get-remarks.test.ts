/**
 * `fanc config get` flags values the IDL's `config {}` refuses (trial 5 finding 9): an
 * `etcdctl put .../feePercent '{bad json'` for an `int` was printed as `feePercent: "{bad json"`
 * with no remark, though the running App refused it and a new one would not start. stdout stays
 * the config (YAML or --json), the remarks go to stderr, and the exit code stays 0.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as config } from "../../src/cli/config.js";
import { RegistryConfigSource } from "../../src/runtime/discovery/config.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { captureIo, TempDir } from "./helpers.js";

const IDL_TEXT = `package shop.billing

service Billing {
  config { currency: string = "EUR", feePercent: int = 2, apiKey: string @secret, region: string }
}
`;

describe("fanc config get with values the IDL refuses (--file)", () => {
  const tmp = new TempDir();
  let args: (file: string) => string[];
  beforeAll(() => {
    tmp.write("idl/billing.fan", IDL_TEXT);
    tmp.write(
      "bad.yml",
      'shop.billing.Billing:\n  feePercent: "{bad json"\n  apiKey: 42\n  curency: USD\n  currency: EUR\n',
    );
    tmp.write("good.yml", "shop.billing.Billing:\n  feePercent: 3\n  apiKey: k\n  region: eu\n");
    args = (file) => ["--file", `${tmp.path}/${file}`, "--idl", `${tmp.path}/idl`];
  });
  afterAll(() => tmp.cleanup());

  it("names each value that does not fit and what the IDL expects, a @secret one without its value; exit 0", async () => {
    const io = captureIo();
    expect(await config(["get", "Billing", "--json", ...args("bad.yml")], io)).toBe(0);
    // stdout is the config as stored, still parseable.
    expect(JSON.parse(io.outText())).toEqual({
      feePercent: "{bad json",
      apiKey: "[secret]",
      curency: "[undeclared]",
      currency: "EUR",
    });
    expect(io.stderr).toHaveLength(2);
    expect(io.stderr[0]).toMatch(
      /^fanc config: warning: the IDL's config block of shop\.billing\.Billing refuses this \(a running instance keeps its last good config, a new one does not start\): feePercent: .*int.*"\{bad json"; apiKey: .*\(the value is @secret: not shown\); region: required, not set$/,
    );
    expect(io.stderr[0]).not.toContain("42");
    expect(io.stderr[1]).toBe(
      "fanc config: warning: not declared in the IDL's config block of shop.billing.Billing (the App ignores it): curency",
    );
  });

  it("one key: only that key's remark", async () => {
    const io = captureIo();
    expect(await config(["get", "Billing", "feePercent", ...args("bad.yml")], io)).toBe(0);
    expect(io.outText()).toBe(`"{bad json"`);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toMatch(/refuses this .*: feePercent: [^;]*"\{bad json"$/);
    const fine = captureIo();
    expect(await config(["get", "Billing", "currency", ...args("bad.yml")], fine)).toBe(0);
    expect(fine.stderr).toEqual([]);
  });

  it("a config that fits: no remark", async () => {
    const io = captureIo();
    expect(await config(["get", "Billing", ...args("good.yml")], io)).toBe(0);
    expect(io.stderr).toEqual([]);
  });
});

describeEtcd("fanc config get with a value the IDL refuses (etcd, as in the trial)", () => {
  const tmp = new TempDir();
  const cluster = randomCluster();
  const registry = new EtcdRegistry(SHARED_ETCD);
  const source = new RegistryConfigSource(registry, cluster);
  beforeAll(async () => {
    tmp.write("idl/billing.fan", IDL_TEXT);
    await source.update("shop.billing.Billing", { apiKey: "k", region: "eu" });
    // What `etcdctl put` leaves: a value that is not JSON, read as the string it is.
    await registry.client.put(`/fan/${cluster}/config/shop.billing.Billing/feePercent`).value("{bad json");
  });
  afterAll(async () => {
    await source.replace("shop.billing.Billing", {});
    await source.close();
    await registry.close();
    tmp.cleanup();
  });

  it("flags the raw value that is not an int", async () => {
    const io = captureIo();
    const code = await config(
      ["get", "Billing", "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster, "--idl", `${tmp.path}/idl`],
      io,
    );
    expect(code, io.errText()).toBe(0);
    expect(io.outText()).toContain('feePercent: "{bad json"');
    expect(io.errText()).toMatch(/refuses this .*: feePercent: [^;]*"\{bad json"$/);
  });
});
