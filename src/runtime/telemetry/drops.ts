/**
 * Warnings of dropped messages, rate limited: a flood of garbage on a queue, stream, subject or
 * socket must not become a flood of log lines. Per (transport, endpoint, reason) and logger, the
 * first `FAN_DROP_WARN_BURST` drops (default 5) are logged one line each; the ones after are
 * counted, and once the interval (`FAN_DROP_WARN_INTERVAL_MS`, default 10 s) since the first
 * has passed one line says how many more were dropped, with the last one's fields. While drops
 * keep coming that summary is written once per interval; an interval without drops resets the
 * key (its next drop is logged again). `createApp` refuses malformed values (env.ts); elsewhere
 * they are a warning and the defaults. No drop goes uncounted: a summary still pending when the
 * process's App stops is written by `flushDropWarnings`.
 */
import type { Logger } from "pino";

/** Where a message was dropped and why, as a short fixed reason (the rate limit's key). */
export interface Drop {
  /** "amqp", "redis", "nats", "zmq", "tcp", "http" or "app" (the dispatcher). */
  readonly transport: string;
  /** The queue, stream, list, subject, service or peer the message came on (the key only: name it in the fields too). */
  readonly endpoint: string;
  /** Why, fixed per kind of drop ("undecodable", "no reply address", ...); details go in `fields`. */
  readonly reason: string;
}

interface Pending {
  readonly log: Logger;
  readonly drop: Drop;
  /** Since when drops of this key are counted. */
  since: number;
  /** Lines written one per drop in this run of drops. */
  logged: number;
  /** Drops not written since `since`. */
  more: number;
  /** The last one not written: its fields and message. */
  last: { fields: Record<string, unknown>; msg: string } | undefined;
  timer: NodeJS.Timeout | undefined;
}

const byLogger = new WeakMap<Logger, Map<string, Pending>>();
/** Keys with a summary to write, across loggers (flushed when an App stops). */
const pending = new Set<Pending>();

/** The limit's variables, with their defaults. */
const DEFAULTS = { FAN_DROP_WARN_BURST: 5, FAN_DROP_WARN_INTERVAL_MS: 10_000 } as const;

/**
 * What is wrong with the limit's variables in `env`, one text per variable, or nothing
 * (`createApp` refuses to start with any: env.ts).
 */
export function dropLimitProblems(env: Readonly<Record<string, string | undefined>>): string[] {
  const problems: string[] = [];
  for (const name of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) {
    const v = env[name]?.trim();
    if (v === undefined || v === "") continue;
    const n = Number(v);
    const ok = name === "FAN_DROP_WARN_BURST" ? Number.isInteger(n) && n >= 0 : Number.isInteger(n) && n > 0;
    if (!ok)
      problems.push(
        `${name}=${JSON.stringify(v)} is not ${name === "FAN_DROP_WARN_BURST" ? "an integer >= 0" : "a number of ms > 0"}`,
      );
  }
  return problems;
}

/** The limit read from the environment, kept while its two variables are unchanged (a flood calls this per drop). */
let read:
  | { burst: string | undefined; interval: string | undefined; limits: { burst: number; intervalMs: number } }
  | undefined;
let warnedLimits = false;

function limits(log: Logger): { burst: number; intervalMs: number } {
  const burst = process.env.FAN_DROP_WARN_BURST;
  const interval = process.env.FAN_DROP_WARN_INTERVAL_MS;
  const known = read;
  if (known !== undefined && known.burst === burst && known.interval === interval) return known.limits;
  const problems = dropLimitProblems(process.env);
  if (problems.length > 0 && !warnedLimits) {
    warnedLimits = true;
    log.warn(
      { problems },
      "dropped-message warnings: ignoring a malformed rate limit, using the defaults (5 lines, 10 s)",
    );
  }
  const value = (name: keyof typeof DEFAULTS, raw: string | undefined): number =>
    problems.some((p) => p.startsWith(`${name}=`)) || raw === undefined || raw.trim() === ""
      ? DEFAULTS[name]
      : Number(raw);
  const limits = {
    burst: value("FAN_DROP_WARN_BURST", burst),
    intervalMs: value("FAN_DROP_WARN_INTERVAL_MS", interval),
  };
  read = { burst, interval, limits };
  return limits;
}

/**
 * Logs a dropped message as one `warn` line (`msg`, with `reason` and `fields`, which name the
 * queue, stream or subject: the transport's logger has `transport` bound), unless the rate limit
 * of its key holds it: then it is counted for the summary.
 */
export function warnDropped(log: Logger, drop: Drop, fields: Record<string, unknown>, msg: string): void {
  let keys = byLogger.get(log);
  if (keys === undefined) {
    keys = new Map();
    byLogger.set(log, keys);
  }
  const key = `${drop.transport}\u0000${drop.endpoint}\u0000${drop.reason}`;
  let p = keys.get(key);
  if (p === undefined) {
    p = { log, drop, since: Date.now(), logged: 0, more: 0, last: undefined, timer: undefined };
    keys.set(key, p);
  }
  const { burst, intervalMs } = limits(log);
  if (p.logged < burst) {
    p.logged++;
    log.warn({ reason: drop.reason, ...fields }, msg);
  } else {
    p.more++;
    p.last = { fields, msg };
    pending.add(p);
  }
  if (p.timer === undefined) {
    const entry = p;
    const map = keys;
    entry.timer = setTimeout(() => tick(entry, map, key), Math.max(0, entry.since + intervalMs - Date.now()));
    entry.timer.unref();
  }
}

/** The end of an interval: the summary of what it held, or the key forgotten after a quiet one. */
function tick(p: Pending, keys: Map<string, Pending>, key: string): void {
  p.timer = undefined;
  if (p.more === 0) {
    keys.delete(key);
    return;
  }
  summarize(p);
  p.timer = setTimeout(() => tick(p, keys, key), limits(p.log).intervalMs);
  p.timer.unref();
}

function summarize(p: Pending): void {
  const seconds = Math.max(0.001, (Date.now() - p.since) / 1000);
  const { drop, last, more } = p;
  p.more = 0;
  p.last = undefined;
  p.since = Date.now();
  pending.delete(p);
  p.log.warn(
    {
      reason: drop.reason,
      ...last?.fields,
      dropped: more,
      seconds: Number(seconds.toFixed(3)),
    },
    `${more} more like this were dropped in the last ${Number(seconds.toFixed(1))}s (warnings rate limited): ${last?.msg ?? drop.reason}`,
  );
}

/** Writes the summaries still pending (an App stopping: their counts must not be lost). */
export function flushDropWarnings(): void {
  for (const p of [...pending]) summarize(p);
}
