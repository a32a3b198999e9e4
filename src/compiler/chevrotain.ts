/**
 * Chevrotain's values, loaded from the single-file ESM bundle the package ships
 * (`lib/chevrotain.mjs`) instead of its main entry, which imports lodash-es as ~600 separate
 * modules: loading took 615 ms there against 100 ms here, most of a `fanc` run. Types still
 * come from "chevrotain" itself; every runtime use of Chevrotain goes through this file, so
 * there is one copy of its classes.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import type * as Chevrotain from "chevrotain";

const main = createRequire(import.meta.url).resolve("chevrotain"); // <pkg>/lib/src/api.js
const chevrotain = (await import(pathToFileURL(join(dirname(main), "..", "chevrotain.mjs")).href)) as typeof Chevrotain;

export const { CstParser, EOF, Lexer, createToken, tokenMatcher } = chevrotain;
/** The instance types of the classes above, under the same names. */
export type CstParser = Chevrotain.CstParser;
export type Lexer = Chevrotain.Lexer;
