import { expect, it } from "vitest";
import { FanParser } from "../../src/compiler/grammar.js";
import { createLexer } from "../../src/compiler/lexer.js";

// The compiler builds its lexer and parser without Chevrotain's grammar validations (for start-up
// time); this runs them (Chevrotain throws "Parser Definition Errors detected" when one
// fails), so an ambiguous or left-recursive rule still fails the suite.
it("the grammar passes Chevrotain's validations", () => {
  expect(() => new FanParser(true)).not.toThrow();
});

it("the tokens pass Chevrotain's lexer validations", () => {
  expect(createLexer(true).lexerDefinitionErrors).toEqual([]);
});
