import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));

describe("the example system (what npm start runs after compiling)", () => {
  it("starts every example service, makes calls, pushes and events, and exits 0", () => {
    const r = spawnSync(`${root}node_modules/.bin/tsx`, ["examples/main.ts"], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("5 services in one process");
    expect(r.stdout).toMatch(/✓ IntegrationApi\.ping — pong/);
    expect(r.stdout).toMatch(/✓ PublicWines\.get of an unknown wine — NOT_FOUND WineNotFound/);
    expect(r.stdout).toMatch(/✓ cacheFlush \(@broadcast\) reached LightspeedSync/);
    expect(r.stdout).not.toContain("✗");
    expect(r.stdout).toContain("all good");
  });
});
