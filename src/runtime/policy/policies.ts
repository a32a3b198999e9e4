/**
 * An App's policy state: the event listeners, the per-instance circuit breakers, the retry
 * budgets per service, and the chain each client gets (`app.policy`).
 */
import type { Logger } from "pino";
import { RetryBudget } from "./budget.js";
import { type BreakerInfo, Breakers } from "./breaker.js";
import { ClientPolicy, type PolicyShared } from "./client.js";
import { PolicyEvents, type PolicyListener } from "./events.js";
import { type PolicyOptions, resolvePolicy } from "./options.js";

/** The policy state of one App. */
export class Policies implements PolicyShared {
  readonly events: PolicyEvents;
  readonly breakers: Breakers | undefined;
  readonly #opts: PolicyOptions | false | undefined;
  readonly #budgets = new Map<string, RetryBudget>();

  constructor(opts: PolicyOptions | false | undefined, log: Logger, now: () => number = Date.now) {
    this.#opts = opts;
    const plog = log.child({ component: "policy" });
    this.events = new PolicyEvents((e) => plog.error({ err: e }, "a policy event listener threw"));
    const breaker = opts === false ? false : opts?.breaker;
    this.breakers = breaker === false ? undefined : new Breakers(breaker ?? {}, plog, this.events, now);
  }

  /** Adds a listener of policy events (breaker transitions, retries, hedges, sheds...); returns its removal. */
  on(fn: PolicyListener): () => void {
    return this.events.on(fn);
  }

  /** The state of every circuit breaker this App holds. */
  breakerStates(): BreakerInfo[] {
    return this.breakers?.list() ?? [];
  }

  /** Stops the breakers' timers (the App stops). */
  close(): void {
    this.breakers?.close();
  }

  /** The retry budget of one service (made on first use). */
  budget(service: string): RetryBudget {
    let b = this.#budgets.get(service);
    if (b === undefined) {
      const retry = this.#opts === false ? undefined : this.#opts?.retry;
      b = new RetryBudget(retry === false ? {} : retry?.budget);
      this.#budgets.set(service, b);
    }
    return b;
  }

  /** The chain of a client, or undefined when the App or the client turned it off. */
  forClient(service: string, client: PolicyOptions | false | undefined): ClientPolicy | undefined {
    const resolved = resolvePolicy(this.#opts, client);
    if (resolved === undefined) return undefined;
    return new ClientPolicy(service, resolved, this);
  }
}
