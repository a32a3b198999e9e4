/**
 * Generated code for a service: its config interface, the handler interface a service
 * implements, the typed client, the descriptor the runtime executes, the service definition
 * that ties them together, and a mock for tests. See docs/generated-code.md.
 */
import type CodeBlockWriter from "code-block-writer";
import type {
  EventModel,
  FieldModel,
  MethodModel,
  ServiceModel,
  StateModel,
  SubscriptionModel,
} from "../compiler/model.js";
import { CodegenCode, CodegenError } from "./errors.js";
import { writeDescriptor } from "./emit-descriptor.js";
import { writeFields } from "./emit-types.js";
import type { ModuleContext } from "./module-context.js";
import { symbolName } from "./module-context.js";
import { propKey, str } from "./names.js";
import { paramsType, requestOptional, tsType } from "./types.js";
import { writeDoc } from "./writer.js";

/** Names the generated client and handler types use themselves, which no method may take. */
const CLIENT_MEMBERS: ReadonlySet<string> = new Set(["events", "states"]);
const HOOKS: ReadonlySet<string> = new Set(["preStart", "start", "postStart", "stop", "postStop"]);
/** Members of the runtime's `ServiceMock` that a method mock never replaces (reach it with `mock.method(name)`). */
const MOCK_CORE: ReadonlySet<string> = new Set(["definition", "handler", "client"]);
/** Members of `ServiceMock` that a method mock of the same name replaces. */
const MOCK_REPLACEABLE: ReadonlySet<string> = new Set(["emit", "setState", "patchState", "method"]);

/** A service: config, handler, client, descriptor, definition and mock. */
export function emitService(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  checkMemberNames(svc);
  const config = writeConfig(w, ctx, svc);
  writeRequests(w, ctx, svc);
  writeEvents(w, ctx, svc);
  writeStates(w, ctx, svc);
  const parts = [
    () => writeHandler(w, ctx, svc, config),
    () => writeClient(w, ctx, svc),
    () => writeDescriptor(w, ctx, svc),
    () => writeDefinition(w, ctx, svc),
    () => writeMock(w, ctx, svc, config),
  ];
  for (const part of parts) {
    w.blankLineIfLastNot();
    part();
  }
}

/** Method and subscription-handler names must be unique and must not shadow the client's members or the handler's hooks. */
function checkMemberNames(svc: ServiceModel): void {
  const seen = new Map<string, string>();
  const add = (name: string, what: string): void => {
    const clash =
      seen.get(name) ??
      (CLIENT_MEMBERS.has(name) ? "the client's own member" : HOOKS.has(name) ? "the lifecycle hook" : undefined);
    if (clash !== undefined) {
      throw new CodegenError(
        CodegenCode.NameCollision,
        `service "${svc.fullName}": ${what} "${name}" collides with ${clash} "${name}"; rename it`,
      );
    }
    seen.set(name, what);
  };
  for (const m of svc.methods) add(m.name, m.kind);
  for (const s of svc.subscriptions) add(s.handler, `the handler of "on ${s.service}.${s.event}"`);
}

/**
 * `CallContext<XConfig, XEvents>`: `ctx.emit` typed by the service's own events; a service
 * without events gets `Record<never, never>` (no names: any `ctx.emit.x(...)` is a type error, and
 * a handler typed with the default `CallContext` still implements the interface).
 */
function ctxType(ctx: ModuleContext, svc: ServiceModel, config: string): string {
  const events = eventsType(ctx, svc);
  // A service with states adds its state map: `ctx.states.x` typed by the IDL.
  const states = svc.states.length === 0 ? "" : `, ${svc.name}States`;
  return `${ctx.rt("CallContext")}<${config}, ${events}${states}>`;
}

/** `XEvents`, or `Record<never, never>` for a service without events (no names to emit). */
function eventsType(ctx: ModuleContext, svc: ServiceModel): string {
  return svc.events.length === 0 ? `${ctx.global("Record")}<never, never>` : `${svc.name}Events`;
}

/** `XStates`: each state's value type, by state name (`ctx.states` of the service's handlers). */
function writeStates(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  if (svc.states.length === 0) return;
  w.blankLineIfLastNot();
  w.writeLine(`/** The value of each state ${svc.name} owns (\`ctx.states\` in its handlers). */`);
  w.write(`export interface ${svc.name}States`).block(() => {
    for (const s of svc.states) {
      const t = tsType(ctx, s.type);
      // A sharded state's owner side is `ShardedStatePublisher<T>`: one value per shard.
      w.writeLine(`${propKey(s.name, "type")}: ${s.sharded === true ? `${ctx.rt("Sharded")}<${t}>` : t};`);
    }
  });
}

/** Writes `XConfig` and returns the type handlers' contexts are parameterised with. */
function writeConfig(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): string {
  if (svc.config.length === 0) return `${ctx.global("Record")}<string, never>`;
  w.writeLine(`/** The validated config of ${svc.name}. */`);
  w.write(`export interface ${svc.name}Config`).block(() => writeFields(w, ctx, svc.config));
  return `${svc.name}Config`;
}

/** `XRequests`: each method's parameters as its handler receives them, by method name. */
function writeRequests(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  if (svc.methods.length === 0) return;
  w.blankLineIfLastNot();
  w.writeLine(
    `/** The parameters of each method of ${svc.name}, as its handler receives them (defaults filled in). */`,
  );
  w.write(`export interface ${svc.name}Requests`).block(() => {
    for (const m of svc.methods) writeParamsMember(w, ctx, m.name, m.params);
  });
}

/** `name: { a: T; b: U };`, one field per line with its TSDoc when any parameter is documented. */
function writeParamsMember(w: CodeBlockWriter, ctx: ModuleContext, name: string, params: readonly FieldModel[]): void {
  if (!params.some((p) => p.doc !== undefined || p.deprecated !== undefined)) {
    w.writeLine(`${propKey(name, "type")}: ${paramsType(ctx, params)};`);
    return;
  }
  w.write(`${propKey(name, "type")}: `).inlineBlock(() => writeFields(w, ctx, params));
  w.write(";").newLine();
}

/** `XEvents`: each event's payload, by event name. */
function writeEvents(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  if (svc.events.length === 0) return;
  w.blankLineIfLastNot();
  w.writeLine(`/** The payload of each event ${svc.name} publishes. */`);
  w.write(`export interface ${svc.name}Events`).block(() => {
    for (const e of svc.events) writeParamsMember(w, ctx, e.name, e.params);
  });
}

/** The handler-side request type of a method: `XRequests["get"]`. */
function requestType(svc: ServiceModel, m: MethodModel): string {
  return `${svc.name}Requests[${str(m.name)}]`;
}

/** The payload type of an event, as written in this module: `XEvents["ev"]` or `pkg.XEvents["ev"]`. */
function eventPayload(ctx: ModuleContext, service: string, event: string): string {
  ctx.event(service, event);
  return `${ctx.ref(service, "Events")}[${str(event)}]`;
}

function returnType(ctx: ModuleContext, m: MethodModel): string {
  return m.kind === "push" ? "void" : tsType(ctx, m.returns);
}

/** The payload type of the event a subscription receives, as written in this module. */
function subscriptionPayload(ctx: ModuleContext, s: SubscriptionModel): string {
  return eventPayload(ctx, s.service, s.event);
}

function writeHandler(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel, config: string): void {
  const promise = ctx.global("Promise");
  w.writeLine(`/** What an implementation of ${svc.name} provides: one method per rpc, push and subscription. */`);
  // ShardHooks on every service: one served with pinned shards gets `onShards` without `@shard` (served.ts).
  const hooks = `${ctx.rt("ServiceHooks")}, ${ctx.rt("ShardHooks")}`;
  w.write(`export interface ${svc.name}Handler extends ${hooks}`).block(() => {
    for (const m of svc.methods) {
      const res = returnType(ctx, m);
      writeDoc(w, m);
      w.writeLine(
        `${propKey(m.name, "type")}(req: ${requestType(svc, m)}, ctx: ${ctxType(ctx, svc, config)}): ${promise}<${res}> | ${res};`,
      );
    }
    for (const s of svc.subscriptions) {
      writeDoc(w, { doc: s.doc ?? `Receives ${s.service}.${s.event}.` });
      w.writeLine(
        `${propKey(s.handler, "type")}(event: ${subscriptionPayload(ctx, s)}, ctx: ${ctxType(ctx, svc, config)}): ${promise}<void> | void;`,
      );
    }
  });
}

/**
 * The client's request parameter, spelled out (`req: { storeId: string; id: string }`) so an
 * editor's hover and signature help show the fields rather than `XRequests["get"]`; defaulted
 * parameters are optional for the caller.
 */
function clientParams(ctx: ModuleContext, m: MethodModel): string {
  return `req${requestOptional(m.params) ? "?" : ""}: ${paramsType(ctx, m.params, true)}`;
}

function eventType(ctx: ModuleContext, svc: ServiceModel, e: EventModel): string {
  return `${ctx.rt("EventStream")}<${svc.name}Events[${str(e.name)}]>`;
}

function writeClient(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  const promise = ctx.global("Promise");
  w.writeLine(`/** The typed client of ${svc.name}, over whichever transport discovery picks. */`);
  w.write(`export interface ${svc.name}Client`).block(() => {
    for (const m of svc.methods) {
      writeDoc(w, m);
      w.writeLine(
        `${propKey(m.name, "type")}(${clientParams(ctx, m)}, opts?: ${ctx.rt("CallOptions")}): ${promise}<${returnType(ctx, m)}>;`,
      );
    }
    writeMemberType(w, ctx, "events", svc.events, (e) => {
      writeDoc(w, e);
      w.writeLine(`readonly ${propKey(e.name, "type")}: ${eventType(ctx, svc, e)};`);
    });
    writeMemberType(w, ctx, "states", svc.states, (s) => {
      writeDoc(w, s);
      w.writeLine(`readonly ${propKey(s.name, "type")}: ${stateHandleType(ctx, s)};`);
    });
  });
}

/** `readonly events: { ... };`, or `Record<string, never>` when there are none. */
function writeMemberType<T>(
  w: CodeBlockWriter,
  ctx: ModuleContext,
  key: string,
  items: readonly T[],
  each: (item: T) => void,
): void {
  if (items.length === 0) {
    w.writeLine(`readonly ${key}: ${ctx.global("Record")}<string, never>;`);
    return;
  }
  w.write(`readonly ${key}: `).inlineBlock(() => items.forEach(each));
  w.write(";").newLine();
}

function clientMethod(ctx: ModuleContext, m: MethodModel): string {
  const req = requestOptional(m.params) ? "req ?? {}" : "req";
  if (m.kind === "push") return `${propKey(m.name)}: (req, opts) => c.push(${str(m.name)}, ${req}, opts),`;
  const cast = `${ctx.global("Promise")}<${tsType(ctx, m.returns)}>`;
  return `${propKey(m.name)}: (req, opts) => c.call(${str(m.name)}, ${req}, opts) as ${cast},`;
}

function writeDefinition(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  const types = `${svc.name}Handler, ${svc.name}Client`;
  writeDoc(w, svc);
  w.writeLine(`export const ${symbolName(svc, "main")}: ${ctx.rt("ServiceDefinition")}<${types}> =`);
  w.indent(() => {
    w.writeLine(`${ctx.rt("defineService")}<${types}>({`);
    w.indent(() => {
      w.writeLine(`descriptor: ${svc.name}Descriptor,`);
      w.writeLine("createClient: (c) => ({");
      w.indent(() => {
        for (const m of svc.methods) w.writeLine(clientMethod(ctx, m));
        writeClientStreams(w, ctx, svc);
      });
      w.writeLine("}),");
    });
    w.writeLine("});");
  });
}

function writeClientStreams(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel): void {
  const events = svc.events.map((e) => `${propKey(e.name)}: c.event(${str(e.name)}) as ${eventType(ctx, svc, e)},`);
  writeObjectLines(w, "events", events);
  const states = svc.states.map((s) => `${propKey(s.name)}: c.state(${str(s.name)}) as ${stateHandleType(ctx, s)},`);
  writeObjectLines(w, "states", states);
}

/** `StateHandle<T>`, or `ShardedStateHandle<T>` for a `@shard` state. */
function stateHandleType(ctx: ModuleContext, s: StateModel): string {
  return `${ctx.rt(s.sharded === true ? "ShardedStateHandle" : "StateHandle")}<${tsType(ctx, s.type)}>`;
}

/** `key: { line, line },` or `key: {},`. */
function writeObjectLines(w: CodeBlockWriter, key: string, lines: readonly string[]): void {
  if (lines.length === 0) {
    w.writeLine(`${key}: {},`);
    return;
  }
  w.writeLine(`${key}: {`);
  w.indent(() => {
    for (const line of lines) w.writeLine(line);
  });
  w.writeLine("},");
}

function writeMock(w: CodeBlockWriter, ctx: ModuleContext, svc: ServiceModel, config: string): void {
  const mock = `${svc.name}Mock`;
  const members = [
    ...svc.methods.map((m) => ({ name: m.name, req: requestType(svc, m), res: returnType(ctx, m) })),
    ...svc.subscriptions.map((s) => ({ name: s.handler, req: subscriptionPayload(ctx, s), res: "void" })),
  ].filter((m) => !MOCK_CORE.has(m.name));
  const replaced = members.filter((m) => MOCK_REPLACEABLE.has(m.name)).map((m) => str(m.name));
  // `emit` typed by the service's events: a wrong payload or an undeclared name is a type error.
  const base = `${ctx.rt("ServiceMock")}<${svc.name}Handler, ${svc.name}Client, ${eventsType(ctx, svc)}>`;
  const parent = replaced.length === 0 ? base : `${ctx.global("Omit")}<${base}, ${replaced.join(" | ")}>`;
  w.writeLine(
    `/** The mock of ${svc.name}: one recording, configurable method mock per rpc, push and subscription. */`,
  );
  w.write(`export interface ${mock} extends ${parent}`).block(() => {
    // The context an `implements` function gets: the handler's, so `ctx.config` and `ctx.emit` are
    // typed (asked for only when there are members: it imports CallContext).
    const callCtx = members.length === 0 ? "" : ctxType(ctx, svc, config);
    for (const m of members)
      w.writeLine(
        `readonly ${propKey(m.name, "type")}: ${ctx.rt("MethodMock")}<${m.req}, ${m.res}, ${mock}, ${callCtx}>;`,
      );
  });
  w.writeLine(`/** A mock of ${svc.name} for tests: every method records calls and returns what it is given. */`);
  w.write(`export function mock${svc.name}(): ${mock}`).block(() => {
    const cast = replaced.length === 0 ? "" : " as unknown";
    w.writeLine(`return ${ctx.rt("createMock")}(${symbolName(svc, "main")})${cast} as ${mock};`);
  });
}
