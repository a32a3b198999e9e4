/**
 * What the policy layer reports: breaker transitions, retries, hedges, bulkhead rejections,
 * load shedding and auth refusals, emitted to the listeners an App holds
 * (`app.policy.on(fn)`), so metrics and tests count them without the policies knowing either.
 */
import type { Code } from "../errors.js";

/** A circuit breaker's state. */
export type BreakerState = "closed" | "open" | "half-open";

/** One thing a policy did. */
export type PolicyEvent =
  | {
      readonly type: "breaker";
      readonly service: string;
      readonly instanceId: string;
      readonly from: BreakerState;
      readonly to: BreakerState;
    }
  | {
      /** A failed attempt is tried again (`attempt`: the number of the attempt about to run, 2+). */
      readonly type: "retry";
      readonly service: string;
      readonly method: string;
      readonly attempt: number;
      readonly code: Code;
    }
  | {
      /** A retry or hedge was not made because the retry budget is spent. */
      readonly type: "retry-throttled";
      readonly service: string;
      readonly method: string;
    }
  | { readonly type: "hedge"; readonly service: string; readonly method: string }
  | {
      /** A client's bulkhead refused a call (RESOURCE_EXHAUSTED). */
      readonly type: "bulkhead";
      readonly service: string;
      readonly method: string;
    }
  | {
      /** A served instance at its in-flight bound refused a call (RESOURCE_EXHAUSTED). */
      readonly type: "shed";
      readonly service: string;
      readonly method: string;
      readonly instanceId: string;
      /** The transport the refused call came over. */
      readonly transport: string;
    }
  | {
      /** A server interceptor refused a call before its handler. */
      readonly type: "refused";
      readonly service: string;
      readonly method: string;
      readonly instanceId: string;
      readonly code: Code;
    };

/** Receives policy events; must not throw (a throwing listener is logged and skipped). */
export type PolicyListener = (event: PolicyEvent) => void;

/** The listeners of one App. */
export class PolicyEvents {
  readonly #listeners = new Set<PolicyListener>();
  readonly #onError: (e: unknown) => void;

  constructor(onError: (e: unknown) => void) {
    this.#onError = onError;
  }

  /** Adds a listener; returns its removal. */
  on(fn: PolicyListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** True when someone listens (callers skip building events nobody reads). */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  emit(event: PolicyEvent): void {
    for (const fn of this.#listeners) {
      try {
        fn(event);
      } catch (e) {
        this.#onError(e);
      }
    }
  }
}
