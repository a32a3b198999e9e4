/**
 * Generated code for the data declarations: structs, enums, unions and errors. Each writes its
 * TypeScript type, its schema and (structs, unions) its codec; errors also a class and an
 * error descriptor. See docs/generated-code.md for the shapes.
 */
import type CodeBlockWriter from "code-block-writer";
import type { EnumModel, ErrorModel, FieldModel, StructModel, UnionModel } from "../compiler/model.js";
import type { ModuleContext } from "./module-context.js";
import { symbolName } from "./module-context.js";
import { propKey, str } from "./names.js";
import { fieldSchema, propertySignature, schemaExpr, tsType } from "./types.js";
import { writeDoc } from "./writer.js";

/** Writes the members of an interface, one per field, each with its TSDoc. */
export function writeFields(w: CodeBlockWriter, ctx: ModuleContext, fields: readonly FieldModel[], readonly = false): void {
  for (const f of fields) {
    writeDoc(w, f);
    w.writeLine(`${readonly ? "readonly " : ""}${propertySignature(ctx, f)};`);
  }
}

/** Writes `export const <name>: StructSchema = { kind: "struct", name, fields: [...] };`. */
export function writeStructSchema(w: CodeBlockWriter, ctx: ModuleContext, constName: string, fullName: string, fields: readonly FieldModel[]): void {
  w.write(`export const ${constName}: ${ctx.rt("StructSchema")} = `).inlineBlock(() => {
    w.writeLine(`kind: "struct",`);
    w.writeLine(`name: ${str(fullName)},`);
    writeFieldList(w, ctx, fields);
  });
  w.write(";").newLine();
}

/** Writes `fields: [ ... ],` one field schema per line (or `fields: [],`). */
export function writeFieldList(w: CodeBlockWriter, ctx: ModuleContext, fields: readonly FieldModel[]): void {
  if (fields.length === 0) {
    w.writeLine("fields: [],");
    return;
  }
  w.writeLine("fields: [");
  w.indent(() => {
    for (const f of fields) w.writeLine(`${fieldSchema(ctx, f)},`);
  });
  w.writeLine("],");
}

function writeCodec(w: CodeBlockWriter, ctx: ModuleContext, decl: StructModel | UnionModel): void {
  const type = symbolName(decl, "main");
  const codec = ctx.rt("codec");
  w.writeLine(`export const ${decl.name}Codec: ${ctx.rt("Codec")}<${type}> = ${codec}<${type}>(${decl.name}Schema);`);
}

/** A struct: an interface, its schema and its codec. */
export function emitStruct(w: CodeBlockWriter, ctx: ModuleContext, decl: StructModel): void {
  writeDoc(w, decl);
  w.write(`export interface ${symbolName(decl, "main")}`).block(() => writeFields(w, ctx, decl.fields));
  writeStructSchema(w, ctx, `${decl.name}Schema`, decl.fullName, decl.fields);
  writeCodec(w, ctx, decl);
}

/** An enum: a const object of member names, the union type of its values, its schema and numeric values. */
export function emitEnum(w: CodeBlockWriter, ctx: ModuleContext, decl: EnumModel): void {
  const name = symbolName(decl, "main");
  writeDoc(w, decl);
  if (decl.members.length === 0) {
    w.writeLine(`export const ${name} = {} as const;`);
  } else {
    w.write(`export const ${name} = `).inlineBlock(() => {
      for (const m of decl.members) {
        writeDoc(w, m);
        w.writeLine(`${propKey(m.name)}: ${str(m.name)},`);
      }
    });
    w.write(" as const;").newLine();
  }
  writeDoc(w, decl);
  w.writeLine(`export type ${name} = (typeof ${name})[keyof typeof ${name}];`);
  const values = decl.members.map((m) => str(m.name)).join(", ");
  w.writeLine(
    `export const ${decl.name}Schema: ${ctx.rt("EnumSchema")} = { kind: "enum", name: ${str(decl.fullName)}, values: [${values}] };`,
  );
  w.writeLine("/** The IDL's numeric values, for interop (the wire form is the member name). */");
  const numbers = decl.members.map((m) => `${propKey(m.name)}: ${m.value}`).join(", ");
  w.writeLine(
    `export const ${decl.name}Values: ${ctx.global("Readonly")}<${ctx.global("Record")}<${name}, number>> = {${numbers === "" ? "" : ` ${numbers} `}};`,
  );
}

/** A tagged union: a discriminated union type on `kind`, its schema and its codec. */
export function emitUnion(w: CodeBlockWriter, ctx: ModuleContext, decl: UnionModel): void {
  writeDoc(w, decl);
  if (decl.members.length === 0) {
    w.writeLine(`export type ${symbolName(decl, "main")} = never;`);
  } else {
    w.writeLine(`export type ${symbolName(decl, "main")} =`);
    w.indent(() => {
      decl.members.forEach((m, i) => {
        writeDoc(w, m);
        const end = i === decl.members.length - 1 ? ";" : "";
        w.writeLine(`| { kind: ${str(m.name)}; value: ${tsType(ctx, m.type)} }${end}`);
      });
    });
  }
  w.write(`export const ${decl.name}Schema: ${ctx.rt("UnionSchema")} = `).inlineBlock(() => {
    w.writeLine(`kind: "union",`);
    w.writeLine(`name: ${str(decl.fullName)},`);
    w.writeLine("members: [");
    w.indent(() => {
      for (const m of decl.members) w.writeLine(`{ name: ${str(m.name)}, schema: ${schemaExpr(ctx, m.type)} },`);
    });
    w.writeLine("],");
  });
  w.write(";").newLine();
  writeCodec(w, ctx, decl);
}

/**
 * Error fields that cannot be own properties of the class, because `FanError`/`Error` already
 * define them with other types, or because assigning them would change the object itself.
 * They stay readable through `details`.
 */
const ERROR_MEMBER_NAMES: ReadonlySet<string> = new Set(["name", "message", "stack", "cause", "code", "details", "constructor", "__proto__"]);

/** An error: a fields interface, its schema, a `FanError` subclass and an error descriptor. */
export function emitError(w: CodeBlockWriter, ctx: ModuleContext, decl: ErrorModel): void {
  const fieldsType = `${decl.name}Fields`;
  w.writeLine(`/** The fields of ${decl.name}. */`);
  w.write(`export interface ${fieldsType}`).block(() => writeFields(w, ctx, decl.fields));
  writeStructSchema(w, ctx, `${decl.name}Schema`, decl.fullName, decl.fields);
  writeErrorClass(w, ctx, decl);
  writeErrorDescriptor(w, ctx, decl);
}

function writeErrorClass(w: CodeBlockWriter, ctx: ModuleContext, decl: ErrorModel): void {
  const cls = symbolName(decl, "main");
  const fieldsType = `${decl.name}Fields`;
  const own = decl.fields.filter((f) => !ERROR_MEMBER_NAMES.has(f.name));
  const skipped = decl.fields.filter((f) => ERROR_MEMBER_NAMES.has(f.name)).map((f) => str(f.name));
  const implemented = skipped.length === 0 ? fieldsType : `${ctx.global("Omit")}<${fieldsType}, ${skipped.join(" | ")}>`;
  const allOptional = decl.fields.every((f) => f.optional);
  writeDoc(w, decl);
  w.write(`export class ${cls} extends ${ctx.rt("FanError")} implements ${implemented}`).block(() => {
    w.writeLine(`static readonly errorName = ${str(decl.fullName)};`);
    writeFields(w, ctx, own, true);
    w.write(`constructor(fields: ${fieldsType}${allOptional ? " = {}" : ""}, message?: string)`).block(() => {
      w.writeLine(`super(${str(decl.code)}, message ?? ${str(decl.name)}, { details: fields });`);
      w.writeLine(`this.name = ${str(decl.name)};`);
      for (const f of own) w.writeLine(`this${memberAccess(f.name)} = fields${memberAccess(f.name)};`);
    });
  });
}

function memberAccess(name: string): string {
  const key = propKey(name, "type");
  return key.startsWith('"') ? `[${key}]` : `.${key}`;
}

function writeErrorDescriptor(w: CodeBlockWriter, ctx: ModuleContext, decl: ErrorModel): void {
  const cls = symbolName(decl, "main");
  const [f, m] = cls === "fields" || cls === "message" ? ["$fields", "$message"] : ["fields", "message"];
  w.writeLine(`/** How the runtime rebuilds ${decl.name} on the client side. */`);
  w.write(`export const ${decl.name}Error: ${ctx.rt("ErrorDescriptor")} = `).inlineBlock(() => {
    w.writeLine(`name: ${str(decl.fullName)},`);
    w.writeLine(`code: ${str(decl.code)},`);
    w.writeLine(`fields: ${decl.name}Schema,`);
    w.writeLine(`create: (${f}, ${m}) => new ${cls}(${f} as unknown as ${decl.name}Fields, ${m}),`);
  });
  w.write(";").newLine();
}
