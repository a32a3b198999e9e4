/**
 * Background work tied to the App's life, like tamarco's tasks: `@task` runs a method once when
 * the app has started and cancels it (through its signal) on stop; `@timer(interval)` runs a
 * method every interval, never overlapping itself. Both are standard (stage 3) method
 * decorators; `app.task()` and `app.timer()` do the same without decorators.
 */
import { DURATION_UNIT_MS } from "../../util/duration.js";
import type { Logger } from "pino";
import { Code, FanError } from "../errors.js";

/** What a task or timer method receives. */
export interface TaskContext {
  /** Aborted when the app begins to stop. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

/** A background job: `task` runs once, `timer` every `intervalMs`. */
export interface TaskSpec {
  readonly name: string;
  readonly kind: "task" | "timer";
  readonly intervalMs?: number;
  readonly run: (ctx: TaskContext) => unknown;
}

const registered = new WeakMap<object, TaskSpec[]>();

/** The tasks and timers an object's decorators registered. */
export function tasksOf(obj: object): readonly TaskSpec[] {
  return registered.get(obj) ?? [];
}

function register(obj: object, spec: TaskSpec): void {
  let list = registered.get(obj);
  if (list === undefined) {
    list = [];
    registered.set(obj, list);
  }
  list.push(spec);
}

type Method = (this: unknown, ctx: TaskContext) => unknown;

/** `@task`: run this method while the app runs; it should return when its signal aborts. */
export function task<T extends Method>(method: T, context: ClassMethodDecoratorContext): void {
  const name = String(context.name);
  context.addInitializer(function (this: unknown) {
    register(this as object, { name, kind: "task", run: (ctx) => method.call(this, ctx) });
  });
}

/** `@timer(interval)`: run this method every `interval` (ms, or text like "250ms", "5s", "1m"). */
export function timer(
  interval: number | string,
): <T extends Method>(method: T, context: ClassMethodDecoratorContext) => void {
  const intervalMs = parseInterval(interval);
  return (method, context) => {
    const name = String(context.name);
    context.addInitializer(function (this: unknown) {
      register(this as object, { name, kind: "timer", intervalMs, run: (ctx) => method.call(this, ctx) });
    });
  };
}

/** Milliseconds of an interval given as a number or as `250ms`, `2s`, `5m`, `1h`. */
export function parseInterval(interval: number | string): number {
  let ms: number | undefined;
  if (typeof interval === "number") ms = interval;
  else {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(interval.trim());
    // The IDL's units (util/duration.ts); a timer also takes a fraction (`1.5s`).
    if (m !== null) ms = Number(m[1]) * (DURATION_UNIT_MS[m[2] as string] as number);
  }
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) {
    throw new FanError(
      Code.INVALID_ARGUMENT,
      `timer interval must be a positive number of ms or like "5s", got ${JSON.stringify(interval)}`,
    );
  }
  return ms;
}

/** Runs tasks and timers from start to stop. */
export class TaskRunner {
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Starts one task or timer. */
  start(spec: TaskSpec): void {
    const log = this.#log.child({ task: spec.name });
    const ctx: TaskContext = { signal: this.#abort.signal, log };
    const p = spec.kind === "task" ? this.#runTask(spec, ctx) : this.#runTimer(spec, ctx);
    this.#running.add(p);
    void p.finally(() => this.#running.delete(p));
  }

  /** Cancels everything and waits up to `graceMs` for it to return; false when something did not. */
  async stop(graceMs: number): Promise<boolean> {
    this.#abort.abort(new FanError(Code.CANCELLED, "the app is stopping"));
    if (this.#running.size === 0) return true;
    let t: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((r) => (t = setTimeout(() => r(false), graceMs)));
    const all = Promise.allSettled([...this.#running]).then(() => true);
    const done = await Promise.race([all, timedOut]);
    clearTimeout(t);
    if (!done) this.#log.warn({ pending: this.#running.size }, "tasks still running after the grace period");
    return done;
  }

  async #runTask(spec: TaskSpec, ctx: TaskContext): Promise<void> {
    try {
      await spec.run(ctx);
    } catch (e) {
      if (!ctx.signal.aborted) ctx.log.error({ err: e }, "task failed");
    }
  }

  async #runTimer(spec: TaskSpec, ctx: TaskContext): Promise<void> {
    const interval = spec.intervalMs as number;
    while (!ctx.signal.aborted) {
      if (!(await sleep(interval, ctx.signal))) return;
      try {
        await spec.run(ctx);
      } catch (e) {
        if (!ctx.signal.aborted) ctx.log.error({ err: e }, "timer run failed");
      }
    }
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
