/**
 * `fanc call` and `fanc push` on `@since` members, in-process against instances registered in the
 * shared etcd (none serves: the refusal comes before anything is sent). As the generated client,
 * fanc never sends a member to an instance older than its `@since`: with `--version` naming only
 * older ones it refuses with UNIMPLEMENTED (exit 1) instead of letting the old instance answer
 * that it does not know the method; among older and newer ones it picks a new enough one.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as call } from "../../src/cli/call.js";
import { RegistryDirectory } from "../../src/runtime/discovery/directory.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { captureIo, TempDir } from "./helpers.js";

const IDL_TEXT = `package pay

@version("2.1.0")
@transports(http)
service Payments {
  rpc charge(amount: int): string
  @since("2.0.0")
  rpc refund(paymentId: string): string
  @since("2.0.0")
  push forget(paymentId: string)
}
`;

describeEtcd("fanc call / push on @since members (etcd, in-process)", () => {
  const cluster = randomCluster();
  const tmp = new TempDir();
  let reg: EtcdRegistry;
  let dir: RegistryDirectory;
  let C: string[];

  beforeAll(async () => {
    tmp.write("idl/pay.fan", IDL_TEXT);
    C = ["--idl", `${tmp.path}/idl`, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
    reg = new EtcdRegistry(SHARED_ETCD);
    dir = new RegistryDirectory(reg, { cluster, appId: "app-1" });
    // Nothing listens on port 1: a call that is sent fails UNAVAILABLE, naming the instance.
    for (const [instanceId, version] of [
      ["pay-old", "1.4.0"],
      ["pay-new", "2.0.0"],
    ] as const)
      await dir.register({
        service: "pay.Payments",
        instanceId,
        version,
        endpoints: { http: "http://127.0.0.1:1" },
        shards: [],
        appId: "app-1",
      });
  });

  afterAll(async () => {
    await dir?.close();
    await reg?.close();
    tmp.cleanup();
  });

  it("--version naming only older instances: UNIMPLEMENTED as the generated client says, nothing sent (exit 1)", async () => {
    for (const [cmd, target] of [
      ["call", "Payments.refund"],
      ["push", "Payments.forget"],
    ] as const) {
      const io = captureIo();
      expect(await call([target, '{"paymentId":"x"}', ...C, "--version", "1.4.0"], io, cmd)).toBe(1);
      expect(io.errText()).toBe(
        `fanc ${cmd}: UNIMPLEMENTED: pay.Payments.${target.slice(9)} needs version 2.0.0 or later; the instances this client may call run 1.4.0 (--version 1.4.0; nothing was sent)`,
      );
      expect(io.stdout).toEqual([]);
    }
    // --instance naming the old one: the same refusal.
    const io = captureIo();
    expect(
      await call(["Payments.refund", '{"paymentId":"x"}', ...C, "--version", "1.x", "--instance", "pay-old"], io),
    ).toBe(1);
    expect(io.errText()).toContain("UNIMPLEMENTED: pay.Payments.refund needs version 2.0.0 or later");
  });

  it("among older and newer instances, only a new enough one is picked", async () => {
    for (let k = 0; k < 6; k++) {
      const io = captureIo();
      expect(await call(["Payments.refund", '{"paymentId":"x"}', ...C, "--version", ">=1.0.0", "--json"], io)).toBe(1);
      const o = JSON.parse(io.outText()) as { instance: string; error: { code: string } };
      expect(o.instance).toBe("pay-new");
      expect(o.error.code).toBe("UNAVAILABLE");
    }
    // A member without @since goes to either.
    const seen = new Set<string>();
    for (let k = 0; k < 12 && seen.size < 2; k++) {
      const io = captureIo();
      await call(["Payments.charge", '{"amount":1}', ...C, "--version", ">=1.0.0", "--json"], io);
      seen.add((JSON.parse(io.outText()) as { instance: string }).instance);
    }
    expect([...seen].sort()).toEqual(["pay-new", "pay-old"]);
  });
});
