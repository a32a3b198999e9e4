/**
 * `fanc call` and `fanc push` as a user runs them: `bin/fanc.mjs` in a child process, against
 * a service served by another process (test/transports/fixtures/child-app.ts) on redis, amqp,
 * zmq and http at once, registered in the shared etcd under a unique cluster. The IDL is read
 * from the conformance fixture's folder with `--idl`. A traffic rule (`fanc route`) narrows the
 * pick as it does a generated client's, unless `--version` or `--instance` bypasses it.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { run as route } from "../../src/cli/route.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { servicePrefix } from "../../src/runtime/discovery/keys.js";
import { describeEtcd, randomCluster, SHARED_ETCD } from "../discovery/helpers.js";
import { type CapturedChild, captureIo, runFanc, spawnCaptured, until } from "./helpers.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const IDL = ["--idl", "test/transports/fixtures/idl"];

const fanc = runFanc;

/** What `--json` prints. */
interface Outcome {
  ok: boolean;
  service: string;
  method: string;
  transport: string;
  instance: string;
  ms: number;
  traceId: string;
  value?: unknown;
  error?: { code: string; message: string; name?: string; fields?: unknown };
}

describeEtcd("fanc call / fanc push (child processes)", () => {
  const cluster = randomCluster();
  const C = [...IDL, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
  let server: CapturedChild;

  beforeAll(async () => {
    server = spawnCaptured(join(repo, "node_modules/.bin/tsx"), ["test/transports/fixtures/child-app.ts"], {
      FAN_CHILD_SERVE: "Conformance",
      FAN_CHILD_TRANSPORTS: "redis,amqp,zmq,http,nats,tcp",
      FAN_CHILD_CLUSTER: cluster,
      FAN_ETCD: SHARED_ETCD,
    });
    await until(
      "the service process is ready",
      () => /"event":"ready"/.test(server.stdout()) || /start failed/.test(server.stdout()),
      120_000,
    );
    expect(server.stdout()).toContain('"event":"ready"');
  }, 150_000);

  afterAll(async () => {
    server?.child.kill("SIGTERM");
    await server?.exited;
  }, 30_000);

  it("calls an rpc over each transport (--via), printing the typed reply, instance and trace id", async () => {
    for (const via of ["http", "zmq", "tcp", "redis", "amqp", "nats"]) {
      const r = await fanc(["call", "Conformance.echo", '{"n":3,"text":"hi"}', ...C, "--via", via, "--json"]);
      expect(r.stderr, via).toBe("");
      expect(r.code, via).toBe(0);
      const o = JSON.parse(r.stdout) as Outcome;
      expect(o).toMatchObject({
        ok: true,
        service: "fan.conformance.Conformance",
        method: "echo",
        transport: via,
        value: { n: 3, text: "hi" },
      });
      expect(o.instance).toMatch(/^Conformance-/);
      // Over a broker the version's shared queue took the call: the instance is only the one offered.
      expect((o as { sharedQueue?: boolean }).sharedQueue, via).toBe(
        ["redis", "amqp", "nats"].includes(via) || undefined,
      );
      expect(o.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(o.ms).toBeGreaterThan(0);
    }
    // Text output, discovery and cluster from the environment: the value on stdout, the rest on stderr.
    const t = await fanc(["call", "fan.conformance.Conformance.echo", '{"n":7}', ...IDL], {
      FAN_DISCOVERY: `etcd://${SHARED_ETCD}`,
      FAN_CLUSTER: cluster,
    });
    expect(t.code).toBe(0);
    expect(JSON.parse(t.stdout)).toEqual({ n: 7 });
    expect(t.stderr).toMatch(/^ok · [\d.]+ ms · Conformance-\S+ over http · trace [0-9a-f]{32}\n$/);
  }, 600_000);

  it("--version and --instance narrow the instances", async () => {
    const first = await fanc(["call", "Conformance.echo", '{"n":1}', ...C, "--version", "^1.0.0", "--json"]);
    expect(first.code).toBe(0);
    const id = (JSON.parse(first.stdout) as Outcome).instance;
    // tcp is a direct transport too (docs/fanc-call.md).
    for (const via of ["zmq", "tcp"]) {
      const args = ["call", "Conformance.echo", '{"n":2}', ...C, "--instance", id, "--via", via, "--json"];
      const pinned = await fanc(args);
      expect(pinned.code, pinned.stderr).toBe(0);
      expect(JSON.parse(pinned.stdout)).toMatchObject({ instance: id, transport: via, value: { n: 2 } });
    }
    const none = await fanc(["call", "Conformance.echo", '{"n":3}', ...C, "--version", ">=2"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(
      `fanc call: no instance of fan.conformance.Conformance (version >=2) is registered in cluster "${cluster}"; versions running: 1.0.0\n`,
    );
    // Without --version, fanc calls the IDL's major, as a client generated from it does: an IDL
    // at 2.0.0 does not reach the 1.0.0 instance, whose contract may differ.
    const idl2 = join(mkdtempSync(join(tmpdir(), "fanc-v2-")), "idl");
    mkdirSync(idl2);
    const source = readFileSync("test/transports/fixtures/idl/conformance.fan", "utf8");
    writeFileSync(join(idl2, "conformance.fan"), source.replace('version "1.0.0"', 'version "2.0.0"'));
    const C2 = ["--idl", idl2, ...C.slice(2)];
    const major = await fanc(["call", "Conformance.echo", '{"n":3}', ...C2]);
    expect(major.code).toBe(1);
    expect(major.stderr).toBe(
      `fanc call: no instance of fan.conformance.Conformance (version 2.x, the IDL's major: it is at 2.0.0) is registered in cluster "${cluster}"; versions running: 1.0.0 (--version picks one)\n`,
    );
    const picked = await fanc(["call", "Conformance.echo", '{"n":3}', ...C2, "--version", "1.x", "--json"]);
    expect(picked.code, picked.stderr).toBe(0);
    const other = await fanc(["call", "Conformance.echo", '{"n":4}', ...C, "--instance", "nobody"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain("(id nobody)");
    // Over a broker through the instance's own queue (call-instance-brokers.test.ts).
    const broker = await fanc(["call", "Conformance.echo", '{"n":5}', ...C, "--instance", id, "--via", "amqp"]);
    expect(broker.code, broker.stderr).toBe(0);
    expect(broker.stderr).toContain(`${id} over amqp (its own queue, named by --instance)`);
  }, 300_000);

  it("prints a typed IDL error with its name and fields, exit 1", async () => {
    const r = await fanc(["call", "Conformance.fail", '{"code":"TEAPOT","message":"no tea"}', ...C, "--via", "redis"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("error FAILED_PRECONDITION fan.conformance.Teapot: no tea\n");
    expect(r.stderr).toContain('  fields: {"reason":"short and stout"}\n');
    const j = await fanc([
      "call",
      "Conformance.fail",
      '{"code":"TEAPOT","message":"no tea"}',
      ...C,
      "--via",
      "zmq",
      "--json",
    ]);
    expect(j.code).toBe(1);
    expect((JSON.parse(j.stdout) as Outcome).error).toEqual({
      code: "FAILED_PRECONDITION",
      message: "no tea",
      name: "fan.conformance.Teapot",
      fields: { reason: "short and stout" },
    });
  }, 300_000);

  it("a --timeout shorter than the handler ends in DEADLINE_EXCEEDED", async () => {
    for (const via of ["amqp", "http"]) {
      const r = await fanc([
        "call",
        "Conformance.sleep",
        '{"ms":20000}',
        ...C,
        "--via",
        via,
        "--timeout",
        "1000",
        "--json",
      ]);
      expect(r.code, via).toBe(1);
      const o = JSON.parse(r.stdout) as Outcome;
      expect(o.error?.code, via).toBe("DEADLINE_EXCEEDED");
      // It waited for the deadline, not for the handler (20 s).
      expect(o.ms, via).toBeGreaterThanOrEqual(900);
      expect(o.ms, via).toBeLessThan(15_000);
    }
  }, 300_000);

  it("refuses bad JSON and an invalid argument before sending anything (exit 2, naming the field)", async () => {
    // An unreachable registry: a refusal that reached for discovery would fail differently.
    const off = [...IDL, "--discovery", "etcd://127.0.0.1:1", "--cluster", cluster];
    const bad = await fanc(["push", "Conformance.record", '{"id":"bad-json"', ...off]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^fanc push: the arguments are not valid JSON: /);
    const invalid = await fanc(["push", "Conformance.record", '{"id":"bad-arg","failures":"two"}', ...off]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toBe(
      'fanc push: invalid argument failures: expected an int (a safe integer), got string "two" (nothing was sent)\n',
    );
    const nested = await fanc(["call", "Conformance.echo", "{}", ...off]);
    expect(nested.code).toBe(2);
    expect(nested.stderr).toContain("invalid argument n:");
    const kind = await fanc(["call", "Conformance.record", '{"id":"x"}', ...off]);
    expect(kind.code).toBe(2);
    expect(kind.stderr).toBe('fanc call: fan.conformance.Conformance.record is a push: use "fanc push"\n');
    const unknown = await fanc(["call", "Conformance.nope", "{}", ...off]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('has no method "nope"');
    // The same arguments, once valid, do reach the service; the refused ones never did.
    const ok = await fanc(["push", "Conformance.record", '{"id":"after-refusals"}', ...C, "--via", "redis"]);
    expect(ok.code).toBe(0);
    await until("the valid push is delivered", () => server.stdout().includes('"id":"after-refusals"'), 60_000);
    expect(server.stdout()).not.toContain("bad-json");
    expect(server.stdout()).not.toContain("bad-arg");
  }, 300_000);

  it("a push is acknowledged and delivered", async () => {
    for (const via of ["amqp", "zmq"]) {
      const id = `ack-${via}-${process.pid}`;
      const r = await fanc(["push", "Conformance.record", JSON.stringify({ id }), ...C, "--via", via]);
      expect(r.code, via).toBe(0);
      expect(r.stdout, via).toBe("");
      expect(r.stderr, via).toMatch(new RegExp(`^acknowledged · [\\d.]+ ms · Conformance-\\S+ over ${via}`));
      await until(`push ${id} delivered`, () => server.stdout().includes(`"id":"${id}"`), 60_000);
    }
  }, 300_000);

  // Last: it registers a second, unreachable instance at 1.1.0 for as long as it runs.
  it("honours the service's traffic rule as a generated client does, unless --version bypasses it", async () => {
    const registry = new EtcdRegistry(`etcd://${SHARED_ETCD}`);
    const prefix = servicePrefix(cluster, "fan.conformance.Conformance");
    const io = captureIo();
    const R = [...IDL, "--discovery", `etcd://${SHARED_ETCD}`, "--cluster", cluster];
    try {
      const real = JSON.parse((await registry.list(prefix)).items[0]?.value ?? "{}") as Record<string, unknown>;
      await registry.put(
        `${prefix}Conformance-gone`,
        JSON.stringify({ ...real, version: "1.1.0", endpoints: { http: "http://127.0.0.1:9" } }),
      );
      // The pin leaves the real instance only (the unreachable 1.1.0 one would fail the call).
      expect(await route(["pin", "Conformance", "1.0.0", ...R], io)).toBe(0);
      const pinned = await fanc(["call", "Conformance.echo", '{"n":1}', ...C, "--via", "http", "--json"]);
      expect(pinned.code, pinned.stderr).toBe(0);
      const o = JSON.parse(pinned.stdout) as Outcome & { rule?: unknown; ruleBypassed?: string };
      expect(o.instance).toMatch(/^Conformance-(?!gone)/);
      expect(o.rule).toEqual({ pin: "1.0.0" });
      expect(o.ruleBypassed).toBeUndefined();
      // A rule nothing satisfies: the runtime's UNAVAILABLE naming the rule, nothing sent.
      expect(await route(["pin", "Conformance", "2.0.0", ...R], io)).toBe(0);
      const none = await fanc(["call", "Conformance.echo", '{"n":2}', ...C]);
      expect(none.code).toBe(1);
      expect(none.stderr).toBe(
        'fanc call: no instance of fan.conformance.Conformance 1.x under the traffic rule {"pin":"2.0.0"} (fanc route show) (versions available: 1.0.0, 1.1.0); --version or --instance bypasses it\n',
      );
      const bypassed = await fanc(["call", "Conformance.echo", '{"n":3}', ...C, "--version", "1.0.0"]);
      expect(bypassed.code, bypassed.stderr).toBe(0);
      expect(bypassed.stderr).toMatch(
        /^ok · [\d.]+ ms · Conformance-\S+ over \S+ .*· traffic rule \{"pin":"2\.0\.0"\} bypassed by --version · trace /,
      );
    } finally {
      await route(["clear", "fan.conformance.Conformance", ...R], io);
      await registry.delete(`${prefix}Conformance-gone`);
      await registry.close();
    }
  }, 120_000);
});
