/**
 * A watcher whose owner process died, owner and watcher in processes of their own on each
 * broker transport: the watcher says `owner-absent` once (one warn line), its reason ends on
 * the registry's answer (`no instance ... is registered`) and stays there while the owner is
 * away — no warn line and no `onStatus` call per heartbeat period — and it goes live again,
 * with one more warn line at the next absence, when an owner returns. An owner stopped
 * gracefully sends a last heartbeat: its watchers say `owner-absent` at once (over http too,
 * updates relayed through redis), not after three silent heartbeat periods, and do not resync
 * to the stopping instance while it drains.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { shortId } from "../../src/runtime/ids.js";
import { casesWithHttp, clusterNodes, type Node, type Report, type TransportCase, until } from "./processes.js";

const WITH_HTTP: readonly TransportCase[] = casesWithHttp();
const CASES = WITH_HTTP.filter((c) => c.name !== "http");

const nodes: Node[] = [];
afterEach(async () => {
  await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));
});

/** The watcher's "state owner absent" warn lines. */
const absentLines = (n: Node): number => absentReasons(n).length;
const absentReasons = (n: Node): string[] =>
  n.logs
    .map((l) => JSON.parse(l) as { msg?: string; reason?: string })
    .filter((l) => l.msg === "state owner absent")
    .map((l) => l.reason ?? "");

for (const c of CASES) {
  describe(`a dead owner over ${c.name}, watcher in another process`, () => {
    const cluster = `walk2-absent-${c.name}-${process.pid}-${shortId()}`;
    const { start, forget } = clusterNodes(cluster, c, nodes, { FAN_LOG_LEVEL: "info" });
    afterAll(forget);

    it("says owner-absent once, settles on the registry's reason, and goes live with a new owner", async () => {
      const owner = await start("owner");
      await owner.send("set", { value: { a: { n: 1, label: "one" } } });
      const watcher = await start("watcher");
      await until(
        "watcher live",
        () => watcher.report(),
        (r) => r.status === "live" && r.seq >= 1,
      );

      owner.kill();
      // The fixture's lease is 2 s: once it expires the registry says there is no instance.
      const settled = await until(
        "the watcher's reason names the empty registry",
        () => watcher.report(),
        (r) => r.status === "owner-absent" && /no instance is registered/.test(r.reason ?? ""),
        30_000,
      );
      // 15 heartbeat periods (200 ms) with the owner still away: nothing new to say.
      await new Promise((r) => setTimeout(r, 3000));
      const later: Report = await watcher.report();
      expect(later.status).toBe("owner-absent");
      expect(later.reason).toBe(settled.reason);
      expect(later.statuses, "onStatus calls while nothing changed").toBe(settled.statuses);
      expect(absentLines(watcher), `watcher log:\n${watcher.logs.slice(-6).join("\n")}`).toBe(1);

      const second = await start("owner");
      await second.send("set", { value: { b: { n: 2, label: "two" } } });
      const want = await second.report();
      await until(
        "watcher live on the new owner",
        () => watcher.report(),
        (r) => r.status === "live" && r.epoch === want.epoch && r.seq === want.seq,
        30_000,
      );
      second.kill();
      await until(
        "the second absence logged",
        async () => absentLines(watcher),
        (n) => n === 2,
        30_000,
      );
    }, 90_000);
  });
}

for (const c of WITH_HTTP) {
  describe(`an owner stopped gracefully over ${c.name}, watcher in another process`, () => {
    const cluster = `walk2-graceful-${c.name}-${process.pid}-${shortId()}`;
    // A 2 s heartbeat: three missed periods would take over 6 s to notice.
    const { start, forget } = clusterNodes(cluster, c, nodes, {
      FAN_STATES_HEARTBEAT_MS: "2000",
      FAN_LOG_LEVEL: "info",
    });
    afterAll(forget);

    it("says owner-absent at once from the owner's last heartbeat, and stays absent", async () => {
      const owner = await start("owner");
      await owner.send("set", { value: { a: { n: 1, label: "one" } } });
      const { epoch } = await owner.report();
      const watcher = await start("watcher");
      await until(
        "watcher live",
        () => watcher.report(),
        (r) => r.status === "live" && r.seq >= 1,
      );

      const t0 = Date.now();
      const stopped = owner.stop();
      await until(
        "watcher owner-absent",
        () => watcher.report(),
        (r) => r.status === "owner-absent",
        10_000,
      );
      const ms = Date.now() - t0;
      expect(ms, "from the stop to owner-absent").toBeLessThan(2000);
      expect(absentReasons(watcher)).toEqual([expect.stringMatching(new RegExp(`stopped publishing at ${epoch}/1$`))]);
      await stopped;
      // The stopping instance refused snapshots while it drained; then the registry has none.
      const after = await until(
        "the watcher's reason names the empty registry",
        () => watcher.report(),
        (r) => /no instance is registered/.test(r.reason ?? ""),
        10_000,
      );
      expect(after.status).toBe("owner-absent");
      expect(absentLines(watcher)).toBe(1);
    }, 60_000);
  });
}
