/**
 * Lookups over a whole checked program that every module's generator needs: declarations by
 * fully qualified name, each package's output path and its namespace alias, unique across
 * the program (they are also the names `index.ts` re-exports packages under).
 */
import type { DeclModel, EventModel, PackageModel, ProgramModel, ServiceModel } from "../compiler/model.js";
import { CodegenCode, CodegenError } from "./errors.js";
import { modulePath, packageAlias } from "./names.js";

/** The name of the barrel module at the root of the output. */
export const INDEX_PATH = "index.ts";

/** Declarations, services and package paths of one program, by name. */
export class ProgramIndex {
  readonly packages: readonly PackageModel[];
  private readonly decls = new Map<string, DeclModel>();
  private readonly paths = new Map<string, string>();
  private readonly aliases = new Map<string, string>();

  constructor(program: ProgramModel) {
    this.packages = [...program.packages].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const pkg of this.packages) {
      for (const decl of pkg.decls) this.decls.set(decl.fullName, decl);
    }
    this.assignPaths();
    this.assignAliases();
  }

  /** The declaration named `fullName`; a CodegenError when the model does not hold it. */
  decl(fullName: string): DeclModel {
    const decl = this.decls.get(fullName);
    if (decl === undefined) {
      throw new CodegenError(CodegenCode.UnknownReference, `the model refers to "${fullName}", which it does not declare`);
    }
    return decl;
  }

  /** The service named `fullName`. */
  service(fullName: string): ServiceModel {
    const decl = this.decl(fullName);
    if (decl.kind !== "service") {
      throw new CodegenError(CodegenCode.UnknownReference, `"${fullName}" is a ${decl.kind}, not a service`);
    }
    return decl;
  }

  /** The event `name` of service `serviceName`. */
  event(serviceName: string, name: string): EventModel {
    const event = this.service(serviceName).events.find((e) => e.name === name);
    if (event === undefined) {
      throw new CodegenError(CodegenCode.UnknownReference, `service "${serviceName}" has no event "${name}"`);
    }
    return event;
  }

  /** Output path of a package's module, relative to the output root. */
  pathOf(packageName: string): string {
    return this.paths.get(packageName) ?? modulePath(packageName);
  }

  /** The namespace alias of a package (unique in the program). */
  aliasOf(packageName: string): string {
    return this.aliases.get(packageName) ?? packageAlias(packageName);
  }

  private assignPaths(): void {
    const owners = new Map<string, string>([[INDEX_PATH, "the index module"]]);
    for (const pkg of this.packages) {
      const path = modulePath(pkg.name);
      const owner = owners.get(path.toLowerCase());
      if (owner !== undefined) {
        throw new CodegenError(
          CodegenCode.PathCollision,
          `package "${pkg.name}" would be written to ${path}, which is already ${owner}; rename the package`,
        );
      }
      owners.set(path.toLowerCase(), `package "${pkg.name}"`);
      this.paths.set(pkg.name, path);
    }
  }

  private assignAliases(): void {
    const taken = new Set<string>();
    for (const pkg of this.packages) {
      const base = packageAlias(pkg.name);
      let alias = base;
      for (let n = 2; taken.has(alias); n++) alias = `${base}$${n}`;
      taken.add(alias);
      this.aliases.set(pkg.name, alias);
    }
  }
}
