/**
 * `fanc call --tls-insecure` against the brokers, as a user runs it: a private TLS-only
 * redis-server (`rediss://`), nats-server and RabbitMQ node (`amqps://`) whose certificate a
 * throwaway CA signed (test/tls-certs.ts), which fanc is not given. A Conformance service in
 * another process (test/transports/fixtures/child-app.ts, trusting that CA) serves over the
 * broker, registered in the shared etcd. Without `--tls-ca` fanc fails at once naming the
 * certificate problem and the broker; with `--tls-insecure`, or with `--tls-ca` of that CA, it
 * is answered. For etcd over https, `--tls-insecure` alone is refused, and with `--tls-ca` it
 * is said to be ignored there, on the Io of the command (in-process runs included).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { opensslAvailable, type TestPki, testPki } from "../tls-certs.js";
import { canRunPrivateRabbit, describeWithBroker, freePort, PrivateRabbit } from "../transports/amqp-broker.js";
import { type ChildApp, childApp } from "../transports/child.js";
import { natsServerAvailable, PrivateNats } from "../transports/nats-server.js";
import { uniqueCluster } from "../transports/processes.js";
import { PrivateRedis, redisServerAvailable } from "../transports/redis-server.js";
import { etcdUp, PrivateEtcd, SHARED_ETCD } from "../discovery/helpers.js";
import { run as call } from "../../src/cli/call.js";
import { run as health } from "../../src/cli/health.js";
import { run as ls_ } from "../../src/cli/ls.js";
import { run as route } from "../../src/cli/route.js";
import { type CapturedIo, captureIo, runFanc } from "./helpers.js";

type Broker = "redis" | "nats" | "amqp";

const possible = opensslAvailable && etcdUp && (await redisServerAvailable()) && (await natsServerAvailable());
const rabbitPossible = await canRunPrivateRabbit();

/** What `fanc call --json` prints. */
interface Outcome {
  readonly ok: boolean;
  readonly transport?: string;
  readonly value?: unknown;
  readonly error?: { readonly code: string; readonly message: string };
}

describeWithBroker(
  possible,
  "openssl, etcd, redis-server and nats-server",
  "fanc --tls-insecure against the brokers",
)("fanc call --tls-insecure over rediss, amqps and TLS nats (private servers, a CA fanc is not given)", () => {
  let pki: TestPki;
  const children: ChildApp[] = [];

  beforeAll(() => {
    pki = testPki("fan-tls-insecure-");
  });
  afterAll(async () => {
    await Promise.allSettled(children.splice(0).map((c) => c.stop()));
    pki?.remove();
  }, 60_000);

  const cases = (broker: Broker, url: () => string): void => {
    const cluster = uniqueCluster(`tls-insecure-${broker}`);
    const env = (): Record<string, string> => ({ [`FAN_${broker.toUpperCase()}_URL`]: url() });
    const call = async (n: number, extra: string[]): Promise<{ out: Outcome; ms: number; stderr: string }> => {
      const t0 = Date.now();
      const ran = await runFanc(
        [
          "call",
          "Conformance.echo",
          `{"n":${n}}`,
          "--idl",
          "test/transports/fixtures/idl",
          "--discovery",
          `etcd://${SHARED_ETCD}`,
          "--cluster",
          cluster,
          "--via",
          broker,
          "--timeout",
          "15000",
          "--json",
          ...extra,
        ],
        env(),
      );
      const ms = Date.now() - t0;
      expect(ran.stdout, ran.stderr).not.toBe("");
      return { out: JSON.parse(ran.stdout) as Outcome, ms, stderr: ran.stderr };
    };

    beforeAll(async () => {
      const c = childApp({
        FAN_CHILD_TRANSPORTS: broker,
        FAN_CHILD_CLUSTER: cluster,
        FAN_CHILD_SERVE: "Conformance",
        FAN_ETCD: SHARED_ETCD,
        [`FAN_${broker.toUpperCase()}_URL`]: url(),
        FAN_CHILD_TLS_CA: pki.ca.cert,
      });
      children.push(c);
      expect(await c.next(["ready", "start failed"], 120_000)).toMatchObject({ event: "ready" });
    }, 150_000);

    it(`without --tls-ca fails at once naming the certificate problem and the ${broker} server`, async () => {
      const { out, ms } = await call(1, []);
      console.log(`fanc call over ${broker} without --tls-ca: ${ms} ms: ${JSON.stringify(out.error)}`);
      expect(out.ok).toBe(false);
      expect(out.error?.code).toBe("UNAVAILABLE");
      expect(out.error?.message).toContain(`127.0.0.1:${new URL(url()).port}`);
      expect(out.error?.message).toMatch(
        /TLS handshake failed: (self[- ]signed certificate|unable to get local issuer certificate|unable to verify)/,
      );
      expect(ms).toBeLessThan(10_000);
    }, 60_000);

    it(`with --tls-ca of another CA fails naming the certificate problem (${broker})`, async () => {
      const { out } = await call(2, ["--tls-ca", pki.other.cert]);
      expect(out.ok).toBe(false);
      expect(out.error?.message).toContain(`127.0.0.1:${new URL(url()).port}`);
      expect(out.error?.message).toMatch(/TLS handshake failed: .*certificate/);
    }, 60_000);

    it(`with --tls-insecure is answered over ${broker}`, async () => {
      const { out, stderr } = await call(3, ["--tls-insecure"]);
      expect(out, stderr).toMatchObject({ ok: true, transport: broker, value: { n: 3 } });
    }, 60_000);

    it(`fanc health with --tls-insecure asks fan.Health over ${broker}`, async () => {
      const base = ["health", "fan.conformance.Conformance", "--discovery", `etcd://${SHARED_ETCD}`];
      const args = [...base, "--cluster", cluster, "--transport", broker, "--json"];
      const bare = await runFanc(args, env());
      expect(bare.code, bare.stdout + bare.stderr).toBe(1);
      expect(bare.stdout + bare.stderr).toMatch(/certificate/);
      const ok = await runFanc([...args, "--tls-insecure"], env());
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(ok.stdout).toContain("SERVING");
    }, 60_000);

    it(`with --tls-ca of the CA that signed the server's certificate is answered over ${broker}`, async () => {
      const { out, stderr } = await call(4, ["--tls-ca", pki.ca.cert]);
      expect(out, stderr).toMatchObject({ ok: true, transport: broker, value: { n: 4 } });
    }, 60_000);
  };

  describe("redis (rediss://)", () => {
    let redis: PrivateRedis;
    beforeAll(async () => {
      redis = new PrivateRedis(["--appendonly", "no"], await freePort(), pki.serverTls(false));
      await redis.start();
    }, 60_000);
    afterAll(() => redis?.destroy());
    cases("redis", () => redis.url);
  });

  describe("nats (tls {} block)", () => {
    let nats: PrivateNats;
    beforeAll(async () => {
      nats = new PrivateNats(await freePort(), pki.serverTls(false));
      await nats.start();
    }, 60_000);
    afterAll(() => nats?.destroy());
    cases("nats", () => nats.url);
  });

  (rabbitPossible ? describe : describe.skip)("amqp (amqps://, a private RabbitMQ node)", () => {
    let rabbit: PrivateRabbit;
    beforeAll(async () => {
      rabbit = await PrivateRabbit.launch(90_000, pki.serverTls(false));
    }, 200_000);
    afterAll(() => rabbit?.destroy(), 90_000);
    cases("amqp", () => rabbit.tlsUrl as string);
  });

  describe("etcd over https: --tls-insecure does not apply", () => {
    let etcd: PrivateEtcd;
    beforeAll(async () => {
      etcd = new PrivateEtcd(await freePort(), await freePort(), pki.serverTls(true));
      await etcd.start();
    }, 60_000);
    afterAll(() => etcd?.destroy());
    // etcd runs with --client-cert-auth, as in broker-tls-processes.test.ts.
    const ls = (extra: string[]) =>
      runFanc([
        "ls",
        "--discovery",
        `etcd://${etcd.endpoint}`,
        "--cluster",
        uniqueCluster("tls-insecure-etcd"),
        "--tls-cert",
        pki.client.cert,
        "--tls-key",
        pki.client.key,
        ...extra,
      ]);

    it("is refused without --tls-ca, before connecting (exit 2)", async () => {
      const ran = await ls(["--tls-insecure"]);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toContain(`--tls-insecure cannot apply to etcd over https (etcd://${etcd.endpoint})`);
    }, 60_000);

    it("with --tls-ca is said to be ignored for etcd, which is verified against that CA", async () => {
      const ok = await ls(["--tls-insecure", "--tls-ca", pki.ca.cert]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stderr).toContain(
        `warning: --tls-insecure does not apply to etcd (etcd://${etcd.endpoint}): its certificate is verified against --tls-ca`,
      );
      const wrong = await ls(["--tls-insecure", "--tls-ca", pki.other.cert]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/TLS handshake failed/);
    }, 60_000);

    // In-process, as tests and embedders run commands: the warning goes to the command's Io, not to process.stderr.
    it("says so on the Io the command was given (ls, route, call)", async () => {
      const flags = [
        "--discovery",
        `etcd://${etcd.endpoint}`,
        "--cluster",
        uniqueCluster("tls-insecure-etcd-io"),
        "--tls-cert",
        pki.client.cert,
        "--tls-key",
        pki.client.key,
        "--tls-insecure",
        "--tls-ca",
        pki.ca.cert,
      ];
      const warning = `warning: --tls-insecure does not apply to etcd (etcd://${etcd.endpoint})`;
      const runs: [string, (io: CapturedIo) => Promise<number>, number][] = [
        ["ls", (io) => ls_(flags, io), 0],
        ["route show", (io) => route(["show", ...flags], io), 0],
        [
          "call",
          (io) => call(["Conformance.echo", `{"n":1}`, "--idl", "test/transports/fixtures/idl", ...flags], io),
          1,
        ],
      ];
      for (const [name, run, code] of runs) {
        const io = captureIo();
        expect(await run(io), `${name}: ${io.errText()}`).toBe(code);
        expect(io.errText(), name).toContain(warning);
      }
    }, 60_000);

    // health opens etcd twice (a registry for the name, then an App): one warning, on its Io.
    it("says so once, on the Io, for health", async () => {
      const flags = [
        "fan.conformance.Conformance",
        "--discovery",
        `etcd://${etcd.endpoint}`,
        "--cluster",
        uniqueCluster("tls-insecure-etcd-health"),
        "--tls-cert",
        pki.client.cert,
        "--tls-key",
        pki.client.key,
        "--tls-insecure",
        "--tls-ca",
        pki.ca.cert,
      ];
      const io = captureIo();
      const stderr = vi.spyOn(process.stderr, "write");
      try {
        expect(await health(flags, io), io.errText()).toBe(1);
        const printed = stderr.mock.calls.map((c) => String(c[0])).join("");
        expect(printed).not.toContain("--tls-insecure does not apply to etcd");
      } finally {
        stderr.mockRestore();
      }
      expect(io.errText().split("--tls-insecure does not apply to etcd").length - 1, io.errText()).toBe(1);
      expect(io.errText()).toContain("no instance of fan.conformance.Conformance is registered");
    }, 60_000);
  });
});
