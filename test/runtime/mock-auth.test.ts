/**
 * A mock of an `@auth` service (fanc's `mockGuarded()`, from test/policy/fixtures) stands in for
 * a dependency: the test App needs no verifier for it and refuses no call to it, while the
 * caller's credentials still reach the mock's `ctx`. A real `@auth` service served by a test App
 * keeps enforcing (docs/testing.md, docs/decisions.md "a mock does not enforce `@auth`").
 */
import { describe, expect, it } from "vitest";
import { Code, FanError } from "../../src/runtime/errors.js";
import { createTestApp } from "../../src/testing/index.js";
import { GuardedImpl, TOKENS } from "../policy/fixtures/handlers.js";
import { Guarded, mockGuarded } from "../policy/fixtures/generated/fan/policytest.js";

const verifier = {
  authenticate: (call: { headers: Readonly<Record<string, unknown>> }) => TOKENS[String(call.headers.authorization)],
};

async function until(done: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
}

describe("a mocked @auth service", () => {
  it("is served by a test App without a verifier and answers callers without credentials", async () => {
    const guarded = mockGuarded().secret.returns("s").whoami.returns("w").note.returns(undefined);
    const app = createTestApp().mock(guarded);
    await app.start();
    try {
      const client = app.client(Guarded);
      expect(await client.secret({})).toBe("s");
      expect(await client.whoami({})).toBe("w");
      await client.note({ text: "hi" });
      await until(() => guarded.note.calls.length > 0);
      expect(guarded.note.calls).toEqual([{ req: { text: "hi" } }]);
    } finally {
      await app.stop();
    }
  });

  it("hands the caller's credentials to the mock's ctx, for the test to assert on", async () => {
    const guarded = mockGuarded().secret.returns("s");
    const app = createTestApp().mock(guarded);
    await app.start();
    try {
      await app.client(Guarded).secret({}, { headers: { authorization: "Bearer guest" } });
      const ctx = guarded.secret.calls[0]?.ctx;
      expect(ctx?.headers.authorization).toBe("Bearer guest");
      expect(ctx?.principal).toBeUndefined();
    } finally {
      await app.stop();
    }
  });

  it("with a verifier, gets the principal the real service would, and still refuses no one", async () => {
    const guarded = mockGuarded().secret.returns("s").whoami.returns("w");
    const throwing = createTestApp({
      server: {
        auth: {
          authenticate: (call) => {
            if (call.headers.authorization === "Bearer bad") throw new FanError(Code.UNAUTHENTICATED, "bad token");
            return verifier.authenticate(call);
          },
        },
      },
    });
    const app = throwing.mock(guarded);
    await app.start();
    try {
      const client = app.client(Guarded);
      // guest lacks "admin", which the real secret requires; the mock answers anyway.
      expect(await client.secret({}, { headers: { authorization: "Bearer guest" } })).toBe("s");
      expect(await client.secret({}, { headers: { authorization: "Bearer root" } })).toBe("s");
      expect(await client.whoami({})).toBe("w");
      expect(await client.whoami({}, { headers: { authorization: "Bearer bad" } })).toBe("w");
      expect(guarded.secret.calls.map((c) => c.ctx?.principal)).toEqual([
        TOKENS["Bearer guest"],
        TOKENS["Bearer root"],
      ]);
      expect(guarded.whoami.calls.map((c) => c.ctx?.principal)).toEqual([undefined, undefined]);
    } finally {
      await app.stop();
    }
  });
});

describe("a real @auth service in a test App", () => {
  it("still needs a verifier", () => {
    expect(() => createTestApp().serve(Guarded, new GuardedImpl())).toThrow(
      /requires @auth on secret, whoami, note, but the app has no verifier/,
    );
  });

  it("still refuses calls without credentials or the role, beside a mock of the same service", async () => {
    const impl = new GuardedImpl();
    // Two instances of one service on purpose: each names its instanceId (docs/testing.md).
    const app = createTestApp({ server: { auth: verifier } })
      .serve(Guarded, impl, { transports: ["local"], instanceId: "guarded-real" })
      .mock(mockGuarded().whoami.returns("mock"), { transports: ["local"], instanceId: "guarded-mock" });
    await app.start();
    try {
      const codes = new Set<string>();
      // Calls spread over both instances: the real one refuses, the mock answers.
      for (let i = 0; i < 40 && codes.size < 3; i++) {
        const r = await app
          .client(Guarded)
          .whoami({})
          .then(
            (v) => v,
            (e: unknown) => (FanError.is(e) ? e.code : "other"),
          );
        codes.add(String(r));
      }
      expect(codes).toEqual(new Set([Code.UNAUTHENTICATED, "mock"]));
      expect(impl.calls).toBe(0);
    } finally {
      await app.stop();
    }
  });

  it("refuses a caller without the role: PERMISSION_DENIED, handler not run", async () => {
    const impl = new GuardedImpl();
    const app = createTestApp({ server: { auth: verifier } }).serve(Guarded, impl);
    await app.start();
    try {
      const client = app.client(Guarded);
      const denied = await client.secret({}, { headers: { authorization: "Bearer guest" } }).catch((e: unknown) => e);
      expect(FanError.is(denied) && denied.code).toBe(Code.PERMISSION_DENIED);
      const anonymous = await client.whoami({}).catch((e: unknown) => e);
      expect(FanError.is(anonymous) && anonymous.code).toBe(Code.UNAUTHENTICATED);
      expect(await client.secret({}, { headers: { authorization: "Bearer root" } })).toBe("for root");
      expect(impl.calls).toBe(1);
    } finally {
      await app.stop();
    }
  });
});
