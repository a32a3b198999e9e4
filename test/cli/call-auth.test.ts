/**
 * `fanc call` and `fanc push` of `@auth` methods: `--auth <value>` (else `$FAN_AUTH`) sends the
 * envelope header `authorization` a verifier reads, `--header name=value` any custom header,
 * over http and zmq alike. Vault (test/gateway/fixtures/vault-service.ts) runs in a child
 * process; its verifier knows "Bearer open-sesame". Malformed or reserved headers are refused
 * before anything is sent (exit 2).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { run } from "../../src/cli/call.js";
import { SHARED_ETCD } from "../discovery/helpers.js";
import { startVault, stopChild, VAULT_IDL } from "../gateway/helpers.js";
import { describeWithBroker } from "../transports/amqp-broker.js";
import { uniqueCluster, up } from "../transports/processes.js";
import { type CapturedChild, captureIo, until } from "./helpers.js";

const TOKEN = "Bearer open-sesame";

describeWithBroker(
  up.etcd,
  "etcd",
  "fanc call --auth",
)("fanc call and push with credentials", () => {
  const cluster = uniqueCluster("call-auth");
  const at = ["--idl", VAULT_IDL, "--cluster", cluster, "--discovery", `etcd://${SHARED_ETCD}`];
  let vault: CapturedChild | undefined;

  beforeAll(async () => {
    vault = await startVault(cluster, "http,zmq");
  }, 180_000);

  afterAll(async () => {
    await stopChild(vault);
  }, 30_000);

  const call = async (
    args: string[],
    kind: "call" | "push" = "call",
  ): Promise<{ code: number; out: string; err: string }> => {
    const io = captureIo();
    const code = await run([...args, ...at], io, kind);
    return { code, out: io.outText(), err: io.errText() };
  };

  it("--auth sends the credentials a verifier reads, over http and zmq", async () => {
    const none = await call(["Vault.whoami"]);
    expect(none.code).toBe(1);
    expect(none.err).toContain("error UNAUTHENTICATED: fan.vault.Vault.whoami requires credentials");
    for (const via of ["http", "zmq"]) {
      const ok = await call(["Vault.whoami", "--auth", TOKEN, "--via", via]);
      expect(ok.err).toContain(`over ${via}`);
      expect(ok.code).toBe(0);
      expect(JSON.parse(ok.out)).toEqual({ principal: "ada", authorization: TOKEN });
    }
    const wrong = await call(["Vault.whoami", "--auth", "Bearer wrong"]);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain("UNAUTHENTICATED");
  }, 60_000);

  it("--header name=value and $FAN_AUTH do too; a push takes them", async () => {
    const viaHeader = await call(["Vault.put", '{"key":"k","value":"v"}', "--header", `authorization=${TOKEN}`]);
    expect(viaHeader.code).toBe(0);
    expect(JSON.parse(viaHeader.out)).toBe("k=v");
    process.env.FAN_AUTH = TOKEN;
    try {
      const fromEnv = await call(["Vault.whoami", "--via", "zmq"]);
      expect(fromEnv.code).toBe(0);
      // --auth wins over the environment.
      const given = await call(["Vault.whoami", "--auth", "Bearer wrong"]);
      expect(given.code).toBe(1);
    } finally {
      delete process.env.FAN_AUTH;
    }
    const pushed = await call(
      ["Vault.note", '{"text":"from fanc"}', "--auth", TOKEN, "--header", "tenant=acme"],
      "push",
    );
    expect(pushed.err).toContain("acknowledged");
    expect(pushed.code).toBe(0);
    await until("Vault handles the push", () => (vault?.stdout() ?? "").includes('"text":"from fanc"'), 10_000);
  }, 60_000);

  it("refuses a header without a name, one the runtime sets, and credentials given twice (exit 2)", async () => {
    for (const [args, why] of [
      [["--header", "tenant"], "--header takes <name>=<value>"],
      [["--header", "=x"], "--header takes <name>=<value>"],
      [["--header", "deadline=5"], "--header deadline: the runtime sets that header itself"],
      [["--auth", TOKEN, "--header", `authorization=${TOKEN}`], "give the credentials once"],
    ] as const) {
      const r = await call(["Vault.whoami", ...args]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(why);
    }
  }, 30_000);
});
