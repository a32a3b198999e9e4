/**
 * What a name at the cursor stands for, for definition, references and rename: a declaration
 * (by full name) or an event of a service. Both are found by every name that refers to them.
 */
import type * as A from "../compiler/ast.js";
import type { Analysis, Hit, Ref } from "./analysis.js";

/** A renamable, navigable symbol. */
export type Target =
  | { readonly kind: "decl"; readonly fullName: string }
  | { readonly kind: "event"; readonly service: string; readonly name: string }
  | { readonly kind: "package"; readonly name: string };

/** The symbol a hit stands for. */
export function targetOf(hit: Hit): Target | undefined {
  switch (hit.kind) {
    case "decl":
      return { kind: "decl", fullName: hit.entry.fullName };
    case "ref":
      if (hit.ref.kind === "import") return { kind: "package", name: hit.ref.target };
      if (hit.ref.kind === "event") return { kind: "event", service: hit.ref.target, name: hit.ref.member ?? "" };
      return { kind: "decl", fullName: hit.ref.target };
    case "member":
      return hit.member.kind === "Event" ? { kind: "event", service: hit.service.fullName, name: hit.member.name.name } : undefined;
    case "package":
      return { kind: "package", name: hit.name };
    default:
      return undefined;
  }
}

/** Where a symbol is declared: the name's span (a package: its first file's `package` line). */
export function declarationOf(a: Analysis, t: Target): A.Span | undefined {
  switch (t.kind) {
    case "decl":
      return a.decls.get(t.fullName)?.decl.name.span;
    case "event": {
      const svc = a.decls.get(t.service)?.decl;
      if (svc?.kind !== "Service") return undefined;
      const ev = svc.members.find((m) => m.kind === "Event" && m.name.name === t.name);
      return ev !== undefined && "name" in ev ? ev.name.span : undefined;
    }
    case "package":
      return a.packages.get(t.name)?.files[0]?.package?.name.span;
  }
}

/** Every reference to a symbol in the program. */
export function referencesTo(a: Analysis, t: Target): Ref[] {
  return a.allRefs().filter((r) => {
    if (t.kind === "decl") return r.target === t.fullName && r.kind !== "event" && r.kind !== "import";
    if (t.kind === "event") return r.kind === "event" && r.target === t.service && r.member === t.name;
    return r.kind === "import" && r.target === t.name;
  });
}
