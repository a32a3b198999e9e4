import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));
const run = (...args: string[]): Record<string, boolean> => {
  const r = spawnSync(`${root}node_modules/.bin/tsx`, ["test/runtime/fixtures/lazy-transports.ts", ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 30_000,
  });
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout.trim()) as Record<string, boolean>;
};

describe("network transports are imported only when configured", () => {
  it("an app on the local transport loads none of their libraries; one with http loads only undici", () => {
    expect(run()).toEqual({ amqplib: false, zeromq: false, ioredis: false, undici: false });
    expect(run("http")).toEqual({ amqplib: false, zeromq: false, ioredis: false, undici: true });
  });
});
