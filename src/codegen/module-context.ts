/**
 * The state of one generated module while it is written: the top-level names it declares,
 * the runtime symbols and other packages it imports (collected while the body is written and
 * emitted once, sorted, at the top), and how it spells a reference to any declaration.
 */
import type { DeclModel, EventModel, PackageModel } from "../compiler/model.js";
import { CodegenCode, CodegenError } from "./errors.js";
import { declIdent, importSpecifier, str } from "./names.js";
import type { ProgramIndex } from "./program-index.js";

/** The runtime symbols generated code may use; the same list as `src/runtime/generated-api.ts`. */
export type RuntimeSymbol =
  | "codec"
  | "Codec"
  | "FanError"
  | "defineService"
  | "CallOptions"
  | "ClientCaller"
  | "ErrorDescriptor"
  | "EventStream"
  | "ServiceDefinition"
  | "ServiceDescriptor"
  | "Sharded"
  | "ShardedStateHandle"
  | "StateHandle"
  | "CallContext"
  | "ServiceHooks"
  | "ShardHooks"
  | "EnumSchema"
  | "Schema"
  | "StructSchema"
  | "UnionSchema"
  | "createMock"
  | "MethodMock"
  | "ServiceMock";

const RUNTIME_VALUES: ReadonlySet<RuntimeSymbol> = new Set(["codec", "FanError", "defineService", "createMock"]);

/** Globals the generated code names; reached through `globalThis` when a declaration shadows one. */
export type GlobalSymbol = "Date" | "Uint8Array" | "Promise" | "Record" | "Partial" | "Readonly" | "Omit";
const GLOBALS: readonly GlobalSymbol[] = ["Date", "Uint8Array", "Promise", "Record", "Partial", "Readonly", "Omit"];

/** Which generated symbol of a declaration: its main type/class/definition or a derived one. */
export type SymbolKind =
  | "main"
  | "Schema"
  | "Codec"
  | "Values"
  | "Fields"
  | "Error"
  | "Descriptor"
  | "Requests"
  | "Events";

/** Longer runtime imports are written one name per line. */
const MAX_IMPORT_LINE = 100;

/** The runtime module every generated file imports from. */
export const RUNTIME_MODULE = "fan/runtime";

/** The TypeScript name of one generated symbol of a declaration (without module qualifier). */
export function symbolName(decl: Pick<DeclModel, "name">, kind: SymbolKind): string {
  return kind === "main" ? declIdent(decl.name) : `${decl.name}${kind}`;
}

/** Every top-level name a declaration's generated code declares. */
export function declaredNames(decl: DeclModel): string[] {
  const main = declIdent(decl.name);
  const n = decl.name;
  switch (decl.kind) {
    case "struct":
    case "union":
      return [main, `${n}Schema`, `${n}Codec`];
    case "enum":
      return [main, `${n}Schema`, `${n}Values`];
    case "error":
      return [main, `${n}Fields`, `${n}Schema`, `${n}Error`];
    case "service":
      return [
        main,
        ...(decl.config.length > 0 ? [`${n}Config`] : []),
        ...(decl.methods.length > 0 ? [`${n}Requests`] : []),
        ...(decl.events.length > 0 ? [`${n}Events`] : []),
        `${n}Handler`,
        `${n}Client`,
        `${n}Descriptor`,
        `${n}Mock`,
        `mock${n}`,
      ];
  }
}

/** The part of a declaration another module's code depends on when it only refers to it. */
export function declFingerprint(decl: DeclModel): string {
  return `${decl.kind} ${decl.name} ${decl.package}`;
}

/** Names, imports and references of one module being generated. */
export class ModuleContext {
  /** Output path, relative to the output root. */
  readonly path: string;
  readonly pkg: PackageModel;
  readonly index: ProgramIndex;
  private readonly locals = new Map<string, string>();
  private readonly runtime = new Set<RuntimeSymbol>();
  private readonly packages = new Set<string>();
  /**
   * What this module read from other packages, each with a fingerprint of the part it used:
   * the generate cache reuses the module only while all of them are unchanged.
   */
  readonly deps = new Map<string, string>();

  constructor(index: ProgramIndex, pkg: PackageModel) {
    this.index = index;
    this.pkg = pkg;
    this.path = index.pathOf(pkg.name);
    for (const decl of pkg.decls) this.declare(decl);
  }

  /** The local name of a runtime symbol, recording the import. */
  rt(name: RuntimeSymbol): string {
    this.runtime.add(name);
    return this.runtimeLocal(name);
  }

  /** A global type or value: `Date`, or `globalThis.Date` when a declaration shadows it. */
  global(name: GlobalSymbol): string {
    return this.locals.has(name) ? `globalThis.${name}` : name;
  }

  /** How this module writes symbol `kind` of declaration `fullName`, importing its package if needed. */
  ref(fullName: string, kind: SymbolKind = "main"): string {
    const decl = this.decl(fullName);
    const name = symbolName(decl, kind);
    if (decl.package === this.pkg.name) return name;
    this.packages.add(decl.package);
    return `${this.namespaceLocal(decl.package)}.${name}`;
  }

  /** A declaration anywhere in the program, recorded as a dependency when it lives in another package. */
  decl(fullName: string): DeclModel {
    const decl = this.index.decl(fullName);
    if (decl.package !== this.pkg.name) this.deps.set(`decl ${fullName}`, declFingerprint(decl));
    return decl;
  }

  /** An event of a service anywhere in the program, recorded as a dependency when it lives in another package. */
  event(service: string, name: string): EventModel {
    const event = this.index.event(service, name);
    if (this.index.decl(service).package !== this.pkg.name)
      this.deps.set(`event ${service}.${name}`, JSON.stringify(event.params));
    return event;
  }

  /** The import lines, sorted: the runtime first, then other packages by name. */
  importLines(): string[] {
    const lines: string[] = [];
    if (this.runtime.size > 0) lines.push(this.runtimeImport());
    for (const pkg of [...this.packages].sort()) {
      const spec = importSpecifier(this.path, this.index.pathOf(pkg));
      lines.push(`import * as ${this.namespaceLocal(pkg)} from ${str(spec)};`);
    }
    return lines;
  }

  private runtimeImport(): string {
    const names = [...this.runtime].sort();
    const specs = names.map((n) => {
      const local = this.runtimeLocal(n);
      const spec = local === n ? n : `${n} as ${local}`;
      return RUNTIME_VALUES.has(n) ? spec : `type ${spec}`;
    });
    const line = `import { ${specs.join(", ")} } from ${str(RUNTIME_MODULE)};`;
    if (line.length <= MAX_IMPORT_LINE) return line;
    return `import {\n${specs.map((s) => `  ${s},\n`).join("")}} from ${str(RUNTIME_MODULE)};`;
  }

  private runtimeLocal(name: RuntimeSymbol): string {
    return this.locals.has(name) ? `$${name}` : name;
  }

  private namespaceLocal(pkg: string): string {
    const alias = this.index.aliasOf(pkg);
    return this.locals.has(alias) || (GLOBALS as readonly string[]).includes(alias) ? `$${alias}` : alias;
  }

  private declare(decl: DeclModel): void {
    for (const name of declaredNames(decl)) {
      const owner = this.locals.get(name);
      if (owner !== undefined) {
        throw new CodegenError(
          CodegenCode.NameCollision,
          `${decl.kind} "${decl.fullName}" and ${owner} both generate "${name}" in ${this.path}; rename one of them`,
        );
      }
      this.locals.set(name, `${decl.kind} "${decl.fullName}"`);
    }
  }
}
