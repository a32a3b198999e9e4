/**
 * The fan grammar: one Chevrotain CST parser whose rules are class properties. One instance is
 * created and reused for every file. Nothing here leaks Chevrotain types beyond `parser.ts`
 * and `cst-to-ast.ts`.
 */
import type { IParserErrorMessageProvider, IRecognitionException, IToken, TokenType } from "chevrotain";
import { CstParser, EOF, tokenMatcher } from "./chevrotain.js";
import { orList } from "./diagnostics.js";
import {
  allTokens,
  Identifier,
  Kw,
  MemberKeyword,
  Name,
  P,
  StringLiteral,
  DurationLiteral,
  FloatLiteral,
  IntLiteral,
} from "./lexer.js";

/** Human descriptions of what may come next, for the rules where a token list is unhelpful. */
const EXPECTATIONS: Readonly<Record<string, string>> = {
  file: "a declaration (`package`, `import`, `version`, `struct`, `enum`, `union`, `error` or `service`)",
  declaration: "`struct`, `enum`, `union`, `error` or `service`",
  serviceMember: "a service member (`rpc`, `push`, `event`, `state`, `on`, `depends` or `config`)",
  expr: "a value",
  typeRef: "a type",
};

function describe(t: IToken): string {
  if (t.tokenType === EOF) return "end of file";
  const img = t.image.length > 30 ? `${t.image.slice(0, 30)}...` : t.image;
  return `\`${img}\``;
}

function label(t: TokenType): string {
  return t.LABEL ?? t.name;
}

function firstTokens(paths: TokenType[][][]): string {
  const seen = new Set<string>();
  for (const alt of paths) for (const path of alt) if (path[0] !== undefined) seen.add(label(path[0]));
  const list = [...seen];
  return list.length === 0 ? "something else" : orList(list);
}

/** Error messages in the compiler's voice: "expected X but found Y". */
const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected, actual }) =>
    expected === EOF
      ? `unexpected ${describe(actual)}; expected ${EXPECTATIONS.file}`
      : `expected ${label(expected)} but found ${describe(actual)}`,
  buildNotAllInputParsedMessage: ({ firstRedundant }) =>
    `unexpected ${describe(firstRedundant)}; expected ${EXPECTATIONS.file}`,
  buildNoViableAltMessage: ({ expectedPathsPerAlt, actual, ruleName }) =>
    `expected ${EXPECTATIONS[ruleName] ?? firstTokens(expectedPathsPerAlt)} but found ${describe(actual[0]!)}`,
  buildEarlyExitMessage: ({ expectedIterationPaths, actual, ruleName }) =>
    `expected ${EXPECTATIONS[ruleName] ?? firstTokens([expectedIterationPaths])} but found ${describe(actual[0]!)}`,
};

function isName(t: IToken): boolean {
  return tokenMatcher(t, Name);
}

/** Thrown from inside a parse that reached its error limit; Chevrotain rethrows anything that is not a recognition error. */
export class TooManyErrors extends Error {}

type SaveError = (this: CstParser, e: IRecognitionException) => IRecognitionException;
/** Chevrotain's own (undeclared) error recorder, which `FanParser.SAVE_ERROR` wraps. */
const baseSaveError = (CstParser.prototype as unknown as { SAVE_ERROR: SaveError }).SAVE_ERROR;

/** The grammar. Rule order follows the IDL reference, file level first. */
export class FanParser extends CstParser {
  /** The text being parsed (read by gates that look at line breaks). */
  text = "";
  /** Errors recorded in the current parse, and how many may be recorded before it stops. */
  errorCount = 0;
  errorLimit = Number.POSITIVE_INFINITY;

  /**
   * `validate` runs Chevrotain's grammar checks (ambiguities, left recursion): a test does,
   * every `fanc` run skips them, since they cost ~300 ms of a ~150 ms compile.
   */
  constructor(validate = false) {
    super(allTokens as TokenType[], {
      recoveryEnabled: true,
      nodeLocationTracking: "onlyOffset",
      maxLookahead: 3,
      skipValidations: !validate,
      errorMessageProvider: messages,
    });
    this.performSelfAnalysis();
  }

  // Callbacks and alternatives are created once, not on every rule call: the CLI runs under
  // tsx, whose keepNames wraps every closure creation, which otherwise costs more than parsing.
  private readonly decoratorOne = (): void => {
    this.SUBRULE(this.decorator);
  };
  private readonly separatorAlts = [{ ALT: () => this.CONSUME(P.Comma) }, { ALT: () => this.CONSUME(P.Semi) }];
  private readonly fileItemAlts = [
    { ALT: () => this.SUBRULE(this.packageDecl) },
    { ALT: () => this.SUBRULE(this.importDecl) },
    { ALT: () => this.SUBRULE(this.versionDecl) },
    { ALT: () => this.SUBRULE(this.declaration) },
    { ALT: () => this.SUBRULE(this.separator) },
  ];
  private readonly fileItem = (): void => {
    this.OR(this.fileItemAlts);
  };
  private readonly declAlts = [
    { ALT: () => this.SUBRULE(this.structDecl) },
    { ALT: () => this.SUBRULE(this.enumDecl) },
    { ALT: () => this.SUBRULE(this.unionDecl) },
    { ALT: () => this.SUBRULE(this.errorDecl) },
    { ALT: () => this.SUBRULE(this.serviceDecl) },
  ];
  private readonly fieldAlts = [{ ALT: () => this.SUBRULE(this.field) }, { ALT: () => this.SUBRULE(this.separator) }];
  private readonly fieldOrSeparator = (): void => {
    this.OR(this.fieldAlts);
  };
  // A keyword followed by a name (`struct B`, `rpc get`) cannot start a field, so a body whose
  // `}` or `)` is missing ends there and the next declaration or member is parsed as such,
  // instead of being read as a broken field (and reported again as an unknown type).
  private readonly fields = { GATE: () => !this.nextStartsItem(false), DEF: this.fieldOrSeparator };
  private readonly enumMemberAlts = [
    { ALT: () => this.SUBRULE(this.enumMember) },
    { ALT: () => this.SUBRULE(this.separator) },
  ];
  private readonly enumItem = (): void => {
    this.OR(this.enumMemberAlts);
  };
  // Enum members are bare names (`{ on off }`), so only `keyword Name {`, `(` or `@` ends one early.
  private readonly enumItems = { GATE: () => !this.nextStartsItem(true), DEF: this.enumItem };
  private readonly unionMemberAlts = [
    { ALT: () => this.SUBRULE(this.unionMember) },
    { ALT: () => this.SUBRULE(this.separator) },
  ];
  private readonly unionItem = (): void => {
    this.OR(this.unionMemberAlts);
  };
  private readonly unionItems = { GATE: () => !this.nextStartsItem(false), DEF: this.unionItem };
  private readonly serviceItemAlts = [
    { ALT: () => this.SUBRULE(this.serviceMember) },
    { ALT: () => this.SUBRULE(this.separator) },
  ];
  private readonly serviceItem = (): void => {
    this.OR(this.serviceItemAlts);
  };
  private readonly memberAlts = [
    { ALT: () => this.SUBRULE(this.dependsMember) },
    { ALT: () => this.SUBRULE(this.configMember) },
    { ALT: () => this.SUBRULE(this.rpcMember) },
    { ALT: () => this.SUBRULE(this.pushMember) },
    { ALT: () => this.SUBRULE(this.eventMember) },
    { ALT: () => this.SUBRULE(this.stateMember) },
    { ALT: () => this.SUBRULE(this.onMember) },
  ];
  private readonly exprAlts = [
    { ALT: () => this.CONSUME(StringLiteral, { LABEL: "string" }) },
    { ALT: () => this.CONSUME(DurationLiteral, { LABEL: "duration" }) },
    { ALT: () => this.CONSUME(FloatLiteral, { LABEL: "float" }) },
    { ALT: () => this.CONSUME(IntLiteral, { LABEL: "int" }) },
    { ALT: () => this.SUBRULE(this.listLit) },
    { ALT: () => this.SUBRULE(this.qualifiedName) },
  ];
  private readonly importAlias = (): void => {
    this.CONSUME(Kw.as);
    this.CONSUME(Name, { LABEL: "alias" });
  };
  // `soft` is contextual: in `depends soft "^1"` it is the service's name. Chevrotain's
  // lookahead sees `soft` and a name as different tokens, so the gate looks one further.
  private readonly softOption = { GATE: () => isName(this.LA(2)), DEF: () => this.CONSUME(Kw.soft, { LABEL: "soft" }) };
  private readonly returnType = (): void => {
    this.CONSUME(P.Colon);
    this.SUBRULE(this.typeRef);
  };
  private readonly throwsClause = (): void => {
    this.CONSUME(Kw.throws);
    this.SUBRULE(this.qualifiedName);
    // A `,` may also separate this member from the next one: `throws A, rpc b()`.
    this.MANY(this.moreThrows);
  };
  private readonly moreThrows = {
    GATE: () => this.throwsContinues(),
    DEF: () => {
      this.CONSUME(P.Comma);
      this.SUBRULE2(this.qualifiedName);
    },
  };
  private readonly stateDecorators = { GATE: () => this.stateDecoratorFollows(), DEF: this.decoratorOne };
  // Decorators followed by a declaration or member (`@unique service S {` after a field whose
  // body lacks its `}`) belong to that, not to the field or member before them.
  private readonly memberDecorators = { GATE: () => !this.nextStartsItem(false), DEF: this.decoratorOne };
  private readonly enumMemberDecorators = { GATE: () => !this.nextStartsItem(true), DEF: this.decoratorOne };
  private readonly optionalMark = (): void => {
    this.CONSUME(P.Question, { LABEL: "optional" });
  };
  private readonly defaultValue = (): void => {
    this.CONSUME(P.Equals);
    this.SUBRULE(this.expr);
  };
  private readonly typeArgs = (): void => {
    this.CONSUME(P.LAngle);
    this.SUBRULE(this.typeRef);
    this.MANY(this.moreTypeArgs);
    this.CONSUME(P.RAngle);
  };
  private readonly moreTypeArgs = (): void => {
    this.CONSUME(P.Comma);
    this.SUBRULE2(this.typeRef);
  };
  private readonly moreParts = (): void => {
    this.CONSUME(P.Dot);
    this.CONSUME2(Name, { LABEL: "part" });
  };
  private readonly decoratorArgs = (): void => {
    this.CONSUME(P.LParen, { LABEL: "open" });
    this.OPTION2(this.argList);
    this.CONSUME(P.RParen);
  };
  private readonly argList = (): void => {
    this.SUBRULE(this.expr);
    this.MANY(this.moreArgs);
  };
  private readonly moreArgs = (): void => {
    this.CONSUME(P.Comma);
    this.SUBRULE2(this.expr);
  };
  private readonly listItems = (): void => {
    this.SUBRULE(this.expr);
    this.MANY(this.moreArgs);
    this.OPTION2(this.trailingComma);
  };
  private readonly trailingComma = (): void => {
    this.CONSUME2(P.Comma);
  };
  private readonly enumValue = (): void => {
    this.CONSUME(P.Equals);
    this.CONSUME(IntLiteral, { LABEL: "value" });
  };

  file = this.RULE("file", () => {
    this.MANY(this.fileItem);
  });

  separator = this.RULE("separator", () => {
    this.OR(this.separatorAlts);
  });

  packageDecl = this.RULE("packageDecl", () => {
    this.CONSUME(Kw.package);
    this.SUBRULE(this.qualifiedName);
  });

  importDecl = this.RULE("importDecl", () => {
    this.CONSUME(Kw.import);
    this.SUBRULE(this.qualifiedName);
    this.OPTION(this.importAlias);
  });

  versionDecl = this.RULE("versionDecl", () => {
    this.CONSUME(Kw.version);
    this.CONSUME(StringLiteral, { LABEL: "value" });
  });

  declaration = this.RULE("declaration", () => {
    this.MANY(this.decoratorOne);
    this.OR(this.declAlts);
  });

  /** `Name @decorators* {` shared by every declaration after its keyword. */
  private declHead(): void {
    this.CONSUME(Name, { LABEL: "name" });
    // MANY2: the calling rule uses MANY for its body, and indices must be unique per rule.
    this.MANY2(this.decoratorOne);
    this.CONSUME(P.LCurly);
  }

  structDecl = this.RULE("structDecl", () => {
    this.CONSUME(Kw.struct);
    this.declHead();
    this.MANY(this.fields);
    this.CONSUME(P.RCurly);
  });

  errorDecl = this.RULE("errorDecl", () => {
    this.CONSUME(Kw.error);
    this.declHead();
    this.MANY(this.fields);
    this.CONSUME(P.RCurly);
  });

  enumDecl = this.RULE("enumDecl", () => {
    this.CONSUME(Kw.enum);
    this.declHead();
    this.MANY(this.enumItems);
    this.CONSUME(P.RCurly);
  });

  enumMember = this.RULE("enumMember", () => {
    this.CONSUME(Name, { LABEL: "name" });
    this.OPTION(this.enumValue);
    this.MANY(this.enumMemberDecorators);
  });

  unionDecl = this.RULE("unionDecl", () => {
    this.CONSUME(Kw.union);
    this.declHead();
    this.MANY(this.unionItems);
    this.CONSUME(P.RCurly);
  });

  unionMember = this.RULE("unionMember", () => {
    this.CONSUME(Name, { LABEL: "name" });
    this.CONSUME(P.Colon);
    this.SUBRULE(this.typeRef);
    this.MANY(this.memberDecorators);
  });

  serviceDecl = this.RULE("serviceDecl", () => {
    this.CONSUME(Kw.service);
    this.declHead();
    this.MANY(this.serviceItem);
    this.CONSUME(P.RCurly);
  });

  serviceMember = this.RULE("serviceMember", () => {
    this.MANY(this.decoratorOne);
    this.OR(this.memberAlts);
  });

  dependsMember = this.RULE("dependsMember", () => {
    this.CONSUME(Kw.depends);
    this.OPTION(this.softOption);
    this.SUBRULE(this.qualifiedName);
    this.CONSUME(StringLiteral, { LABEL: "range" });
  });

  configMember = this.RULE("configMember", () => {
    this.CONSUME(Kw.config);
    this.CONSUME(P.LCurly);
    this.MANY(this.fields);
    this.CONSUME(P.RCurly);
  });

  rpcMember = this.RULE("rpcMember", () => {
    this.CONSUME(Kw.rpc);
    this.CONSUME(Name, { LABEL: "name" });
    this.SUBRULE(this.params);
    this.OPTION(this.returnType);
    this.OPTION2(this.throwsClause);
  });

  pushMember = this.RULE("pushMember", () => {
    this.CONSUME(Kw.push);
    this.CONSUME(Name, { LABEL: "name" });
    this.SUBRULE(this.params);
  });

  eventMember = this.RULE("eventMember", () => {
    this.CONSUME(Kw.event);
    this.CONSUME(Name, { LABEL: "name" });
    this.SUBRULE(this.params);
  });

  stateMember = this.RULE("stateMember", () => {
    this.CONSUME(Kw.state);
    this.CONSUME(Name, { LABEL: "name" });
    this.CONSUME(P.Colon);
    this.SUBRULE(this.typeRef);
    this.MANY(this.stateDecorators);
  });

  onMember = this.RULE("onMember", () => {
    this.CONSUME(Kw.on);
    this.SUBRULE(this.qualifiedName);
  });

  params = this.RULE("params", () => {
    this.CONSUME(P.LParen);
    this.MANY(this.fields);
    this.CONSUME(P.RParen);
  });

  field = this.RULE("field", () => {
    this.CONSUME(Name, { LABEL: "name" });
    this.OPTION(this.optionalMark);
    this.CONSUME(P.Colon);
    this.SUBRULE(this.typeRef);
    this.OPTION2(this.defaultValue);
    this.MANY(this.memberDecorators);
  });

  typeRef = this.RULE("typeRef", () => {
    this.SUBRULE(this.qualifiedName);
    this.OPTION(this.typeArgs);
  });

  qualifiedName = this.RULE("qualifiedName", () => {
    this.CONSUME(Name, { LABEL: "part" });
    this.MANY(this.moreParts);
  });

  decorator = this.RULE("decorator", () => {
    this.CONSUME(P.At);
    this.CONSUME(Name, { LABEL: "name" });
    this.OPTION(this.decoratorArgs);
  });

  expr = this.RULE("expr", () => {
    this.OR(this.exprAlts);
  });

  listLit = this.RULE("listLit", () => {
    this.CONSUME(P.LSquare);
    this.OPTION(this.listItems);
    this.CONSUME(P.RSquare);
  });

  /**
   * Chevrotain records every error and recovers until the end of input; on garbage each
   * recovery scans far ahead, so a parse stops once it has recorded `errorLimit` errors.
   */
  SAVE_ERROR(e: IRecognitionException): IRecognitionException {
    const saved = baseSaveError.call(this, e);
    if (++this.errorCount > this.errorLimit) throw new TooManyErrors("too many syntax errors");
    return saved;
  }

  /**
   * True when the next tokens, after any decorators, start a declaration or service member (a
   * keyword, then a name: `struct B`, `@unique service S`, `rpc get`), which no field,
   * parameter or union member can. With `strict`, the name must also be followed by `{` or `(`
   * (enum members may be keywords in a row: `{ on off }`).
   */
  private nextStartsItem(strict: boolean): boolean {
    const k = this.afterDecorators(1);
    if (k === undefined) return false;
    const first = this.LA(k);
    if (!isName(first) || tokenMatcher(first, Identifier) || !isName(this.LA(k + 1))) return false;
    if (!strict) return true;
    const third = this.LA(k + 2);
    return tokenMatcher(third, P.LCurly) || tokenMatcher(third, P.LParen);
  }

  /** Lookahead index of the first token after the decorators at `LA(k)`; undefined at end of input. */
  private afterDecorators(k: number): number | undefined {
    while (tokenMatcher(this.LA(k), P.At)) {
      k += 2;
      if (!tokenMatcher(this.LA(k), P.LParen)) continue;
      let depth = 0;
      do {
        const t = this.LA(k++);
        if (t.tokenType === EOF) return undefined;
        if (tokenMatcher(t, P.LParen)) depth++;
        else if (tokenMatcher(t, P.RParen)) depth--;
      } while (depth > 0);
    }
    return this.LA(k).tokenType === EOF ? undefined : k;
  }

  /** After `throws A`, a `,` continues the list unless it is followed by the next member. */
  private throwsContinues(): boolean {
    if (!tokenMatcher(this.LA(1), P.Comma)) return false;
    const next = this.LA(2);
    if (!isName(next)) return false;
    const after = this.LA(3);
    const startsMember = tokenMatcher(next, MemberKeyword) && (isName(after) || tokenMatcher(after, P.LCurly));
    return !startsMember;
  }

  /**
   * `state s: T @delta` — decorators after the type belong to the state when they are on the
   * same line, or when no member follows them; otherwise they start the next member
   * (`@delta` on its own line above `state t: U`).
   */
  private stateDecoratorFollows(): boolean {
    if (!tokenMatcher(this.LA(1), P.At)) return false;
    const prev = this.LA(0);
    const between = this.text.slice(prev.startOffset + prev.image.length, this.LA(1).startOffset);
    if (!/[\r\n]/.test(between)) return true;
    const k = this.afterDecorators(1);
    return k === undefined || !tokenMatcher(this.LA(k), MemberKeyword);
  }
}

/** Tokens after which a new top-level item can start; used to resume after junk. */
export const TOP_LEVEL_STARTERS: readonly TokenType[] = [
  Kw.package,
  Kw.import,
  Kw.version,
  Kw.struct,
  Kw.enum,
  Kw.union,
  Kw.error,
  Kw.service,
  P.At,
];

/** Re-exported for the AST builder. */
export { DurationLiteral, FloatLiteral, IntLiteral, StringLiteral };
