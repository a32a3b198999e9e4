/**
 * Typed, live config over any ConfigSource: decoded at start (a failure names every missing or
 * wrong key), then on every change; a change that does not decode is rejected and logged and
 * the old value stays. Handlers read `value` (the App puts it on `ctx.config`) and may
 * subscribe to changes. Secret values never reach the log: errors name keys, not values.
 */
import type { Logger } from "pino";
import { pino } from "pino";
import { type AbsentCheck, badValues, configCodec } from "../app/config.js";
import { Code, FanError } from "../errors.js";
import type { StructSchema } from "../codec/schema.js";
import type { ConfigSource } from "./types.js";

/** A config value kept current from a source. */
export interface LiveConfig<T> {
  /** The last value that decoded. */
  readonly value: T;
  /** Called with the new and old value after each accepted change; returns an unsubscribe. */
  subscribe(fn: (value: T, old: T) => void): () => void;
  /** Called with the error of each rejected change. */
  onRejected(fn: (err: FanError) => void): () => void;
  close(): Promise<void>;
}

/** A required key without a default and without a value. */
const missing: AbsentCheck = (f, key) =>
  f.default === undefined && f.optional !== true ? { key, problem: "missing" } : undefined;

/**
 * A decoder for a `config {}` struct that reports every problem at once:
 * `INVALID_ARGUMENT` with `details.problems: [{ key, problem }]`.
 */
export function configDecoder<T>(service: string, schema: StructSchema): (raw: unknown) => T {
  const full = configCodec<T>(schema);
  return (raw) => {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new FanError(Code.INVALID_ARGUMENT, `config of ${service} must be an object`);
    }
    const problems = badValues(schema, raw, "", false, missing);
    if (problems.length > 0) {
      // A bad value's problem starts with its key (the codec's message); "missing" does not.
      const list = problems
        .map((p) => (p.problem.startsWith(`${p.key}: `) ? p.problem : `${p.key}: ${p.problem}`))
        .join("; ");
      throw new FanError(Code.INVALID_ARGUMENT, `config of ${service} is invalid (${list})`, {
        details: { service, problems },
      });
    }
    return full.decode(raw, "config");
  };
}

/** Loads, decodes and watches a service's config. Rejects (naming the problems) when the initial config does not decode. */
export async function liveConfig<T>(
  source: ConfigSource,
  service: string,
  decode: (raw: Record<string, unknown>) => T,
  opts: { readonly log?: Logger } = {},
): Promise<LiveConfig<T>> {
  const log = opts.log ?? pino({ level: "silent" });
  const initial = decode(await source.get(service));
  const live = new Live<T>(initial, log, service);
  const stop = await source.watch(service, (raw) => live.offer(() => decode(raw)));
  live.stop = stop;
  return live;
}

class Live<T> implements LiveConfig<T> {
  private current: T;
  private readonly subs = new Set<(value: T, old: T) => void>();
  private readonly rejects = new Set<(err: FanError) => void>();
  stop: (() => Promise<void>) | undefined;

  constructor(
    initial: T,
    private readonly log: Logger,
    private readonly service: string,
  ) {
    this.current = initial;
  }

  get value(): T {
    return this.current;
  }

  subscribe(fn: (value: T, old: T) => void): () => void {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  onRejected(fn: (err: FanError) => void): () => void {
    this.rejects.add(fn);
    return () => this.rejects.delete(fn);
  }

  offer(decode: () => T): void {
    let next: T;
    try {
      next = decode();
    } catch (e) {
      const err = FanError.from(e, Code.INVALID_ARGUMENT);
      this.log.error(
        { targetService: this.service, err: { message: err.message, details: err.details } },
        "config update rejected; keeping the old value",
      );
      for (const fn of this.rejects) fn(err);
      return;
    }
    const old = this.current;
    this.current = next;
    this.log.info({ targetService: this.service }, "config updated");
    for (const fn of this.subs) {
      try {
        fn(next, old);
      } catch (e) {
        this.log.error({ err: e, targetService: this.service }, "config subscriber threw");
      }
    }
  }

  async close(): Promise<void> {
    this.subs.clear();
    this.rejects.clear();
    await this.stop?.();
  }
}
