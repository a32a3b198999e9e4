/**
 * `createApp()` takes cluster, discovery and transport addresses from the environment when its
 * options leave them out (options win); `createApp({ discovery })` checks a string at once.
 */
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { withEnvironment } from "../../src/runtime/app/env.js";
import { EtcdRegistry } from "../../src/runtime/discovery/etcd.js";
import { servicePrefix } from "../../src/runtime/discovery/keys.js";
import { createApp, FanError } from "../../src/runtime/index.js";
import { silentLogger } from "../../src/runtime/telemetry/logging.js";
import { spawnCaptured } from "../cli/helpers.js";
import { Catalog } from "./fixtures/shop.js";

const script = fileURLToPath(new URL("./fixtures/env-app.ts", import.meta.url));
const tsx = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe("withEnvironment", () => {
  const env = {
    FAN_CLUSTER: "prod",
    FAN_DISCOVERY: "etcd://10.0.0.1:2379,10.0.0.2:2379",
    FAN_AMQP_URL: "amqp://a:5672, amqp://b:5672",
    FAN_REDIS_URL: "redis://r:6379/2",
    FAN_HTTP_PORT: "8080",
    FAN_HTTP_HOST: "0.0.0.0",
    FAN_ZMQ_PORT: "5555",
    FAN_ZMQ_EVENTS_PUBLISH: "tcp://hub:6000",
    FAN_ZMQ_EVENTS_SUBSCRIBE: "tcp://hub:6001",
  };

  it("fills cluster, discovery and the addresses of the transports the options name", () => {
    const o = withEnvironment({ transports: { amqp: {}, http: {}, zmq: {} } }, env);
    expect(o.cluster).toBe("prod");
    expect(o.discovery).toBe("etcd://10.0.0.1:2379,10.0.0.2:2379");
    expect(o.transports).toEqual({
      amqp: { url: ["amqp://a:5672", "amqp://b:5672"] },
      http: { host: "0.0.0.0", port: 8080 },
      zmq: { port: 5555, events: { publish: "tcp://hub:6000", subscribe: "tcp://hub:6001" } },
    });
  });

  it("options win, a ready factory is left alone, and no transport is added that nobody named", () => {
    const factory = () => {
      throw new Error("not called");
    };
    const o = withEnvironment(
      { cluster: "mine", discovery: "memory", transports: { redis: { url: "redis://mine" }, http: factory } },
      env,
    );
    expect(o.cluster).toBe("mine");
    expect(o.discovery).toBe("memory");
    expect(o.transports).toEqual({ redis: { url: "redis://mine" }, http: factory });
    expect(withEnvironment({}, env).transports).toBeUndefined();
  });

  it("FAN_TRANSPORTS names the transports when the options name none", () => {
    const o = withEnvironment({}, { ...env, FAN_TRANSPORTS: "redis, http,local" });
    expect(o.transports).toEqual({ redis: { url: "redis://r:6379/2" }, http: { host: "0.0.0.0", port: 8080 } });
    expect(withEnvironment({ transports: { amqp: {} } }, { FAN_TRANSPORTS: "redis" }).transports).toEqual({ amqp: {} });
  });

  it("FAN_NATS_URL fills transports.nats.url, a comma list as the servers of a NATS cluster", () => {
    expect(withEnvironment({}, { FAN_TRANSPORTS: "nats", FAN_NATS_URL: "nats://n:4222" }).transports).toEqual({
      nats: { url: "nats://n:4222" },
    });
    expect(withEnvironment({ transports: { nats: {} } }, { FAN_NATS_URL: "nats://a:4222, nats://b:4222" }).transports).toEqual({
      nats: { url: ["nats://a:4222", "nats://b:4222"] },
    });
  });

  it("an unset or empty environment changes nothing", () => {
    const opts = { transports: { http: { port: 1 } } };
    expect(withEnvironment(opts, {})).toEqual(opts);
    expect(withEnvironment({}, { FAN_CLUSTER: " ", FAN_DISCOVERY: "" })).toEqual({});
  });

  it("a bad value is an error naming the variable", () => {
    expect(thrown(() => withEnvironment({}, { FAN_DISCOVERY: "zk://x:1" }))).toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining('FAN_DISCOVERY "zk://x:1" is not a discovery: expected "memory" or "etcd://'),
    });
    expect(String(thrown(() => withEnvironment({}, { FAN_DISCOVERY: "etcd://nohost" })))).toContain("FAN_DISCOVERY: bad etcd endpoint");
    expect(String(thrown(() => withEnvironment({ transports: { http: {} } }, { FAN_HTTP_PORT: "80a" })))).toContain(
      'FAN_HTTP_PORT="80a" is not a port',
    );
    expect(String(thrown(() => withEnvironment({}, { FAN_TRANSPORTS: "http,kafka" })))).toContain('FAN_TRANSPORTS names "kafka"');
    expect(String(thrown(() => withEnvironment({ transports: { zmq: {} } }, { FAN_ZMQ_EVENTS_PUBLISH: "tcp://h:1" })))).toContain(
      "set both or neither",
    );
  });
});

describe("createApp({ discovery }) with a string", () => {
  it("accepts any string by type and refuses a bad one at once, naming it", () => {
    const spec: string = "consul://127.0.0.1:8500";
    const err = thrown(() => createApp({ discovery: spec, logger: silentLogger() }));
    expect(FanError.is(err)).toBe(true);
    expect((err as Error).message).toBe(
      'createApp({ discovery }) "consul://127.0.0.1:8500" is not a discovery: expected "memory" or "etcd://host:port[,host:port...]"',
    );
    expect(() => createApp({ discovery: "memory" as string, logger: silentLogger() })).not.toThrow();
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a !== null ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

describe("a service configured only by the environment (child process, etcd, redis and http)", () => {
  it("registers in the cluster and on the port the environment names, and answers over redis and http", async () => {
    const cluster = `env-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const httpPort = await freePort();
    const { child, stdout, stderr, exited } = spawnCaptured(tsx, [script], {
      FAN_CLUSTER: cluster,
      FAN_DISCOVERY: "etcd://127.0.0.1:2379",
      FAN_TRANSPORTS: "redis,http",
      FAN_REDIS_URL: "redis://127.0.0.1:6379",
      FAN_HTTP_PORT: String(httpPort),
    });
    const caller = createApp({
      cluster,
      discovery: "etcd://127.0.0.1:2379",
      transports: { redis: { url: "redis://127.0.0.1:6379" }, http: {} },
      logger: silentLogger(),
    });
    const registry = new EtcdRegistry("etcd://127.0.0.1:2379");
    try {
      const end = Date.now() + 30_000;
      while (!stdout().includes('"ready":true') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(stdout(), stderr()).toContain(`"cluster":"${cluster}"`);
      const listed = await registry.list(servicePrefix(cluster, "test.shop.Catalog"));
      expect(listed.items).toHaveLength(1);
      const info = JSON.parse(listed.items[0]?.value ?? "{}") as { endpoints: Record<string, string> };
      expect(info.endpoints.http).toBe(`http://127.0.0.1:${httpPort}`);
      expect(info.endpoints.redis).toBeDefined();
      await caller.start();
      for (const transport of ["redis", "http"] as const) {
        const got = await caller.client(Catalog, { transport }).get({ id: "from-env" });
        expect(got.id).toBe("from-env");
      }
    } finally {
      await caller.stop();
      await registry.close();
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      child.kill("SIGKILL");
    }
  }, 60_000);
});
