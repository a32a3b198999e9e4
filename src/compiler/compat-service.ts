/**
 * `fanc check` on a service: its methods, events, states, config, dependencies and the
 * decorators that change how callers reach it (`@shards`, `@transports`, `@unique`,
 * `@timeout`, `@idempotent`, `@auth`, `@route`, `@shard`, `@fallback`).
 */
import semver from "semver";
import { typeText } from "./check-types.js";
import { compareConstraints, compareFields } from "./compat-fields.js";
import { change, type Found } from "./compat-kinds.js";
import type { MethodModel, ServiceModel } from "./model.js";

export function compareService(a: ServiceModel, b: ServiceModel, out: Found[]): void {
  const s = a.fullName;
  if (a.shards !== b.shards)
    out.push(change("shards-changed", s, s, `${s}: @shards(${a.shards}) → @shards(${b.shards}) moves every key`));
  for (const t of a.transports)
    if (!b.transports.includes(t)) out.push(change("transport-removed", s, s, `${s} is no longer served over ${t}`));
  if (a.unique !== b.unique)
    out.push(
      change(
        "unique-changed",
        s,
        s,
        a.unique
          ? `${s}: @unique removed: instances of both versions serve at once, and code relying on one leader (fencing tokens, single writer) no longer holds`
          : `${s}: @unique added: instances of the old version keep serving beside the new leader during the rollout`,
      ),
    );
  const methods = new Map(b.methods.map((m) => [m.name, m]));
  for (const m of a.methods) {
    const n = methods.get(m.name);
    const path = `${s}.${m.name}`;
    if (n === undefined) out.push(change("removed", s, path, `${m.kind} ${path} was removed`));
    else compareMethod(s, path, m, n, out);
  }
  for (const n of b.methods)
    if (!a.methods.some((m) => m.name === n.name)) {
      out.push(change("added", s, `${s}.${n.name}`, `${n.kind} ${s}.${n.name} was added`));
      const unsafe = sinceMissing(a.version, b.version, n);
      if (unsafe !== undefined)
        out.push(change("since-missing", s, `${s}.${n.name}`, `${n.kind} ${s}.${n.name} ${unsafe}`));
    }
  compareEvents(a, b, out);
  compareStates(a, b, out);
  compareConfig(a, b, out);
  compareDepends(a, b, out);
}

function compareMethod(s: string, path: string, m: MethodModel, n: MethodModel, out: Found[]): void {
  if (m.kind !== n.kind) out.push(change("kind-changed", s, path, `${path} was a ${m.kind}, is now a ${n.kind}`));
  compareFields(s, path, m.params, n.params, out);
  if (typeText(m.returns) !== typeText(n.returns))
    out.push(change("type-changed", s, path, `${path}: returns ${typeText(m.returns)} → ${typeText(n.returns)}`));
  if (m.timeoutMs !== undefined && n.timeoutMs !== undefined && n.timeoutMs < m.timeoutMs)
    out.push(change("timeout-shortened", s, path, `${path}: @timeout ${m.timeoutMs} ms → ${n.timeoutMs} ms`));
  if (n.ttlMs !== undefined && (m.ttlMs === undefined || n.ttlMs < m.ttlMs))
    out.push(
      change(
        "timeout-shortened",
        s,
        path,
        `${path}: @ttl ${m.ttlMs === undefined ? "(none)" : `${m.ttlMs} ms`} → ${n.ttlMs} ms`,
      ),
    );
  const key = (x: MethodModel): string => (x.shard ?? []).map((p) => p.join(".")).join(", ");
  if (key(m) !== key(n))
    out.push(
      change("shard-key-changed", s, path, `${path}: @shard(${key(m)}) → @shard(${key(n)}) moves keys between owners`),
    );
  if (m.shardFallback === true && n.shardFallback !== true && n.shard !== undefined)
    out.push(
      change(
        "fallback-removed",
        s,
        path,
        `${path}: @fallback removed: clients built on the old IDL still send its calls to another instance when the shard's owner is unavailable, and that instance serves them`,
      ),
    );
  if (m.shardFallback !== true && n.shardFallback === true && m.shard !== undefined)
    out.push(
      change(
        "fallback-added",
        s,
        path,
        `${path}: @fallback added: clients built on the new IDL send its calls to another instance when the shard's owner is unavailable`,
      ),
    );
  // The verb counts as the path does: a client of `GET /x` gets a 405 from `DELETE /x`.
  const route = (r: MethodModel["route"]): string => (r === undefined ? "(none)" : `${r.verb} ${r.path}`);
  if (m.route !== undefined && route(m.route) !== route(n.route))
    out.push(change("route-changed", s, path, `${path}: @route ${route(m.route)} → ${route(n.route)}`));
  if (m.idempotent && !n.idempotent)
    out.push(
      change(
        "idempotent-removed",
        s,
        path,
        `${path}: @idempotent removed: clients built on the old IDL retry it (policies, @retry, failover) and may run it twice`,
      ),
    );
  const denied = narrowerAuth(m.auth, n.auth);
  if (denied !== undefined) out.push(change("auth-tightened", s, path, `${path}: ${denied}`));
  const threw = new Set(m.throws);
  for (const e of n.throws)
    if (!threw.has(e))
      out.push(
        change(
          "error-added",
          s,
          path,
          `${path} now throws ${e}: clients built on the old IDL get it as a plain FanError (its status code and name, not the class); callers that handle this method's errors by class or code need a case for it`,
        ),
      );
}

/**
 * Why a method added between `before` and `after` (versions of one major) can reach instances
 * that lack it, or undefined when it cannot: without `@since` (or with one not later than
 * `before`), clients built on the new IDL pick instances still at `before` during a rollout and
 * get UNIMPLEMENTED; `@since` later than `before` makes the pick skip them. A major bump needs
 * nothing: clients of the new major never reach the old one.
 */
function sinceMissing(before: string, after: string, n: MethodModel): string | undefined {
  if (!semver.valid(before) || !semver.valid(after) || semver.major(after) !== semver.major(before)) return undefined;
  if (n.since !== undefined && semver.gt(n.since, before)) return undefined;
  const what =
    n.since === undefined
      ? "was added without @since"
      : `was added with @since("${n.since}"), not later than ${before}`;
  const risk = `clients built on this IDL may call it on instances still at ${before}, which answer UNIMPLEMENTED`;
  if (semver.gt(after, before)) return `${what}: ${risk}; mark it @since("${after}")`;
  const next = semver.inc(before, "minor") ?? after;
  const still = after === before ? `still ${after}` : `${after}, not later than ${before}`;
  return `${what} and the version is ${still}: ${risk}; bump the version to ${next} and mark it @since("${next}")`;
}

/** Why `after` admits fewer callers than `before` (`@auth`: any one of the roles; [] any authenticated caller). */
function narrowerAuth(before: readonly string[] | undefined, after: readonly string[] | undefined): string | undefined {
  const show = (r: readonly string[] | undefined): string =>
    r === undefined
      ? "(none)"
      : r.length === 0
        ? "@auth (any authenticated caller)"
        : `@auth(${r.map((x) => JSON.stringify(x)).join(", ")})`;
  if (after === undefined) return undefined;
  if (before === undefined) return `${show(before)} → ${show(after)}: anonymous callers are refused`;
  if (after.length === 0) return undefined;
  const lost = before.length === 0 ? ["any authenticated caller"] : before.filter((r) => !after.includes(r));
  return lost.length === 0 ? undefined : `${show(before)} → ${show(after)}: ${lost.join(", ")} refused now`;
}

function compareEvents(a: ServiceModel, b: ServiceModel, out: Found[]): void {
  const s = a.fullName;
  const events = new Map(b.events.map((e) => [e.name, e]));
  for (const e of a.events) {
    const n = events.get(e.name);
    const path = `${s}.${e.name}`;
    if (n === undefined) {
      out.push(change("removed", s, path, `event ${path} was removed`));
      continue;
    }
    compareFields(s, path, e.params, n.params, out);
    if (e.broadcast !== n.broadcast)
      out.push(
        change(
          "event-delivery-changed",
          s,
          path,
          e.broadcast
            ? `event ${path}: @broadcast removed: each subscribing service gets it once, not every instance`
            : `event ${path}: @broadcast added: every subscribing instance gets it, not one per service`,
        ),
      );
  }
}

function compareStates(a: ServiceModel, b: ServiceModel, out: Found[]): void {
  const s = a.fullName;
  const states = new Map(b.states.map((x) => [x.name, x]));
  for (const st of a.states) {
    const n = states.get(st.name);
    const path = `${s}.${st.name}`;
    if (n === undefined) out.push(change("removed", s, path, `state ${path} was removed`));
    else if (typeText(n.type) !== typeText(st.type))
      out.push(change("type-changed", s, path, `state ${path}: type ${typeText(st.type)} → ${typeText(n.type)}`));
    else if (n.mode !== st.mode)
      out.push(
        change(
          "state-mode-changed",
          s,
          path,
          `state ${path}: @${st.mode} → @${n.mode}: watchers built on the old IDL apply updates the wrong way`,
        ),
      );
    else if ((n.sharded === true) !== (st.sharded === true))
      out.push(
        change(
          "state-sharding-changed",
          s,
          path,
          n.sharded === true
            ? `state ${path}: @shard added: watchers built on the old IDL watch one value that no longer exists`
            : `state ${path}: @shard removed: watchers built on the old IDL watch one shard of a value that is no longer sharded`,
        ),
      );
  }
}

function compareConfig(a: ServiceModel, b: ServiceModel, out: Found[]): void {
  const s = a.fullName;
  const config = new Map(a.config.map((f) => [f.name, f]));
  for (const f of b.config) {
    const path = `${s}.config.${f.name}`;
    const old = config.get(f.name);
    const required = !f.optional && f.default === undefined;
    if (old === undefined) {
      if (required)
        out.push(
          change(
            "config-required",
            s,
            path,
            `${s}: new config key ${f.name} has no default (instances will not start without it)`,
          ),
        );
    } else if (typeText(old.type) !== typeText(f.type))
      out.push(
        change(
          "config-changed",
          s,
          path,
          `${path}: type ${typeText(old.type)} → ${typeText(f.type)} (existing config no longer validates)`,
        ),
      );
    else {
      if (required && (old.optional || old.default !== undefined))
        out.push(change("config-required", s, path, `${path} lost its default (instances without it will not start)`));
      compareConstraints(s, path, old.constraints, f.constraints, out);
    }
  }
}

/** A new hard dependency, a soft one made hard, or a range that excludes versions it accepted. */
function compareDepends(a: ServiceModel, b: ServiceModel, out: Found[]): void {
  const s = a.fullName;
  const was = new Map(a.depends.map((d) => [d.service, d]));
  for (const d of b.depends) {
    const path = `${s}.depends.${d.service}`;
    const at = `${s}.depends.${d.service.split(".").pop()}`;
    const old = was.get(d.service);
    if (d.soft) continue;
    if (old === undefined || old.soft) {
      const what = old === undefined ? "new hard dependency" : "soft dependency made hard";
      out.push(
        change(
          "dependency-added",
          s,
          path,
          `${s}: ${what} on ${d.service} ${d.range} (instances will not start where it is not running)`,
          at,
        ),
      );
    } else if (old.range !== d.range && !safeSubset(old.range, d.range))
      out.push(
        change(
          "dependency-range-changed",
          s,
          path,
          `${s}: depends on ${d.service} "${old.range}" → "${d.range}" (versions accepted before are refused now)`,
          at,
        ),
      );
  }
}

function safeSubset(sub: string, sup: string): boolean {
  try {
    return semver.subset(sub, sup);
  } catch {
    return false;
  }
}
