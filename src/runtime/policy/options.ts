/**
 * The options of the client policy chain (`createApp({ policy })`, `app.client(def, { policy })`)
 * and how the two merge: a client's setting wins per policy; `false` turns one off.
 */
import { type Code, Code as Codes, FanError } from "../errors.js";
import type { BackoffOptions, BudgetOptions } from "./budget.js";
import type { BreakerOptions } from "./breaker.js";

/** Retries of failed attempts. */
export interface RetryOptions extends BackoffOptions {
  /**
   * Extra attempts of an `@idempotent` method. Default: the method's `@retry(n)`, else 2.
   * Set here, it wins over `@retry(n)`. A call's `{ retry: n }` wins over both.
   */
  readonly max?: number;
  /** Codes worth another attempt (default `["UNAVAILABLE"]`). */
  readonly codes?: readonly Code[];
  /** The retry budget, shared by every client of a service in the App (read from `createApp({ policy })` only). */
  readonly budget?: BudgetOptions;
}

/** Hedged requests of `@idempotent` rpcs. */
export interface HedgeOptions {
  /** Wait this long before the second attempt, ms. Default: the method's observed p95 (100 ms until 16 samples). */
  readonly delayMs?: number;
}

/** A bound on a client's in-flight calls. */
export interface BulkheadOptions {
  /** Calls in flight at once; more are refused with RESOURCE_EXHAUSTED. */
  readonly maxInFlight: number;
}

/** The client policy chain: deadline → bulkhead → retry (and hedge) → circuit breaker → transport. */
export interface PolicyOptions {
  /** Per-instance circuit breakers (default on). */
  readonly breaker?: BreakerOptions | false;
  /** Retries (default on for `@idempotent` methods). */
  readonly retry?: RetryOptions | false;
  /** Hedged requests (default off). */
  readonly hedge?: HedgeOptions | false;
  /** In-flight bound per client (default off: unbounded). */
  readonly bulkhead?: BulkheadOptions | false;
}

/** A policy's options merged: `undefined` means off. */
export interface ResolvedPolicy {
  readonly retry: RetryOptions | undefined;
  readonly hedge: HedgeOptions | undefined;
  readonly bulkhead: BulkheadOptions | undefined;
  /** False when the client said `breaker: false`: it neither consults nor feeds the App's breakers. */
  readonly breakers: boolean;
}

/** Merges the App's policy options with a client's (`false` for either turns the chain off). */
export function resolvePolicy(
  app: PolicyOptions | false | undefined,
  client: PolicyOptions | false | undefined,
): ResolvedPolicy | undefined {
  if (app === false || client === false) return undefined;
  const pick = <K extends "retry" | "hedge" | "bulkhead">(
    k: K,
    dflt: PolicyOptions[K],
  ): Exclude<PolicyOptions[K], false> | undefined => {
    const v = client?.[k] !== undefined ? client[k] : app?.[k] !== undefined ? app[k] : dflt;
    return v === false || v === undefined ? undefined : (v as Exclude<PolicyOptions[K], false>);
  };
  const bulkhead = pick("bulkhead", false);
  if (bulkhead !== undefined && !(Number.isInteger(bulkhead.maxInFlight) && bulkhead.maxInFlight > 0))
    throw new FanError(
      Codes.INVALID_ARGUMENT,
      `policy.bulkhead.maxInFlight must be a positive integer, got ${String(bulkhead.maxInFlight)}`,
    );
  return { retry: pick("retry", {}), hedge: pick("hedge", false), bulkhead, breakers: client?.breaker !== false };
}
