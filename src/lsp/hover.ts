/**
 * Hover: the declaration with its doc comment; for an rpc or push its effective timeout, ttl,
 * route, shard key, retries and auth (defaults included, from the checked model).
 */
import type { Hover, MarkupContent } from "vscode-languageserver";
import type * as A from "../compiler/ast.js";
import { typeText } from "../compiler/check-types.js";
import type { DeclModel, FieldModel, MethodModel, ServiceModel } from "../compiler/model.js";
import type { DeclEntry } from "../compiler/scope.js";
import type { Hit } from "./analysis.js";
import { DECORATOR_INFO } from "./decorator-info.js";
import type { Snapshot } from "./project.js";

/** The hover text for what is at an offset, or undefined. */
export function hoverAt(snap: Snapshot, path: string, offset: number): Hover | undefined {
  const hit = snap.analysis().at(path, offset);
  if (hit === undefined) return undefined;
  const value = hoverText(snap, hit);
  if (value === undefined) return undefined;
  const contents: MarkupContent = { kind: "markdown", value };
  return { contents };
}

function hoverText(snap: Snapshot, hit: Hit): string | undefined {
  const a = snap.analysis();
  switch (hit.kind) {
    case "decl":
      return declText(snap, hit.entry);
    case "ref": {
      const r = hit.ref;
      if (r.kind === "import") return packageText(snap, r.target);
      const entry = a.decls.get(r.target);
      if (entry === undefined) return undefined;
      if (r.kind === "event" && r.member !== undefined && entry.decl.kind === "Service") {
        const ev = entry.decl.members.find((m) => m.kind === "Event" && m.name.name === r.member);
        return ev === undefined ? undefined : memberText(snap, entry, ev as A.EventMember);
      }
      return declText(snap, entry);
    }
    case "member":
      return memberText(snap, hit.service, hit.member);
    case "field": {
      const f = hit.field;
      const src =
        f.kind === "EnumMember"
          ? f.name.name
          : `${f.name.name}${"optional" in f && f.optional ? "?" : ""}: ${typeSource(f.type)}`;
      return block(`${src}`, f.doc, `in \`${hit.owner}\``);
    }
    case "decorator": {
      const info = DECORATOR_INFO[hit.decorator.name.name];
      return info === undefined ? undefined : `**@${hit.decorator.name.name}**: ${info.doc}`;
    }
    case "package":
      return packageText(snap, hit.name);
  }
}

function typeSource(t: A.TypeRef): string {
  const name = t.name.parts.map((p) => p.name).join(".");
  return t.args.length === 0 ? name : `${name}<${t.args.map(typeSource).join(", ")}>`;
}

function block(code: string, doc: string | undefined, ...notes: string[]): string {
  const parts = [`\`\`\`fan\n${code}\n\`\`\``];
  if (doc !== undefined) parts.push(doc);
  const n = notes.filter((x) => x !== "");
  if (n.length > 0) parts.push(n.join("  \n"));
  return parts.join("\n\n");
}

/** The checked model of a declaration, when it checked. */
export function modelOf(snap: Snapshot, fullName: string): DeclModel | undefined {
  for (const p of snap.model?.packages ?? []) {
    if (!fullName.startsWith(`${p.name}.`)) continue;
    const d = p.decls.find((x) => x.fullName === fullName);
    if (d !== undefined) return d;
  }
  return undefined;
}

function declText(snap: Snapshot, e: DeclEntry): string {
  const d = e.decl;
  const kind = d.kind.toLowerCase();
  const model = modelOf(snap, e.fullName);
  const notes: string[] = [];
  if (model?.deprecated !== undefined) notes.push(`*deprecated*: ${model.deprecated}`);
  if (model?.kind === "service") notes.push(serviceNotes(model));
  if (model?.kind === "error") notes.push(`status code \`${model.code}\``);
  const summary = d.kind === "Struct" || d.kind === "Error" ? fieldsLine(d.fields) : "";
  return block(`${kind} ${e.fullName}${summary}`, d.doc, ...notes, `in \`${e.file.path}\``);
}

function fieldsLine(fs: readonly A.Field[]): string {
  if (fs.length === 0) return " {}";
  return ` {\n${fs.map((f) => `  ${f.name.name}${f.optional ? "?" : ""}: ${typeSource(f.type)}`).join("\n")}\n}`;
}

function serviceNotes(s: ServiceModel): string {
  return [
    `version \`${s.version}\``,
    `transports ${s.transports.join(", ")}`,
    `${s.shards} shards`,
    ...(s.unique ? ["unique"] : []),
  ].join(" · ");
}

function packageText(snap: Snapshot, name: string): string {
  const pkg = snap.analysis().packages.get(name);
  const doc = pkg?.files.find((f) => f.package?.doc !== undefined)?.package?.doc;
  const files = pkg?.files.map((f) => `\`${f.path}\``).join(", ") ?? "";
  return block(`package ${name}`, doc, files === "" ? "" : `files: ${files}`);
}

function params(ps: readonly FieldModel[]): string {
  return ps.map((p) => `${p.name}${p.optional ? "?" : ""}: ${typeText(p.type)}`).join(", ");
}

function memberText(snap: Snapshot, svc: DeclEntry, m: A.ServiceMember & { name: A.Ident }): string {
  const model = modelOf(snap, svc.fullName);
  const service = model?.kind === "service" ? model : undefined;
  const where = `in service \`${svc.fullName}\``;
  switch (m.kind) {
    case "Rpc":
    case "Push": {
      const method = service?.methods.find((x) => x.name === m.name.name);
      if (method === undefined) return block(`${m.kind.toLowerCase()} ${m.name.name}(…)`, m.doc, where);
      const ret = method.kind === "rpc" ? `: ${typeText(method.returns)}` : "";
      const throws = method.throws.length > 0 ? ` throws ${method.throws.join(", ")}` : "";
      return block(
        `${method.kind} ${method.name}(${params(method.params)})${ret}${throws}`,
        m.doc,
        methodNotes(m, method),
        where,
      );
    }
    case "Event": {
      const ev = service?.events.find((x) => x.name === m.name.name);
      const notes =
        ev === undefined
          ? ""
          : [
              ev.broadcast ? "broadcast to every instance" : "one instance per subscribing service",
              ...(ev.since ? [`since ${ev.since}`] : []),
            ].join(" · ");
      return block(`event ${m.name.name}(${ev === undefined ? "…" : params(ev.params)})`, m.doc, notes, where);
    }
    case "State": {
      const st = service?.states.find((x) => x.name === m.name.name);
      return block(
        `state ${m.name.name}: ${typeSource(m.type)}`,
        m.doc,
        st === undefined ? "" : `replicated ${st.mode === "full" ? "in full" : "as deltas"}`,
        where,
      );
    }
    default:
      return block(`${m.kind.toLowerCase()} ${m.name.name}`, m.doc, where);
  }
}

/** Effective policy of a method, saying which values are defaults. */
function methodNotes(m: A.RpcMember | A.PushMember, method: MethodModel): string {
  const has = (name: string): boolean => m.decorators.some((d) => d.name.name === name);
  const notes: string[] = [];
  if (method.kind === "rpc" && method.timeoutMs !== undefined)
    notes.push(`timeout ${ms(method.timeoutMs)}${has("timeout") ? "" : " (default)"}`);
  if (method.kind === "push") notes.push(method.ttlMs === undefined ? "ttl: none" : `ttl ${ms(method.ttlMs)}`);
  if (method.route !== undefined) notes.push(`route \`${method.route.verb} ${method.route.path}\``);
  if (method.shard !== undefined) notes.push(`shard key ${method.shard.map((p) => `\`${p.join(".")}\``).join(", ")}`);
  if (method.shardFallback === true) notes.push("fallback to another instance when the shard's owner is unavailable");
  if (method.idempotent) notes.push("idempotent");
  if (method.retry > 0) notes.push(`retry ${method.retry}`);
  if (method.auth !== undefined)
    notes.push(method.auth.length === 0 ? "auth: any credentials" : `auth: ${method.auth.join(" | ")}`);
  if (method.since !== undefined) notes.push(`since ${method.since}`);
  if (method.deprecated !== undefined) notes.push(`*deprecated*: ${method.deprecated}`);
  return notes.join(" · ");
}

function ms(n: number): string {
  if (n % 3_600_000 === 0) return `${n / 3_600_000}h`;
  if (n % 60_000 === 0) return `${n / 60_000}m`;
  if (n % 1000 === 0) return `${n / 1000}s`;
  return `${n}ms`;
}
