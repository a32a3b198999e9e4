/**
 * Services: service decorators, dependencies, config, methods, events, states and
 * subscriptions, checked into a ServiceModel.
 */
import semver from "semver";
import type * as A from "./ast.js";
import { checkShard } from "./check-bindings.js";
import { checkRoute, type RouteClaims } from "./check-routes.js";
import { type Checker, here } from "./check-context.js";
import { declBase } from "./check-decls.js";
import { checkFields, type Mutable, resolveType, unknownTypeIn } from "./check-types.js";
import { argDuration, argInt, argNames, argNone, argString, argStrings, decoratorsFor } from "./decorators.js";
import { diag } from "./diagnostics.js";
import {
  type DependencyModel,
  type EventModel,
  type FieldModel,
  type MethodModel,
  type ServiceModel,
  type StateModel,
  type SubscriptionModel,
  TRANSPORT_NAMES,
  type TransportName,
} from "./model.js";
import { capitalise, checkMemberName } from "./naming.js";
import { type DeclEntry, type FileScope, qnText, reportUnresolved, resolve } from "./scope.js";

/** A `depends` edge, kept with its position for the program-wide cycle check. */
export interface DependencyEdge {
  readonly from: string;
  readonly to: string;
  readonly soft: boolean;
  readonly range: string;
  readonly span: A.Span;
  readonly rangeSpan: A.Span;
}

const RESERVED_METHODS: Readonly<Record<string, string>> = {
  events: "the generated client has an `events` property",
  states: "the generated client has a `states` property",
  preStart: "it is a lifecycle hook of the handler",
  start: "it is a lifecycle hook of the handler",
  postStart: "it is a lifecycle hook of the handler",
  stop: "it is a lifecycle hook of the handler",
  postStop: "it is a lifecycle hook of the handler",
};

/** True when `v` is a plain `x.y.z` semantic version (prerelease and build allowed). */
export function isSemver(v: string): boolean {
  return semver.valid(v) === v;
}

/** Everything one service contributes. */
interface ServiceParts {
  readonly depends: DependencyModel[];
  readonly edges: DependencyEdge[];
  config: FieldModel[] | undefined;
  readonly methods: MethodModel[];
  readonly events: EventModel[];
  readonly states: StateModel[];
  readonly subscriptions: SubscriptionModel[];
  /** Where each subscription was written, by handler name. */
  readonly handlerSpans: Map<string, A.Span>;
  /** The verb and path of each `@route` so far. */
  readonly routes: RouteClaims;
}

/** Check a service; `pkgVersion` is the package's `version` line, if any. */
export function checkService(
  c: Checker,
  scope: FileScope,
  entry: DeclEntry,
  d: A.ServiceDecl,
  pkgVersion: string | undefined,
): { model: ServiceModel; edges: DependencyEdge[] } {
  const decs = decoratorsFor(d.decorators, "service", c.out);
  const version = serviceVersion(c, decs.get("version")) ?? pkgVersion ?? "0.0.0";
  const parts: ServiceParts = {
    depends: [],
    edges: [],
    config: undefined,
    methods: [],
    events: [],
    states: [],
    subscriptions: [],
    handlerSpans: new Map(),
    routes: new Map(),
  };
  let prev: A.ServiceMember | undefined;
  for (const m of d.members) {
    here(c, m.span);
    if (prev !== undefined) checkDanglingDecorators(c, scope.file.text, prev, m);
    checkMember(c, scope, entry, m, version, parts);
    prev = m;
  }
  checkHandlerNames(c, parts);
  const model: ServiceModel = {
    kind: "service",
    ...declBase(c, entry, decs),
    version,
    transports: transports(c, decs.get("transports")),
    shards: shards(c, decs.get("shards")),
    unique: decs.has("unique") && argNone(decs.get("unique")!, c.out),
    depends: parts.depends,
    config: parts.config ?? [],
    methods: withServiceAuth(parts.methods, decs.get("auth"), c),
    events: parts.events,
    states: parts.states,
    subscriptions: parts.subscriptions,
  };
  return { model, edges: parts.edges };
}

/** Where a member's own text begins after its leading decorators (its name or target). */
function memberHead(m: A.ServiceMember): A.Span | undefined {
  switch (m.kind) {
    case "Rpc":
    case "Push":
    case "Event":
    case "State":
      return m.name.span;
    case "On":
      return m.target.span;
    case "Depends":
      return m.service.span;
    case "Config":
      return undefined;
  }
}

/** A short name for a member in messages: `rpc get`, `on Svc.ev`, `config`. */
function memberLabel(m: A.ServiceMember): string {
  const dotted = (q: A.QualifiedName): string => q.parts.map((p) => p.name).join(".");
  switch (m.kind) {
    case "On":
      return `on ${dotted(m.target)}`;
    case "Depends":
      return `depends ${dotted(m.service)}`;
    case "Config":
      return "config";
    default:
      return `${m.kind.toLowerCase()} ${m.name.name}`;
  }
}

/**
 * Warns when a member's leading decorators start on the line where the previous member ends
 * and the member itself begins on a later line (`rpc a(): int @idempotent` then `rpc b()`):
 * the decorator reads as the previous member's but belongs to the next one.
 */
function checkDanglingDecorators(c: Checker, text: string, prev: A.ServiceMember, m: A.ServiceMember): void {
  const head = memberHead(m);
  const leading = m.decorators.filter((d) => head === undefined || d.span.start < head.start);
  const first = leading[0];
  const last = leading[leading.length - 1];
  if (first === undefined || last === undefined || first.span.start < prev.span.end) return;
  if (/[\r\n]/.test(text.slice(prev.span.end, first.span.start))) return;
  const after = text.slice(last.span.end, head?.start ?? m.span.end);
  if (!/^[ \t]*(\/\/[^\n]*)?\r?\n/.test(after)) return;
  for (const d of leading)
    c.out.push(diag.danglingDecorator(d.span, { name: d.name.name, next: memberLabel(m), prev: memberLabel(prev) }));
}

function serviceVersion(c: Checker, d: A.Decorator | undefined): string | undefined {
  if (d === undefined) return undefined;
  const s = argString(d, c.out);
  if (s === undefined) return undefined;
  if (isSemver(s.value)) return s.value;
  c.out.push(diag.invalidSemver(s.span, { text: s.value }));
  return undefined;
}

function transports(c: Checker, d: A.Decorator | undefined): TransportName[] {
  if (d === undefined) return [...TRANSPORT_NAMES];
  const names = argNames(d, c.out) ?? [];
  const chosen = new Set<string>(["local"]);
  for (const n of names) {
    const t = qnText(n.name);
    if ((TRANSPORT_NAMES as readonly string[]).includes(t)) chosen.add(t);
    else c.out.push(diag.unknownTransport(n.span, { name: t }));
  }
  return TRANSPORT_NAMES.filter((t) => chosen.has(t));
}

function shards(c: Checker, d: A.Decorator | undefined): number {
  if (d === undefined) return 16;
  const e = d.args?.length === 1 ? d.args[0] : undefined;
  if (e?.kind === "IntLit" && !(Number(e.text) >= 1)) {
    c.out.push(diag.invalidShards(e.span, { text: e.text }));
    return 16;
  }
  return argInt(d, c.out)?.value ?? 16;
}

function checkMember(
  c: Checker,
  scope: FileScope,
  self: DeclEntry,
  m: A.ServiceMember,
  version: string,
  parts: ServiceParts,
): void {
  switch (m.kind) {
    case "Depends":
      checkDepends(c, scope, self, m, parts);
      break;
    case "Config":
      decoratorsFor(m.decorators, "config", c.out);
      if (parts.config !== undefined) c.out.push(diag.duplicateConfig(m.span));
      else parts.config = checkFields(c, scope, m.fields, "config entry");
      break;
    case "Rpc":
    case "Push":
      addUnique(c, parts.methods, checkMethod(c, scope, m, version, parts.routes), m.name, "method");
      break;
    case "Event":
      addUnique(c, parts.events, checkEvent(c, scope, m, version), m.name, "event");
      break;
    case "State":
      addUnique(c, parts.states, checkState(c, scope, m), m.name, "state");
      break;
    case "On":
      checkOn(c, scope, self, m, parts);
      break;
  }
}

function addUnique<T extends { readonly name: string }>(
  c: Checker,
  list: T[],
  item: T | undefined,
  name: A.Ident,
  what: string,
): void {
  if (list.some((x) => x.name === name.name)) c.out.push(diag.duplicateMember(name.span, { what, name: name.name }));
  else if (item !== undefined) list.push(item);
}

/** Resolve a name that must be a service. */
export function resolveService(c: Checker, scope: FileScope, q: A.QualifiedName): DeclEntry | undefined {
  const r = resolve(scope, q, c.packages);
  if (!("ok" in r)) {
    c.out.push(reportUnresolved(r, q.span, (span, name) => diag.unknownService(span, { name })));
    return undefined;
  }
  if (r.ok.decl.kind !== "Service") {
    c.out.push(diag.notAService(q.span, { name: r.ok.fullName, kind: r.ok.decl.kind.toLowerCase() }));
    return undefined;
  }
  return r.ok;
}

function checkDepends(c: Checker, scope: FileScope, self: DeclEntry, m: A.DependsMember, parts: ServiceParts): void {
  decoratorsFor(m.decorators, "depends", c.out);
  const target = resolveService(c, scope, m.service);
  const range = m.range.value;
  const rangeOk = range.trim() !== "" && semver.validRange(range) !== null;
  if (!rangeOk) c.out.push(diag.invalidRange(m.range.span, { text: range }));
  if (target === undefined) return;
  if (parts.depends.some((x) => x.service === target.fullName)) {
    c.out.push(diag.duplicateDependency(m.service.span, { name: target.fullName }));
    return;
  }
  parts.depends.push({ service: target.fullName, range, soft: m.soft });
  parts.edges.push({
    from: self.fullName,
    to: target.fullName,
    soft: m.soft,
    range: rangeOk ? range : "*",
    span: m.service.span,
    rangeSpan: m.range.span,
  });
}

function checkOn(c: Checker, scope: FileScope, self: DeclEntry, m: A.OnMember, parts: ServiceParts): void {
  decoratorsFor(m.decorators, "on", c.out);
  const names = m.target.parts;
  const ev = names[names.length - 1]!;
  const svcName: A.QualifiedName | undefined =
    names.length === 1
      ? undefined
      : {
          kind: "QualifiedName",
          parts: names.slice(0, -1),
          span: { ...m.target.span, end: names[names.length - 2]!.span.end },
        };
  const svc = svcName === undefined ? self : resolveService(c, scope, svcName);
  if (svc === undefined || svc.decl.kind !== "Service") return;
  const member = svc.decl.members.find((x) => "name" in x && x.name.name === ev.name);
  if (member === undefined || member.kind !== "Event") {
    const detail = member === undefined ? "" : ` (it is ${MEMBER_TEXT[member.kind]})`;
    c.out.push(diag.notAnEvent(ev.span, { name: ev.name, service: svc.fullName, detail }));
    return;
  }
  if (parts.subscriptions.some((s) => s.service === svc.fullName && s.event === ev.name)) {
    c.out.push(diag.duplicateSubscription(m.target.span, { name: `${svc.fullName}.${ev.name}` }));
    return;
  }
  const sub: SubscriptionModel = {
    service: svc.fullName,
    event: ev.name,
    handler: `on${capitalise(ev.name)}`,
    ...(m.doc === undefined ? {} : { doc: m.doc }),
  };
  const clash = parts.subscriptions.find((s) => s.handler === sub.handler);
  if (clash !== undefined) {
    c.out.push(
      diag.handlerCollision(m.target.span, {
        handler: sub.handler,
        other: `the subscription to ${clash.service}.${clash.event}`,
      }),
    );
    return;
  }
  parts.subscriptions.push(sub);
  parts.handlerSpans.set(sub.handler, m.target.span);
}

const MEMBER_TEXT: Readonly<Record<A.ServiceMember["kind"], string>> = {
  Rpc: "an rpc",
  Push: "a push",
  Event: "an event",
  State: "a state",
  Depends: "a dependency",
  Config: "a config block",
  On: "a subscription",
};

/** Subscription handlers live next to methods on the handler interface. */
function checkHandlerNames(c: Checker, parts: ServiceParts): void {
  for (const sub of parts.subscriptions) {
    const method = parts.methods.find((x) => x.name === sub.handler);
    if (method !== undefined)
      c.out.push(
        diag.handlerCollision(parts.handlerSpans.get(sub.handler)!, {
          handler: sub.handler,
          other: `the ${method.kind} \`${method.name}\``,
        }),
      );
  }
}

function sinceVersion(c: Checker, d: A.Decorator | undefined, version: string): string | undefined {
  if (d === undefined) return undefined;
  const s = argString(d, c.out);
  if (s === undefined) return undefined;
  if (!isSemver(s.value)) c.out.push(diag.invalidSemver(s.span, { text: s.value }));
  else if (isSemver(version) && semver.gt(s.value, version))
    c.out.push(diag.sinceAfterVersion(s.span, { since: s.value, version }));
  else return s.value;
  return undefined;
}

function positiveMs(c: Checker, d: A.Decorator | undefined): number | undefined {
  if (d === undefined) return undefined;
  const lit = argDuration(d, c.out);
  if (lit === undefined) return undefined;
  if (lit.ms > 0) return lit.ms;
  c.out.push(diag.durationNotPositive(lit.span, { name: d.name.name, text: lit.text }));
  return undefined;
}

function checkMethod(
  c: Checker,
  scope: FileScope,
  m: A.RpcMember | A.PushMember,
  version: string,
  routes: RouteClaims,
): MethodModel | undefined {
  checkMemberName(m.name, m.kind === "Rpc" ? "rpc" : "push", c.out);
  const reserved = RESERVED_METHODS[m.name.name];
  if (reserved !== undefined && Object.hasOwn(RESERVED_METHODS, m.name.name)) {
    c.out.push(diag.reservedMemberName(m.name.span, { name: m.name.name, what: "method", reason: reserved }));
  }
  const decs = decoratorsFor(m.decorators, m.kind === "Rpc" ? "rpc" : "push", c.out);
  const params = checkFields(c, scope, m.params, "parameter");
  const returns = m.kind === "Rpc" ? resolveType(c, scope, m.returns, "return") : { kind: "void" as const };
  const throws = m.kind === "Rpc" ? checkThrows(c, scope, m.throws) : [];
  const idempotent = decs.has("idempotent") && argNone(decs.get("idempotent")!, c.out);
  const retry = retryCount(c, decs.get("retry"), m.name.name, idempotent);
  const route = decs.get("route");
  const shard = decs.get("shard");
  const model: Mutable<MethodModel> = {
    kind: m.kind === "Rpc" ? "rpc" : "push",
    name: m.name.name,
    params,
    returns: returns ?? { kind: "void" },
    throws,
    idempotent,
    retry,
  };
  if (m.kind === "Rpc") model.timeoutMs = positiveMs(c, decs.get("timeout")) ?? 10_000;
  const ttlMs = positiveMs(c, decs.get("ttl"));
  if (ttlMs !== undefined) model.ttlMs = ttlMs;
  // A parameter whose type did not resolve is dropped from `params` but is still a parameter.
  const written = m.params.map((p) => p.name.name);
  const routeModel = route === undefined ? undefined : checkRoute(c, route, { ...model, written }, routes);
  if (routeModel !== undefined) model.route = routeModel;
  const shardModel = shard === undefined ? undefined : checkShard(c, shard, params, written);
  if (shardModel !== undefined) model.shard = shardModel;
  const fallback = decs.get("fallback");
  if (fallback !== undefined && argNone(fallback, c.out)) {
    if (shard === undefined) c.out.push(diag.fallbackWithoutShard(fallback.span, { name: m.name.name }));
    else model.shardFallback = true;
  }
  const auth = decs.get("auth");
  const roles = auth === undefined ? undefined : argStrings(auth, c.out);
  if (roles !== undefined) model.auth = roles;
  setCommon(c, model, decs, version, m.doc);
  return model;
}

/** `@since`, `@deprecated` and the doc comment, shared by methods and events. */
function setCommon(
  c: Checker,
  model: Mutable<MethodModel> | Mutable<EventModel>,
  decs: ReadonlyMap<string, A.Decorator>,
  version: string,
  doc: string | undefined,
): void {
  const since = sinceVersion(c, decs.get("since"), version);
  if (since !== undefined) model.since = since;
  const dep = decs.get("deprecated");
  const deprecated = dep === undefined ? undefined : argString(dep, c.out)?.value;
  if (deprecated !== undefined) model.deprecated = deprecated;
  if (doc !== undefined) model.doc = doc;
}

/** A service's `@auth` applies to each of its methods that has none of its own. */
function withServiceAuth(methods: MethodModel[], d: A.Decorator | undefined, c: Checker): MethodModel[] {
  const roles = d === undefined ? undefined : argStrings(d, c.out);
  if (roles === undefined) return methods;
  return methods.map((m) => (m.auth === undefined ? { ...m, auth: roles } : m));
}

function retryCount(c: Checker, d: A.Decorator | undefined, method: string, idempotent: boolean): number {
  if (d === undefined) return 0;
  const n = argInt(d, c.out);
  if (n === undefined) return 0;
  if (n.value < 0) {
    c.out.push(diag.decoratorArguments(d.span, { name: "retry", expected: "a non-negative integer" }));
    return 0;
  }
  if (!idempotent) c.out.push(diag.retryWithoutIdempotent(d.span, { name: method }));
  return n.value;
}

function checkThrows(c: Checker, scope: FileScope, names: readonly A.QualifiedName[]): string[] {
  const out: string[] = [];
  for (const q of names) {
    const r = resolve(scope, q, c.packages);
    if (!("ok" in r)) {
      c.out.push(
        reportUnresolved(
          r,
          q.span,
          unknownTypeIn(scope, (k) => k === "Error", false),
        ),
      );
    } else if (r.ok.decl.kind !== "Error") {
      c.out.push(diag.notAnError(q.span, { name: r.ok.fullName, kind: r.ok.decl.kind.toLowerCase() }));
    } else if (out.includes(r.ok.fullName)) {
      c.out.push(diag.duplicateMember(q.span, { what: "error in `throws`", name: r.ok.fullName }));
    } else {
      out.push(r.ok.fullName);
    }
  }
  return out;
}

function checkEvent(c: Checker, scope: FileScope, m: A.EventMember, version: string): EventModel {
  checkMemberName(m.name, "event", c.out);
  const decs = decoratorsFor(m.decorators, "event", c.out);
  const params = checkFields(c, scope, m.params, "parameter");
  const broadcast = decs.has("broadcast") && argNone(decs.get("broadcast")!, c.out);
  const model: Mutable<EventModel> = { name: m.name.name, params, broadcast };
  setCommon(c, model, decs, version, m.doc);
  return model;
}

function checkState(c: Checker, scope: FileScope, m: A.StateMember): StateModel | undefined {
  checkMemberName(m.name, "state", c.out);
  const decs = decoratorsFor(m.decorators, "state", c.out);
  const full = decs.get("full");
  const delta = decs.get("delta");
  if ((full === undefined) === (delta === undefined)) c.out.push(diag.stateMode(m.name.span, { name: m.name.name }));
  for (const d of [full, delta]) if (d !== undefined) argNone(d, c.out);
  const shard = decs.get("shard");
  if (shard?.args !== undefined && shard.args.length > 0)
    c.out.push(diag.stateShardArgs(shard.span, { name: m.name.name }));
  const type = resolveType(c, scope, m.type, "field");
  if (type === undefined) return undefined;
  return {
    name: m.name.name,
    type,
    mode: delta !== undefined && full === undefined ? "delta" : "full",
    ...(shard === undefined ? {} : { sharded: true }),
    ...(m.doc === undefined ? {} : { doc: m.doc }),
  };
}
