/**
 * Which pushes a route parks (call/parked.ts, call/route.ts) by the client's version range and
 * the traffic rule, and which registered instances turn parking into a refusal: one the push
 * could be meant for is registered but out of reach, and no instance of another major reads the
 * queue. In memory: the producer has redis only, every registered instance serves http only
 * (out of its reach, as in parked-pushes.test.ts between processes), and the client's generated
 * code is 1.4.0. Parked pushes reaching a consumer are in parked-pushes.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { TransportName } from "../../src/runtime/descriptor.js";
import { Route, type RouteHost, type ServiceTraffic } from "../../src/runtime/call/route.js";
import type { TrafficRule } from "../../src/runtime/call/versions.js";
import type { InstanceInfo, InstanceSet } from "../../src/runtime/discovery/types.js";
import { FanError } from "../../src/runtime/errors.js";
import type { Transport } from "../../src/runtime/transports/transport.js";

const SERVICE = "svc.Orders";
const redis = { name: "redis" } as unknown as Transport;

const host: RouteHost = {
  appId: "producer",
  reach: (info) =>
    info.endpoints.redis === undefined
      ? undefined
      : { transport: redis, endpoint: info.endpoints.redis, values: false },
  transportNames: () => ["redis"],
  inFlight: () => 0,
  // The queue of the major `version` names: `redis queue v<major>`.
  parked: (_service, version) => ({
    transport: redis,
    endpoint: `redis queue v${version.split(".")[0]}`,
    values: false,
  }),
};

/** An instance of `version` serving http only: registered, out of the producer's reach. */
function httpOnly(version: string): InstanceInfo {
  return {
    service: SERVICE,
    instanceId: `orders-${version}`,
    version,
    endpoints: { http: "http://127.0.0.1:1" },
    shards: [],
    startedAt: 0,
    load: 0,
    appId: "consumer",
  };
}

function instanceSet(versions: readonly string[]): InstanceSet {
  const list = versions.map(httpOnly);
  return { instances: () => list, onChange: () => () => undefined, close: async () => undefined };
}

function traffic(rule: TrafficRule | undefined): ServiceTraffic | undefined {
  return rule === undefined ? undefined : { current: () => rule, onChange: () => () => undefined };
}

const push = { name: "record", kind: "push" as const };
const UNPARKED = "a push waits in its service's queue only when";

/**
 * Where a push of a client with `version` under `rule` goes while `registered` are registered:
 * `parked in v<major>`; `refused: registered` (an instance it could be meant for is out of reach);
 * `refused: no queue` (the range or rule names no one whole major). `pinned`: per call.
 */
function outcome(version: string, registered: readonly string[], rule?: TrafficRule, pinned?: TransportName): string {
  const t = traffic(rule);
  const route = new Route(host, instanceSet(registered), SERVICE, {
    range: version,
    parking: { version: "1.4.0", transports: [] },
    ...(t === undefined ? {} : { traffic: t }),
  });
  try {
    return `parked in ${route.pick(undefined, pinned, push).endpoint.slice("redis queue ".length)}`;
  } catch (e) {
    if (!FanError.is(e) || e.code !== "UNAVAILABLE") throw e;
    expect(e.message).toMatch(new RegExp(`^no instance of ${SERVICE}`));
    return e.message.includes(UNPARKED) ? "refused: no queue" : "refused: registered";
  }
}

describe("a client of any version (`*`): parked in its generated code's major, only while nothing is registered", () => {
  it("with nothing registered its push waits in the queue of its generated code's major (v1)", () => {
    expect(outcome("*", [])).toBe("parked in v1");
  });

  it("with only a 2.x instance registered, out of reach, its push is refused, not left in the v1 queue no 2.x instance reads", () => {
    expect(outcome("*", ["2.0.0"])).toBe("refused: registered");
    // Also when the call is pinned to the transport rather than the client.
    expect(outcome("*", ["2.0.0"], undefined, "redis")).toBe("refused: registered");
  });

  it("an instance of any major or prerelease registered is a refusal", () => {
    expect(outcome("*", ["1.4.0"])).toBe("refused: registered");
    expect(outcome("*", ["0.9.0"])).toBe("refused: registered");
    expect(outcome("*", ["2.0.0-beta.1"])).toBe("refused: registered");
  });

  it("a 2.x instance a pin to 1.x excludes is a refusal too: the rule may admit it before the push is read", () => {
    expect(outcome("*", [], { pin: "1.x" })).toBe("parked in v1");
    expect(outcome("*", ["2.0.0"], { pin: "1.x" })).toBe("refused: registered");
  });

  it("a rule that does not admit all of the generated code's major leaves no queue", () => {
    expect(outcome("*", [], { pin: "2.x" })).toBe("refused: no queue");
    expect(outcome("*", [], { pin: "1.5.0" })).toBe("refused: no queue");
    expect(outcome("*", [], { split: { "1.4.0": 50, "2.0.0": 50 } })).toBe("refused: no queue");
  });

  it("`x` and `>=0.0.0` admit every version too and behave as `*`", () => {
    for (const any of ["x", ">=0.0.0"]) {
      expect(outcome(any, [])).toBe("parked in v1");
      expect(outcome(any, ["2.0.0"])).toBe("refused: registered");
    }
  });
});

describe("a client of one whole major: parked while no instance of that major is registered", () => {
  it("`1.x`, `~1` and `1` park in v1 while only another major is registered (its instances neither take the push nor read v1)", () => {
    for (const range of ["1.x", "~1", "1"]) {
      expect(outcome(range, [])).toBe("parked in v1");
      expect(outcome(range, ["2.0.0", "0.9.0"])).toBe("parked in v1");
    }
  });

  it("`1.x` is refused while a 1.x instance, a prerelease included, is registered out of reach", () => {
    expect(outcome("1.x", ["1.0.0"])).toBe("refused: registered");
    expect(outcome("1.x", ["1.5.0-beta.1"])).toBe("refused: registered");
  });

  it("`2.x` parks in v2, the major its range names, not its generated code's", () => {
    expect(outcome("2.x", [])).toBe("parked in v2");
    expect(outcome("2.x", ["1.4.0"])).toBe("parked in v2");
    expect(outcome("2.x", ["2.1.0"])).toBe("refused: registered");
  });

  it("a pin admitting the whole major parks; one inside it or a split does not; a 1.x instance it excludes still refuses", () => {
    expect(outcome("1.x", ["2.0.0"], { pin: "1.x" })).toBe("parked in v1");
    expect(outcome("1.x", [], { pin: ">=1 <3" })).toBe("parked in v1");
    expect(outcome("1.x", [], { pin: "1.5.0" })).toBe("refused: no queue");
    expect(outcome("1.x", [], { pin: "^1.2" })).toBe("refused: no queue");
    expect(outcome("1.x", [], { split: { "1.2.0": 50, "1.3.0": 50 } })).toBe("refused: no queue");
    expect(outcome("1.x", ["1.0.0"], { pin: ">=1.2" })).toBe("refused: no queue");
    expect(outcome("1.x", ["1.0.0"], { pin: "1.x || 2.x" })).toBe("refused: registered");
  });
});

describe("a range that names no one whole major: refused, registered instances or not", () => {
  it("part of a major (`^1.2`, `~1.5`, `1.4.x`): an instance older than the range could take the push", () => {
    for (const range of ["^1.2", "~1.5", "1.4.x"]) {
      expect(outcome(range, [])).toBe("refused: no queue");
      expect(outcome(range, ["2.0.0"])).toBe("refused: no queue");
    }
  });

  it("more than one major (`>=1 <3`, `1.x || 2.x`, `>=1.0.0`): which contract would the push follow?", () => {
    for (const range of [">=1 <3", "1.x || 2.x", ">=1.0.0", "1.x || 2.0.0-beta.1"]) {
      expect(outcome(range, [])).toBe("refused: no queue");
    }
  });
});
