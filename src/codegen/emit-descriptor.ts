/**
 * The service descriptor: the data the runtime executes (methods with kinds, timeouts, routes
 * and shard keys; events; states; subscriptions; dependencies; config schema; errors).
 * References to other modules stay inside functions or getters, so import cycles between
 * packages are safe at module evaluation.
 */
import type CodeBlockWriter from "code-block-writer";
import { defaultRouteVerb } from "../compiler/check-routes.js";
import type { EventModel, MethodModel, ServiceModel, StateModel, SubscriptionModel } from "../compiler/model.js";
import { writeFieldList } from "./emit-types.js";
import type { ModuleContext } from "./module-context.js";
import { recordKey, str } from "./names.js";
import { jsonLiteral, obj, schemaExpr } from "./types.js";

/** The default rpc timeout, also written for pushes (whose model has none). */
const DEFAULT_TIMEOUT_MS = 10_000;

/** Writes `export const XDescriptor: ServiceDescriptor = { ... };`. */
export function writeDescriptor(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  w.writeLine(`/** What the runtime executes for ${svc.name}. */`);
  w.write(`export const ${svc.name}Descriptor: ${ctx.rt("ServiceDescriptor")} = `).inlineBlock(() => {
    w.writeLine(`name: ${str(svc.fullName)},`);
    w.writeLine(`version: ${str(svc.version)},`);
    w.writeLine(`transports: ${jsonLiteral(svc.transports)},`);
    w.writeLine(`shards: ${svc.shards},`);
    w.writeLine(`unique: ${svc.unique},`);
    writeRecord(w, "methods", svc.methods, (m) => writeMethod(w, ctx, svc, m));
    writeRecord(w, "events", svc.events, (e) => writeEvent(w, ctx, svc, e));
    writeRecord(w, "states", svc.states, (s) => writeState(w, ctx, s));
    writeList(
      w,
      "subscriptions",
      svc.subscriptions.map((s) => subscription(ctx, s)),
    );
    writeList(
      w,
      "depends",
      svc.depends.map((d) =>
        obj([
          ["service", str(d.service)],
          ["range", str(d.range)],
          ["soft", String(d.soft)],
        ]),
      ),
    );
    if (svc.config.length > 0) writeConfigSchema(w, ctx, svc);
    writeErrors(w, ctx, svc);
  });
  w.write(";").newLine();
}

function writeRecord<T extends { readonly name: string }>(
  w: CodeBlockWriter,
  key: string,
  items: readonly T[],
  each: (item: T) => void,
): void {
  if (items.length === 0) {
    w.writeLine(`${key}: {},`);
    return;
  }
  w.write(`${key}: `).inlineBlock(() => {
    for (const item of items) {
      w.write(`${recordKey(item.name)}: `).inlineBlock(() => each(item));
      w.write(",").newLine();
    }
  });
  w.write(",").newLine();
}

function writeList(w: CodeBlockWriter, key: string, items: readonly string[]): void {
  if (items.length === 0) {
    w.writeLine(`${key}: [],`);
    return;
  }
  w.writeLine(`${key}: [`);
  w.indent(() => {
    for (const item of items) w.writeLine(`${item},`);
  });
  w.writeLine("],");
}

function writeInput(
  w: CodeBlockWriter,
  ctx: ModuleContext,
  key: string,
  name: string,
  m: MethodModel | EventModel,
): void {
  w.write(`${key}: `).inlineBlock(() => {
    w.writeLine(`kind: "struct",`);
    w.writeLine(`name: ${str(name)},`);
    writeFieldList(w, ctx, m.params);
  });
  w.write(",").newLine();
}

function writeMethod(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel, m: MethodModel): void {
  w.writeLine(`name: ${str(m.name)},`);
  w.writeLine(`kind: ${str(m.kind)},`);
  writeInput(w, ctx, "input", `${svc.fullName}.${m.name}$input`, m);
  w.writeLine(`output: ${schemaExpr(ctx, m.kind === "push" ? { kind: "void" } : m.returns)},`);
  w.writeLine(`timeoutMs: ${m.timeoutMs ?? DEFAULT_TIMEOUT_MS},`);
  if (m.ttlMs !== undefined) w.writeLine(`ttlMs: ${m.ttlMs},`);
  w.writeLine(`idempotent: ${m.idempotent},`);
  w.writeLine(`retry: ${m.retry},`);
  if (m.route !== undefined) w.writeLine(`route: ${route(m, m.route)},`);
  if (m.shard !== undefined) w.writeLine(`shard: ${jsonLiteral(m.shard)},`);
  if (m.shardFallback === true) w.writeLine("shardFallback: true,");
  w.writeLine(`throws: ${jsonLiteral(m.throws)},`);
  if (m.auth !== undefined) w.writeLine(`auth: ${jsonLiteral(m.auth)},`);
  if (m.since !== undefined) w.writeLine(`since: ${str(m.since)},`);
  if (m.deprecated !== undefined) w.writeLine(`deprecated: ${str(m.deprecated)},`);
}

/**
 * A route's verb is written only when it is not the one `@route("/path")` means (GET for an
 * `@idempotent` rpc, POST otherwise), which the runtime assumes when none is written: routes
 * without a verb generate what they did before verbs existed.
 */
function route(m: MethodModel, r: NonNullable<MethodModel["route"]>): string {
  return obj([
    ...(r.verb === defaultRouteVerb(m.kind, m.idempotent) ? [] : [["verb", str(r.verb)] as const]),
    ["path", str(r.path)],
    ["params", jsonLiteral(r.params)],
  ]);
}

function writeEvent(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel, e: EventModel): void {
  w.writeLine(`name: ${str(e.name)},`);
  writeInput(w, ctx, "payload", `${svc.fullName}.${e.name}$event`, e);
  w.writeLine(`broadcast: ${e.broadcast},`);
}

function writeState(w: CodeBlockWriter, ctx: ModuleContext, s: StateModel): void {
  w.writeLine(`name: ${str(s.name)},`);
  w.writeLine(`schema: ${schemaExpr(ctx, s.type)},`);
  w.writeLine(`mode: ${str(s.mode)},`);
  if (s.sharded === true) w.writeLine("sharded: true,");
}

function subscription(ctx: ModuleContext, s: SubscriptionModel): string {
  ctx.event(s.service, s.event);
  return obj([
    ["service", str(s.service)],
    ["event", str(s.event)],
    ["handler", str(s.handler)],
    ["source", `() => ${ctx.ref(s.service, "Descriptor")}`],
  ]);
}

function writeConfigSchema(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  w.write("config: ").inlineBlock(() => {
    w.writeLine(`kind: "struct",`);
    w.writeLine(`name: ${str(`${svc.fullName}$config`)},`);
    writeFieldList(w, ctx, svc.config);
  });
  w.write(",").newLine();
}

/** Every error any method throws, once, in first-use order; other packages' through getters. */
function writeErrors(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  const names = [...new Set(svc.methods.flatMap((m) => m.throws))];
  if (names.length === 0) {
    w.writeLine("errors: {},");
    return;
  }
  w.write("errors: ").inlineBlock(() => {
    for (const name of names) {
      const decl = ctx.decl(name);
      const ref = ctx.ref(name, "Error");
      if (decl.package === ctx.pkg.name) w.writeLine(`${str(name)}: ${ref},`);
      else w.writeLine(`get ${str(name)}() { return ${ref}; },`);
    }
  });
  w.write(",").newLine();
}
