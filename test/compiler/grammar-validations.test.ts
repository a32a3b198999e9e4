import { expect, it } from "vitest";
import { FanParser } from "../../src/compiler/grammar.js";

// The compiler builds its parser without Chevrotain's grammar validations (for start-up
// time); this runs them (Chevrotain throws "Parser Definition Errors detected" when one
// fails), so an ambiguous or left-recursive rule still fails the suite.
it("the grammar passes Chevrotain's validations", () => {
  expect(() => new FanParser(true)).not.toThrow();
});
