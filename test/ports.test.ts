/**
 * Private servers' ports stay clear of the cluster members of scripts/clusters.sh, which are up
 * while the suite runs in CI: a private nats-server given 24231 (a NATS cluster route) never
 * started, and its test failed after waiting 20 s.
 */
import { expect, it } from "vitest";
import { clusterNodePort, privatePort, reserved } from "./ports.js";

it("leaves out every port of scripts/clusters.sh and hands out each port once", () => {
  for (const p of [23791, 23803, 24221, 24231, 24233, 25701, 25713, 25672, 27001, 27006, 27101, 27102, 27113])
    expect(reserved(p), String(p)).toBe(true);
  const drawn = Array.from({ length: 5000 }, privatePort);
  expect(drawn.filter(reserved)).toEqual([]);
  expect(new Set(drawn).size).toBe(drawn.length);
  expect(Math.min(...drawn)).toBeGreaterThanOrEqual(20_000);
  expect(Math.max(...drawn)).toBeLessThan(32_000);
  // A cluster node's bus port (+10000) is never another server's port.
  const nodes = Array.from({ length: 300 }, clusterNodePort);
  const all = [...drawn, ...nodes, ...nodes.map((p) => p + 10_000)];
  expect(new Set(all).size).toBe(all.length);
  expect(all.filter(reserved)).toEqual([]);
});
