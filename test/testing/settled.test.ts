/**
 * `TestApp.settled()`: the test of a push handler, as a user's trial wrote it. A push resolves
 * once queued and its handler runs later, so the test awaits `settled()` before asserting on the
 * mocked dependency; when the handler fails, `settled()` rejects naming the push, its attempts
 * and the last error (before, the push resolved, the handler failed five times unseen and the
 * test passed). Through fanc's output for test/testing/fixtures/idl. Outside a test app, the
 * same failing handler logs a warning per attempt and an error when the push is given up.
 */
import { FanError } from "fan/runtime";
import { createTestApp, type TestApp, UnsettledError } from "fan/testing";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createApp } from "../../src/runtime/app/app.js";
import {
  Mailer,
  type MailerMock,
  mockAudit,
  mockMailer,
  Notifier,
  type NotifierHandler,
  type NotifierRequests,
} from "./fixtures/generated/kit/notify.js";

/** The service under test: its push sends the mail, then says so. */
const notifier: NotifierHandler = {
  async notify({ userId, text }, ctx) {
    await ctx.client(Mailer).send({ to: `${userId}@example.com`, text });
    await ctx.emit.notified({ userId });
  },
};

const hello: NotifierRequests["notify"] = { userId: "u1", text: "hello" };

let app: TestApp | undefined;
afterEach(() => app?.stop());

async function serveWith(mailer: MailerMock, opts: Parameters<typeof createTestApp>[0] = {}): Promise<TestApp> {
  app = createTestApp(opts).serve(Notifier, notifier).mock(mailer).mock(mockAudit().onNotified.returns(undefined));
  await app.start();
  return app;
}

describe("settled()", () => {
  it("waits for a push's handler: the mocked dependency has been called after it", async () => {
    const mailer = mockMailer().send.returns(undefined);
    const app = await serveWith(mailer);
    await app.client(Notifier).notify(hello);
    await app.settled();
    expect(mailer.send.calls).toEqual([{ req: { to: "u1@example.com", text: "hello" } }]);
  });

  it("rejects when the handler failed, naming the push, its attempts and the last error", async () => {
    const mailer = mockMailer().send.throws(new FanError("UNAVAILABLE", "smtp down"));
    const app = await serveWith(mailer);
    await app.client(Notifier).notify(hello); // still resolves: it is queued
    const err = await app.settled().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsettledError);
    expect((err as Error).message).toBe(
      "not settled: 1 delivery failed:\n  push kit.notify.Notifier.notify failed 5 times: UNAVAILABLE smtp down",
    );
    expect((err as UnsettledError).failures).toMatchObject([
      { kind: "push", service: "kit.notify.Notifier", method: "notify", attempts: 5, error: { code: "UNAVAILABLE" } },
    ]);
    expect((err as UnsettledError).pending).toEqual([]);
    expect(mailer.send.calls).toHaveLength(5); // redelivered as in production
    // Each failure is reported once.
    await expect(app.settled()).resolves.toBeUndefined();
  });

  it("reports an exception in the handler with its cause; maxAttempts 1 delivers once", async () => {
    const mailer = mockMailer().send.implements(() => {
      throw new TypeError("no transport configured");
    });
    const app = await serveWith(mailer, { transports: { local: { maxAttempts: 1 } } });
    await app.client(Notifier).notify(hello);
    await expect(app.settled()).rejects.toThrow(
      /^not settled: 1 delivery failed:\n {2}push kit\.notify\.Notifier\.notify failed once: INTERNAL .*TypeError: no transport configured/,
    );
    expect(mailer.send.calls).toHaveLength(1);
  });

  it("rejects for an event subscriber that failed, naming the event and its subscriber", async () => {
    const mailer = mockMailer().send.returns(undefined);
    const audit = mockAudit().onNotified.throws(new FanError("UNAVAILABLE", "audit log full"));
    app = createTestApp({ transports: { local: { maxAttempts: 2 } } })
      .serve(Notifier, notifier)
      .mock(mailer)
      .mock(audit);
    await app.start();
    await app.client(Notifier).notify(hello);
    await expect(app.settled()).rejects.toThrow(
      "not settled: 1 delivery failed:\n  event kit.notify.Notifier.notified to kit.notify.Audit failed 2 times: UNAVAILABLE audit log full",
    );
    expect(audit.onNotified.calls.map((c) => c.req)).toEqual([{ userId: "u1" }, { userId: "u1" }]);
  });

  it("rejects after its timeout naming what is still under way, then waits for it", async () => {
    const mailer = mockMailer().send.implements(() => new Promise((r) => setTimeout(r, 400)));
    const app = await serveWith(mailer);
    await app.client(Notifier).notify(hello);
    await expect(app.settled({ timeoutMs: 100 })).rejects.toThrow(
      /^not settled: still under way after 100 ms:\n {2}push kit\.notify\.Notifier\.notify: attempt 1 in its handler for \d+ ms$/,
    );
    await app.settled();
    expect(mailer.send.calls).toHaveLength(1);
  });

  it("waits for a push a handler sent without awaiting it", async () => {
    const mailer = mockMailer().send.returns(undefined);
    app = createTestApp()
      .serve(Notifier, {
        notify: ({ userId, text }, ctx) => {
          if (userId === "first")
            setImmediate(
              () =>
                void ctx
                  .client(Notifier)
                  .notify({ userId: "second", text })
                  .catch(() => undefined),
            );
          return ctx.client(Mailer).send({ to: userId, text });
        },
      })
      .mock(mailer);
    await app.start();
    await app.client(Notifier).notify({ userId: "first", text: "x" });
    await app.settled();
    expect(mailer.send.calls.map((c) => c.req.to)).toEqual(["first", "second"]);
  });
});

it("outside a test app, a failing push handler logs a warning per attempt and an error when given up", async () => {
  const records: Array<{ level: number; msg: string; attempt?: number; attempts?: number }> = [];
  const logger = pino({ level: "info" }, { write: (l: string) => void records.push(JSON.parse(l)) });
  const mailer = mockMailer().send.throws(new FanError("UNAVAILABLE", "smtp down"));
  const prod = createApp({ logger, transports: { local: { maxAttempts: 2, backoffMs: 5 } } })
    .serve(Notifier, notifier)
    .serve(Mailer, mailer.handler);
  await prod.start();
  try {
    await prod.client(Notifier).notify(hello);
    await expect.poll(() => records.some((r) => r.level === 50), { timeout: 2000 }).toBe(true);
    const failed = records.filter((r) => r.level >= 40).map((r) => [r.level, r.msg.split(";")[0], r.attempts]);
    expect(failed).toEqual([
      [40, "push handler notify failed on attempt 1", undefined],
      [40, "push handler notify failed on attempt 2", undefined],
      [50, "push given up after 2 attempts", 2],
    ]);
  } finally {
    await prod.stop();
  }
});
