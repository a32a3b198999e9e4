/**
 * Policy events into metrics: the one place where what the policy layer did (retries,
 * hedges, breaker transitions, bulkhead refusals, load shedding) becomes the counters and
 * gauges of `AppMetrics`. The App subscribes it when it has both policies and metrics, so
 * neither layer knows the other.
 */
import type { PolicyEvent, PolicyListener } from "../policy/events.js";
import type { AppMetrics } from "./metrics.js";

/** A policy listener that counts each event in `metrics`. */
export function policyMetrics(metrics: AppMetrics): PolicyListener {
  return (e: PolicyEvent) => {
    switch (e.type) {
      case "retry":
        metrics.retry(e.service, e.method);
        return;
      case "hedge":
        metrics.hedge(e.service, e.method);
        return;
      case "breaker":
        metrics.breakerState(e.service, e.instanceId, e.to);
        return;
      case "bulkhead":
        metrics.bulkheadRejected(e.service);
        return;
      case "shed":
        metrics.shed(e.service, e.method, e.transport);
        return;
      default:
        // "retry-throttled" and "refused" have no series of their own (refusals are in the
        // server calls by code).
        return;
    }
  };
}
